// `npm run eval:guidance`: how well classifier guidance works on the shipped Fashion-MNIST model.
//
// For each guidance scale it samples every class, then asks an independent judge (a clean-image
// classifier trained here, not the guidance classifier) which class each sample shows, and
// reports the share that lands in the requested class and two diversity figures:
// - class entropy: entropy of the judge's labels over all samples at that scale, in bits
//   (log2(10) = 3.32 when samples spread evenly over the classes);
// - spread: mean pairwise pixel distance between samples asked for the same class, divided by
//   the same figure for real test images of that class (1 = as varied as the data).
//   node dist/scripts/eval-guidance.js [--n 10] [--scales 0,1,2,4,8] [--steps N] [--eta X] [--out FILE] [--picture FILE]
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { Classifier, classifierGuidance, GaussianDiffusion, jit, loadFashionMnist, Module, saveImage, Tensor, torch, trainClassifier } from '../lib';

const ROOT = path.resolve(__dirname, '..', '..');
const JUDGE = {
  model: { imageSize: 32, channels: 1, numClasses: 10, dim: 24, dimMults: [1, 2, 2], attentionResolutions: [], pool: 'avg' as const },
  // Clean images only (t = 0): a plain classifier; a different width and seed from the guidance one.
  train: { steps: 3000, batchSize: 64, lr: 1e-3, weightDecay: 1e-4, emaDecay: 0.99, gradClip: 1, seed: 7, maxTimestep: 0 },
};

interface Flags {
  n: number;
  scales: number[];
  steps?: number;
  seed: number;
  out?: string;
  picture?: string;
  threads: number;
  eta?: number;
}

/** The judge, trained once and cached in .gd-cache/eval. */
async function judge(log: (s: string) => void): Promise<Module> {
  const file = path.join(ROOT, '.gd-cache', 'eval', `judge-${JUDGE.train.steps}.pt`);
  if (fs.existsSync(file)) return jit.load(file).eval();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const train = loadFashionMnist({ train: true, padTo: 32 });
  log(`training the judge (${JUDGE.train.steps} steps on clean images)...`);
  const result = await trainClassifier(new Classifier(JUDGE.model), {
    ...JUDGE.train,
    data: train.images,
    labels: train.labels,
    timesteps: 1000,
    betaSchedule: 'cosine',
    onProgress: (p) => p.step % 500 === 0 && log(`  judge step ${p.step}/${p.total} loss ${p.loss.toFixed(3)}`),
  });
  result.ema.save(file);
  train.images.dispose();
  train.labels.dispose();
  return result.ema;
}

/** The judge's labels for images in [-1, 1]. */
function classify(model: Module, images: Tensor): Tensor {
  return torch.tidy(() =>
    torch.noGrad(() => {
      const parts: Tensor[] = [];
      for (let i = 0; i < images.shape[0]; i += 500) {
        const x = images.slice(0, i, Math.min(i + 500, images.shape[0]));
        parts.push(model.forward(x, torch.zeros([x.shape[0]], { dtype: 'int64' })).argmax(1));
      }
      return torch.cat(parts);
    }),
  );
}

/** Mean pairwise L2 distance between the rows of x [N, ...]. */
function meanPairwiseDistance(x: Tensor): number {
  return torch.tidy(() => {
    const flat = x.reshape([x.shape[0], -1]);
    const n = flat.shape[0];
    const sq = flat.square().sum(1, true);
    const d2 = sq.add(sq.t()).sub(flat.matmul(flat.t()).mul(2)).clamp(0);
    const i = torch.arange(n);
    const diagonal = i.view([n, 1]).eq(i.view([1, n])); // rounding leaves ~1e-6 there; it is exactly 0
    return (d2.maskedFill(diagonal, 0).sqrt().sum().item() as number) / (n * (n - 1));
  });
}

function entropyBits(labels: number[], classes: number): number {
  const counts = new Array(classes).fill(0);
  for (const l of labels) counts[l]++;
  return -counts.filter((c) => c > 0).reduce((h, c) => h + (c / labels.length) * Math.log2(c / labels.length), 0);
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
    .option('--out <file>', 'write the report (markdown) here too')
    .option('--picture <file>', 'PNG of one row per class at the model\'s default scale')
    .parse()
    .opts<Flags>();
  torch.setNumThreads(flags.threads);
  const log = (s: string): void => console.error(s);

  const test = loadFashionMnist({ train: false, padTo: 32 });
  const model = await judge(log);
  const testLabels = test.labels.toArray() as number[];
  const predicted = classify(model, test.images);
  const judgeAccuracy = (predicted.toArray() as number[]).filter((p, i) => p === testLabels[i]).length / testLabels.length;
  predicted.dispose();
  log(`judge: ${(judgeAccuracy * 100).toFixed(1)}% on the 10,000 test images`);

  const { diffusion, classifier, classNames, meta } = GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: flags.steps, ddimSamplingEta: flags.eta });
  const classes = classNames.length;
  const steps = diffusion.options.samplingTimesteps;
  const sampler = diffusion.isDdimSampling ? `DDIM ${steps} steps (eta ${diffusion.options.ddimSamplingEta})` : `ancestral sampling, ${steps} steps`;
  const realSpread = classNames.map((_, c) =>
    torch.tidy(() => {
      const idx = torch.tensor(testLabels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0).slice(0, 200), { dtype: 'int64' });
      return meanPairwiseDistance(test.images.indexSelect(0, idx));
    }),
  );

  const y = torch.tensor(Array.from({ length: classes * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
  const wanted = y.toArray() as number[];
  const rows: string[][] = [];
  for (const scale of flags.scales) {
    const started = Date.now();
    torch.manualSeed(flags.seed);
    const images = await diffusion.sample({
      batchSize: wanted.length,
      condFn: scale > 0 ? classifierGuidance : undefined,
      guidanceKwargs: scale > 0 ? { classifier, y, classifierScale: scale } : undefined,
    });
    const x = torch.tidy(() => images.mul(2).sub(1)); // sample() returns [0, 1]; the judge reads [-1, 1]
    const labels = classify(model, x);
    const got = labels.toArray() as number[];
    labels.dispose();
    const hits = got.filter((g, i) => g === wanted[i]).length / got.length;
    const spread =
      classNames.map((_, c) => torch.tidy(() => meanPairwiseDistance(x.slice(0, c * flags.n, (c + 1) * flags.n)) / realSpread[c])).reduce((a, b) => a + b, 0) / classes;
    const worst = classNames
      .map((name, c) => ({ name, share: got.slice(c * flags.n, (c + 1) * flags.n).filter((g) => g === c).length / flags.n }))
      .sort((a, b) => a.share - b.share)[0];
    rows.push([String(scale), `${(hits * 100).toFixed(0)}%`, `${worst.name} ${(worst.share * 100).toFixed(0)}%`, entropyBits(got, classes).toFixed(2), spread.toFixed(2)]);
    log(`scale ${scale}: ${rows[rows.length - 1].join(' | ')} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    if (flags.picture && scale === meta.classifierScale) saveImage(images, flags.picture, { nrow: flags.n });
    images.dispose();
    x.dispose();
  }

  const header = ['guidance scale', 'judged as the requested class', 'worst class', 'class entropy (bits, max 3.32)', 'spread (1 = as varied as the data)'];
  const table = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const report =
    `${table}\n\n${flags.n} samples per class and scale (${classes * flags.n} per row), ${sampler}, seed ${flags.seed}. ` +
    `Judge: a clean-image Classifier(dim ${JUDGE.model.dim}) trained by this script, ${(judgeAccuracy * 100).toFixed(1)}% on the test set. ` +
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
