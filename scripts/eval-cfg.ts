// `npm run eval:cfg`: classifier-free guidance (the shipped fashion-mnist-cfg model) against
// classifier guidance (the shipped fashion-mnist model and its noise-aware classifier), both with
// the shipped sampler (euler-ancestral over 20 Karras sigmas): 20 Unet calls per sample either
// way. CFG's call runs the Unet on [x, x] (cond and null labels); classifier guidance adds a
// classifier forward and backward to each.
//
// Judges A and B and the figures are eval-guidance's (scripts/eval-common.ts, cached in
// .gd-cache/eval): the share judged as the requested class, the class entropy and the spread
// relative to real test images. The time is one batch of 16 images (labels 0..9, 0..5) after one
// warm-up sample of each model, wall and this process's CPU seconds.
//   node dist/scripts/eval-cfg.js [--n 4] [--cfg-scales 0,1,2,3,5] [--classifier-scales 0,4] [--judge-steps 1000] [--out FILE] [--picture FILE]
import * as fs from 'fs';
import * as os from 'os';
import { execSync } from 'child_process';
import { Command } from 'commander';
import { classifierGuidance, GaussianDiffusion, loadFashionMnist, saveImage, Tensor, torch } from '../lib';
import { entropyBits, judgeAccuracies, judges, judgeSamples, realSpread, relativeSpread, ROOT } from './eval-common';

interface Flags {
  n: number;
  cfgScales: number[];
  classifierScales: number[];
  judgeSteps: number;
  seed: number;
  threads: number;
  out?: string;
  picture?: string;
}

const list = (v: string): number[] => v.split(',').filter((s) => s !== '').map(Number);

async function main(): Promise<void> {
  const flags = new Command()
    .name('eval-cfg')
    .option('--n <n>', 'samples per class and setting', (v) => parseInt(v, 10), 4)
    .option('--cfg-scales <list>', 'cfgScale values of the classifier-free model (0: unconditional, 1: conditional)', list, [0, 1, 2, 3, 5])
    .option('--classifier-scales <list>', 'classifier guidance scales of the guided model (0: unguided)', list, [0, 4])
    .option('--judge-steps <n>', 'training steps of each judge', (v) => parseInt(v, 10), 1000)
    .option('--seed <n>', 'sampling seed', (v) => parseInt(v, 10), 1)
    .option('--threads <n>', 'intra-op threads', (v) => parseInt(v, 10), 1)
    .option('--out <file>', 'write the report (markdown) here too')
    .option('--picture <file>', "PNG of one row per class from the classifier-free model at its default cfgScale")
    .parse()
    .opts<Flags>();
  torch.setNumThreads(flags.threads);
  const log = (s: string): void => console.error(s);

  const test = loadFashionMnist({ train: false, padTo: 32 });
  const judged = await judges(flags.judgeSteps, log);
  const accuracies = judgeAccuracies(judged, test, log);
  const cfg = GaussianDiffusion.pretrained('fashion-mnist-cfg');
  const cg = GaussianDiffusion.pretrained('fashion-mnist');
  const classNames = cfg.classNames;
  const classes = classNames.length;
  const real = realSpread(test, classes);

  const settings = [
    ...flags.cfgScales.map((s) => ({
      name: `classifier-free, cfgScale ${s}`,
      scale: s,
      cfg: true,
      run: (y: Tensor, extra: { seed: number }) => cfg.diffusion.sample({ ...extra, batchSize: y.shape[0], modelKwargs: { y }, cfgScale: s, nullClass: cfg.meta.nullClass }),
    })),
    ...flags.classifierScales.map((s) => ({
      name: s === 0 ? 'classifier-guided model, unguided' : `classifier guidance, scale ${s}`,
      scale: s,
      cfg: false,
      run: (y: Tensor, extra: { seed: number }) => cg.diffusion.sample({
        ...extra, batchSize: y.shape[0],
        ...(s > 0 ? { condFn: classifierGuidance, guidanceKwargs: { classifier: cg.classifier, y, classifierScale: s } } : {}),
      }),
    })),
  ];

  // Timing: one warm-up sample per model, then a batch of 16 per setting.
  const y16 = torch.tensor(Array.from({ length: 16 }, (_, i) => i % classes), { dtype: 'int64' });
  for (const warm of [settings.find((s) => s.cfg), settings.find((s) => !s.cfg)]) if (warm) (await warm.run(y16, { seed: 99 })).dispose();

  const y = torch.tensor(Array.from({ length: classes * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
  const wanted = y.toArray() as number[];
  const rows: string[][] = [];
  const both = (f: (k: number) => string): string => judged.map((_, k) => f(k)).join(' / ');
  for (const setting of settings) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    (await setting.run(y16, { seed: flags.seed })).dispose();
    const cpu = process.cpuUsage(c0);
    const wall = (performance.now() - t0) / 1000;

    const images = await setting.run(y, { seed: flags.seed });
    const { x, got } = judgeSamples(judged, images);
    const hits = got.map((g) => g.filter((l, i) => l === wanted[i]).length / g.length);
    rows.push([
      setting.name,
      both((k) => `${(hits[k] * 100).toFixed(0)}%`),
      both((k) => entropyBits(got[k], classes).toFixed(2)),
      relativeSpread(x, flags.n, real).toFixed(2),
      `${wall.toFixed(2)} s (${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU)`,
    ]);
    log(`${rows[rows.length - 1].join(' | ')}`);
    if (flags.picture && setting.cfg && setting.scale === cfg.meta.cfgScale) saveImage(images, flags.picture, { nrow: flags.n });
    torch.dispose([images, x]);
  }

  const header = ['guidance', 'judged as the requested class (A / B)', 'class entropy, bits, max 3.32 (A / B)', 'spread (1 = as varied as the data)', '16 images: wall (CPU)'];
  const table = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim();
  const report =
    `${table}\n\n${flags.n} samples per class and setting (${classes * flags.n} per row), euler-ancestral over 20 Karras sigmas (20 Unet calls per sample; ` +
    `classifier-free: each call on [x, x] with labels [y, null]), seed ${flags.seed}, ${flags.threads} intra-op thread(s) on ${os.cpus()[0]?.model ?? '?'} ` +
    `(1-minute load average ${os.loadavg()[0].toFixed(1)} at the end), commit ${commit}. ` +
    `Judges, trained on clean images (${flags.judgeSteps} steps of batch 64 each): ${judged.map((j, k) => `${j.name}, ${(accuracies[k] * 100).toFixed(1)}% on the test set`).join('; ')}. ` +
    `Default cfgScale of fashion-mnist-cfg: ${cfg.meta.cfgScale}; classifier scale of fashion-mnist: ${cg.meta.classifierScale}.\n`;
  console.log(report);
  if (flags.out) fs.writeFileSync(flags.out, report);
  torch.dispose([y, y16, test.images, test.labels]);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
