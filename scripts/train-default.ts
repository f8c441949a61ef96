// `npm run train:default`: retrains the shipped Fashion-MNIST model (lib/recipe.ts has the
// recipe) into models/fashion-mnist/.
//   node dist/scripts/train-default.js [--part unet|classifier|all] [--steps N] [--minutes M]
// Each part checkpoints into .gd-cache/train/ and resumes from there when run again; --minutes
// stops a part after that long (the last checkpoint is what gets installed).
import { Command } from 'commander';
import { torch } from '../lib';
import { trainRecipePart } from '../lib/recipe';

async function main(): Promise<void> {
  const program = new Command()
    .name('train-default')
    .option('--part <part>', 'unet, classifier or all', 'all')
    .option('--steps <n>', 'steps to reach (default: the recipe)', (v) => parseInt(v, 10))
    .option('--minutes <m>', 'stop each part after this long', (v) => parseFloat(v))
    .option('--threads <n>', 'intra-op threads', (v) => parseInt(v, 10), 1)
    .parse();
  const o = program.opts<{ part: string; steps?: number; minutes?: number; threads: number }>();
  torch.setNumThreads(o.threads);
  const parts = o.part === 'all' ? (['classifier', 'unet'] as const) : [o.part as 'unet' | 'classifier'];
  for (const part of parts) await trainRecipePart({ part, steps: o.steps, minutes: o.minutes });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
