// `npm run eval:guidance`: how well classifier guidance works on the shipped Fashion-MNIST model.
//
// For each guidance scale it samples every class, then asks two independent judges which class
// each sample shows, and reports per judge the share that lands in the requested class and the
// class entropy, plus the spread:
// - judge A: a clean-image Classifier (the package's encoder architecture, another width and
//   seed than the guidance classifier) trained by trainClassifier with maxTimestep 0;
// - judge B: a plain CNN written in scripts/eval-common.ts with the Tensor API (four 3x3 convolutions,
//   ReLU, global average pool, linear) and trained by its own Adam loop there, so it shares
//   neither the Classifier class nor trainClassifier with the guidance classifier;
// - class entropy: entropy of a judge's labels over all samples at that scale, in bits
//   (log2(10) = 3.32 when samples spread evenly over the classes);
// - spread: mean pairwise pixel distance between samples asked for the same class, divided by
//   the same figure for real test images of that class (1 = as varied as the data).
// Judges and each scale's samples are cached in .gd-cache/eval, so a rerun only re-judges.
//   node dist/scripts/eval-guidance.js [--n 10] [--scales 0,1,2,4,8] [--steps N] [--eta X] [--autocast bfloat16] [--out FILE] [--picture FILE]
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { classifierGuidance, GaussianDiffusion, loadFashionMnist, loadSafetensors, Module, saveImage, saveSafetensors, Tensor, torch } from '../lib';
import { CACHE, entropyBits, judgeAccuracies, judges, judgeSamples, realSpread, relativeSpread } from './eval-common';

interface Flags {
  n: number;
  scales: number[];
  steps?: number;
  respacing?: string;
  autocast?: 'bfloat16';
  seed: number;
  out?: string;
  picture?: string;
  threads: number;
  eta?: number;
  samplesOnly?: boolean;
  judgesOnly?: boolean;
  judgeSteps: number;
}

/** One scale's samples, [classes * n, 1, 32, 32] in [0, 1]: from the cache, else sampled and cached. */
async function samples(diffusion: GaussianDiffusion, classifier: Module, y: Tensor, scale: number, flags: Flags): Promise<Tensor> {
  const steps = diffusion.options.samplingTimesteps;
  const respaced = diffusion.options.timestepRespacing === undefined ? '' : `-respaced${diffusion.options.timestepRespacing}`;
  const autocast = diffusion.options.autocast === undefined ? '' : `-${diffusion.options.autocast}`;
  const sampler = (diffusion.isDdimSampling ? `ddim${steps}-eta${diffusion.options.ddimSamplingEta}` : `ancestral${steps}`) + respaced + autocast;
  const cached = path.join(CACHE, `samples-${sampler}-n${flags.n}-seed${flags.seed}-scale${scale}.safetensors`);
  if (fs.existsSync(cached)) return loadSafetensors(cached).images;
  torch.manualSeed(flags.seed);
  const images = await diffusion.sample({
    // The schedule's own steps, not the shipped model's default fast sampler (eval:samplers has those).
    sampler: diffusion.isDdimSampling ? 'ddim' : 'ancestral',
    batchSize: y.shape[0],
    condFn: scale > 0 ? classifierGuidance : undefined,
    guidanceKwargs: scale > 0 ? { classifier, y, classifierScale: scale } : undefined,
    onProgress: (p) => p.step % 100 === 0 && console.error(`  scale ${scale}: step ${p.step}/${p.total}`),
  });
  fs.mkdirSync(CACHE, { recursive: true });
  saveSafetensors({ images }, `${cached}.tmp`); // renamed when complete: another process may read the cache
  fs.renameSync(`${cached}.tmp`, cached);
  return images;
}

