// `npm run eval:guidance`: how well classifier guidance works on the shipped Fashion-MNIST model.
//
// For each guidance scale it samples every class, then asks two independent judges which class
// each sample shows, and reports per judge the share that lands in the requested class and the
// class entropy, plus the spread:
// - judge A: a clean-image Classifier (the package's encoder architecture, another width and
//   seed than the guidance classifier) trained by trainClassifier with maxTimestep 0;
// - judge B: a plain CNN written in this file with the Tensor API (four 3x3 convolutions,
//   ReLU, global average pool, linear) and trained by this file's own Adam loop, so it shares
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
import { Classifier, classifierGuidance, GaussianDiffusion, jit, loadFashionMnist, loadSafetensors, Module, saveImage, saveSafetensors, Tensor, torch, trainClassifier } from '../lib';

const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = path.join(ROOT, '.gd-cache', 'eval');
const JUDGE = {
  model: { imageSize: 32, channels: 1, numClasses: 10, dim: 24, dimMults: [1, 2, 2], attentionResolutions: [], pool: 'avg' as const },
  // Clean images only (t = 0): a plain classifier; a different width and seed from the guidance one.
  train: { batchSize: 64, lr: 1e-3, weightDecay: 1e-4, emaDecay: 0.99, gradClip: 1, seed: 7, maxTimestep: 0 },
};
// Judge B: channels of its four convolutions (the last three stride 2: 32 -> 16 -> 8 -> 4).
const CNN = { channels: [1, 16, 32, 64, 64], classes: 10, batchSize: 64, lr: 1e-3, betas: [0.9, 0.999], seed: 11 };

/** A judge: labels for images in [-1, 1]. */
interface Judge {
  name: string;
  labels(images: Tensor): Tensor;
}

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

/** Judge A, trained once and cached in .gd-cache/eval. */
async function classifierJudge(train: { images: Tensor; labels: Tensor }, steps: number, log: (s: string) => void): Promise<Module> {
  const file = path.join(CACHE, `judge-${steps}.pt`);
  if (fs.existsSync(file)) return jit.load(file).eval();
  log(`training judge A (${steps} steps on clean images)...`);
  const result = await trainClassifier(new Classifier(JUDGE.model), {
    ...JUDGE.train,
    steps,
    data: train.images,
    labels: train.labels,
    timesteps: 1000,
    betaSchedule: 'cosine',
    onProgress: (p) => p.step % 100 === 0 && log(`  judge A step ${p.step}/${p.total} loss ${p.loss.toFixed(3)}`),
  });
  result.ema.save(file);
  return result.ema;
}

/** Judge B's forward: logits [B, classes] for x [B, 1, 32, 32]. */
function cnnForward(w: Record<string, Tensor>, x: Tensor): Tensor {
  let h = x;
  for (let i = 0; i < CNN.channels.length - 1; i++) {
    h = torch.nn.functional.conv2d(h, w[`conv${i}.weight`], w[`conv${i}.bias`], { stride: i === 0 ? 1 : 2, padding: 1 }).relu();
  }
  return torch.nn.functional.linear(h.mean([2, 3]), w['fc.weight'], w['fc.bias']);
}

/** Judge B's weights: He-normal convolutions and linear layer, zero biases. */
function cnnInit(): Record<string, Tensor> {
  torch.manualSeed(CNN.seed);
  const w: Record<string, Tensor> = {};
  const he = (shape: number[], fanIn: number): Tensor => torch.tidy(() => torch.randn(shape).mul(Math.sqrt(2 / fanIn)));
  for (let i = 0; i < CNN.channels.length - 1; i++) {
    const [cin, cout] = [CNN.channels[i], CNN.channels[i + 1]];
    w[`conv${i}.weight`] = he([cout, cin, 3, 3], cin * 9);
    w[`conv${i}.bias`] = torch.zeros([cout]);
  }
  const last = CNN.channels[CNN.channels.length - 1];
  w['fc.weight'] = he([CNN.classes, last], last);
  w['fc.bias'] = torch.zeros([CNN.classes]);
  return w;
}

