// `npm run train:default`: retrains the shipped Fashion-MNIST model (lib/recipe.ts has the
// recipe) into models/fashion-mnist/; --part cfg the classifier-free guided one into
// models/fashion-mnist-cfg/.
//   node dist/scripts/train-default.js [--part unet|classifier|all|cfg] [--steps N] [--minutes M]
// Each part checkpoints into .gd-cache/train/ and resumes from there when run again; --minutes
// stops a part after that long (the last checkpoint is what gets installed).
import { Command } from 'commander';
import { torch } from '../lib';
import { RecipePart, trainRecipePart } from '../lib/recipe';

async function main(): Promise<void> {
  const program = new Command()
    .name('train-default')
    .option('--part <part>', 'unet, classifier, all (both) or cfg (the classifier-free guided model)', 'all')
    .option('--steps <n>', 'steps to reach (default: the recipe)', (v) => parseInt(v, 10))
    .option('--minutes <m>', 'stop each part after this long', (v) => parseFloat(v))
    .option('--threads <n>', 'intra-op threads', (v) => parseInt(v, 10), 1)
    .parse();
  const o = program.opts<{ part: string; steps?: number; minutes?: number; threads: number }>();
  torch.setNumThreads(o.threads);
  if (!['unet', 'classifier', 'all', 'cfg'].includes(o.part)) throw new Error(`unknown part '${o.part}'; expected unet, classifier, all or cfg`);
  const parts: RecipePart[] = o.part === 'all' ? ['classifier', 'unet'] : [o.part as RecipePart];
  for (const part of parts) await trainRecipePart({ part, steps: o.steps, minutes: o.minutes });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