async function main(): Promise<void> {
  const flags = new Command()
    .name('eval-guidance')
    .option('--n <n>', 'samples per class and scale', (v) => parseInt(v, 10), 10)
    .option('--scales <list>', 'guidance scales (0 = unguided)', (v) => v.split(',').map(Number), [0, 1, 2, 4, 8])
    .option('--steps <n>', "sampling steps (default: the model's; 1000 = ancestral, fewer = DDIM)", (v) => parseInt(v, 10))
    .option('--seed <n>', 'sampling seed', (v) => parseInt(v, 10), 1)
    .option('--threads <n>', 'intra-op threads', (v) => parseInt(v, 10), 2)
    .option('--eta <x>', "DDIM eta (default: the model's)", parseFloat)
    .option('--respacing <spec>', "timestep respacing ('250', '100'): ancestral over the kept steps")
    .option('--autocast <dtype>', "the Unet's forward under autocast: bfloat16 (guidance stays float32)", (v) => {
      if (v !== 'bfloat16') throw new Error(`--autocast takes bfloat16; got ${v}`);
      return v;
    })
    .option('--out <file>', 'write the report (markdown) here too')
    .option('--picture <file>', 'PNG of one row per class at the model\'s default scale')
    .option('--judge-steps <n>', 'training steps of each judge', (v) => parseInt(v, 10), 3000)
    .option('--judges-only', 'only train (and cache) the judges')
    .option('--samples-only', 'only sample (and cache) each scale; a second process can train the judges meanwhile')
    .parse()
    .opts<Flags>();
  torch.setNumThreads(flags.threads);
  const log = (s: string): void => console.error(s);

  if (flags.samplesOnly) {
    const { diffusion, classifier, classNames } = GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: flags.steps, ddimSamplingEta: flags.eta, timestepRespacing: flags.respacing, autocast: flags.autocast });
    const y = torch.tensor(Array.from({ length: classNames.length * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
    for (const scale of flags.scales) {
      const started = Date.now();
      (await samples(diffusion, classifier, y, scale, flags)).dispose();
      log(`scale ${scale}: sampled (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
    return;
  }
  const test = loadFashionMnist({ train: false, padTo: 32 });
  const judged = await judges(flags.judgeSteps, log);
  if (flags.judgesOnly) return;
  const accuracies = judgeAccuracies(judged, test, log);

  const { diffusion, classifier, classNames, meta } = GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: flags.steps, ddimSamplingEta: flags.eta, timestepRespacing: flags.respacing, autocast: flags.autocast });
  const classes = classNames.length;
  const steps = diffusion.options.samplingTimesteps;
  const eta = diffusion.options.ddimSamplingEta;
  const sampler = (diffusion.isDdimSampling ? `DDIM ${steps} steps (eta ${eta})` : `ancestral sampling, ${steps} steps`) + (diffusion.options.autocast ? `, the Unet under ${diffusion.options.autocast} autocast` : '');
  const real = realSpread(test, classes);

  const y = torch.tensor(Array.from({ length: classes * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
  const wanted = y.toArray() as number[];
  const rows: string[][] = [];
  const both = (f: (k: number) => string): string => judged.map((_, k) => f(k)).join(' / ');
  for (const scale of flags.scales) {
    const started = Date.now();
    const images = await samples(diffusion, classifier, y, scale, flags);
    const { x, got } = judgeSamples(judged, images);
    const hits = got.map((g) => g.filter((l, i) => l === wanted[i]).length / g.length);
    const spread = relativeSpread(x, flags.n, real);
    const worst = got.map(
      (g) =>
        classNames
          .map((name, c) => ({ name, share: g.slice(c * flags.n, (c + 1) * flags.n).filter((l) => l === c).length / flags.n }))
          .sort((a, b) => a.share - b.share)[0],
    );
    rows.push([
      String(scale),
      both((k) => `${(hits[k] * 100).toFixed(0)}%`),
      both((k) => `${worst[k].name} ${(worst[k].share * 100).toFixed(0)}%`),
      both((k) => entropyBits(got[k], classes).toFixed(2)),
      `${(got[0].filter((l, i) => l === got[1][i]).length / got[0].length * 100).toFixed(0)}%`,
      spread.toFixed(2),
    ]);
    log(`scale ${scale}: ${rows[rows.length - 1].join(' | ')} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    if (flags.picture && scale === meta.classifierScale) saveImage(images, flags.picture, { nrow: flags.n });
    images.dispose();
    x.dispose();
  }

  const header = [
    'guidance scale',
    'judged as the requested class (A / B)',
    'worst class (A / B)',
    'class entropy, bits, max 3.32 (A / B)',
    'A and B agree',
    'spread (1 = as varied as the data)',
  ];
  const table = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const report =
    `${table}\n\n${flags.n} samples per class and scale (${classes * flags.n} per row), ${sampler}, seed ${flags.seed}. ` +
    `Judges, trained by this script on clean images (${flags.judgeSteps} steps of batch 64 each): ${judged.map((j, k) => `${j.name}, ${(accuracies[k] * 100).toFixed(1)}% on the test set`).join('; ')}. ` +
    `Default scale of the shipped model: ${meta.classifierScale}.\n`;
  console.log(report);
  if (flags.out) fs.writeFileSync(flags.out, report);
  y.dispose();
  test.images.dispose();
  test.labels.dispose();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