/** Judge B, trained once by its own loop (Adam on cross-entropy, clean images) and cached. */
function cnnJudge(train: { images: Tensor; labels: Tensor }, steps: number, log: (s: string) => void): Record<string, Tensor> {
  const file = path.join(CACHE, `cnn-judge-${steps}.safetensors`);
  if (fs.existsSync(file)) return loadSafetensors(file);
  log(`training judge B, the plain CNN (${steps} steps on clean images)...`);
  const w = cnnInit();
  const names = Object.keys(w);
  const params = names.map((k) => w[k].requiresGrad_());
  const m = params.map((p) => torch.zerosLike(p));
  const v = params.map((p) => torch.zerosLike(p));
  const [b1, b2] = CNN.betas;
  const n = train.images.shape[0];
  for (let step = 1; step <= steps; step++) {
    const loss = torch.tidy(() => {
      const idx = torch.randint(0, n, [CNN.batchSize], { dtype: 'int64' });
      const logits = cnnForward(w, train.images.indexSelect(0, idx));
      const l = torch.nn.functional.crossEntropy(logits, train.labels.indexSelect(0, idx));
      const grads = torch.autograd.grad(l, params);
      torch.noGrad(() => {
        // Adam with bias correction, written out.
        const c1 = 1 - b1 ** step;
        const c2 = 1 - b2 ** step;
        params.forEach((p, i) => {
          const g = grads[i]!;
          m[i].mul_(b1).add_(g.mul(1 - b1));
          v[i].mul_(b2).add_(g.square().mul(1 - b2));
          p.sub_(m[i].div(c1).div(v[i].div(c2).sqrt().add(1e-8)).mul(CNN.lr));
        });
      });
      return l.item() as number;
    });
    if (step % 100 === 0) log(`  judge B step ${step}/${steps} loss ${loss.toFixed(3)}`);
  }
  torch.dispose(m, v);
  const trained: Record<string, Tensor> = {};
  for (const k of names) trained[k] = w[k].detach();
  saveSafetensors(trained, file);
  torch.dispose(Object.values(w));
  return trained;
}

/** Labels in batches of 500, without grad. */
function batchedLabels(images: Tensor, logits: (x: Tensor) => Tensor): Tensor {
  return torch.tidy(() =>
    torch.noGrad(() => {
      const parts: Tensor[] = [];
      for (let i = 0; i < images.shape[0]; i += 500) parts.push(logits(images.slice(0, i, Math.min(i + 500, images.shape[0]))).argmax(1));
      return torch.cat(parts);
    }),
  );
}

async function judges(steps: number, log: (s: string) => void): Promise<Judge[]> {
  fs.mkdirSync(CACHE, { recursive: true });
  const train = loadFashionMnist({ train: true, padTo: 32 });
  try {
    const a = await classifierJudge(train, steps, log);
    const b = cnnJudge(train, steps, log);
    return [
      { name: `A: Classifier(dim ${JUDGE.model.dim}), trainClassifier`, labels: (x) => batchedLabels(x, (xs) => a.forward(xs, torch.zeros([xs.shape[0]], { dtype: 'int64' }))) },
      { name: `B: plain CNN (${CNN.channels.slice(1).join('-')} channels), its own Adam loop`, labels: (x) => batchedLabels(x, (xs) => cnnForward(b, xs)) },
    ];
  } finally {
    train.images.dispose();
    train.labels.dispose();
  }
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
  const testLabels = test.labels.toArray() as number[];
  const accuracies = judged.map((j) => {
    const got = j.labels(test.images);
    const share = (got.toArray() as number[]).filter((p, i) => p === testLabels[i]).length / testLabels.length;
    got.dispose();
    log(`judge ${j.name}: ${(share * 100).toFixed(1)}% on the 10,000 test images`);
    return share;
  });

  const { diffusion, classifier, classNames, meta } = GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: flags.steps, ddimSamplingEta: flags.eta, timestepRespacing: flags.respacing, autocast: flags.autocast });
  const classes = classNames.length;
  const steps = diffusion.options.samplingTimesteps;
  const eta = diffusion.options.ddimSamplingEta;
  const sampler = (diffusion.isDdimSampling ? `DDIM ${steps} steps (eta ${eta})` : `ancestral sampling, ${steps} steps`) + (diffusion.options.autocast ? `, the Unet under ${diffusion.options.autocast} autocast` : '');
  const realSpread = classNames.map((_, c) =>
    torch.tidy(() => {
      const idx = torch.tensor(testLabels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0).slice(0, 200), { dtype: 'int64' });
      return meanPairwiseDistance(test.images.indexSelect(0, idx));
    }),
  );

  const y = torch.tensor(Array.from({ length: classes * flags.n }, (_, i) => Math.floor(i / flags.n)), { dtype: 'int64' });
  const wanted = y.toArray() as number[];
  const rows: string[][] = [];
  const both = (f: (k: number) => string): string => judged.map((_, k) => f(k)).join(' / ');
  for (const scale of flags.scales) {
    const started = Date.now();
    const images = await samples(diffusion, classifier, y, scale, flags);
    const x = torch.tidy(() => images.mul(2).sub(1)); // sample() returns [0, 1]; the judges read [-1, 1]
    const got = judged.map((j) => {
      const labels = j.labels(x);
      const out = labels.toArray() as number[];
      labels.dispose();
      return out;
    });
    const hits = got.map((g) => g.filter((l, i) => l === wanted[i]).length / g.length);
    const spread =
      classNames.map((_, c) => torch.tidy(() => meanPairwiseDistance(x.slice(0, c * flags.n, (c + 1) * flags.n)) / realSpread[c])).reduce((a, b) => a + b, 0) / classes;
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
