// What scripts/eval-guidance.ts and scripts/eval-samplers.ts share: the two judges (trained
// once and cached in .gd-cache/eval), judge B's penultimate features, and the figures.
import * as fs from 'fs';
import * as path from 'path';
import { Classifier, Device, jit, loadFashionMnist, loadSafetensors, Module, saveSafetensors, Tensor, torch, trainClassifier } from '../lib';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CACHE = path.join(ROOT, '.gd-cache', 'eval');
export const JUDGE = {
  model: { imageSize: 32, channels: 1, numClasses: 10, dim: 24, dimMults: [1, 2, 2], attentionResolutions: [], pool: 'avg' as const },
  // Clean images only (t = 0): a plain classifier; a different width and seed from the guidance one.
  train: { batchSize: 64, lr: 1e-3, weightDecay: 1e-4, emaDecay: 0.99, gradClip: 1, seed: 7, maxTimestep: 0 },
};
// Judge B: channels of its four convolutions (the last three stride 2: 32 -> 16 -> 8 -> 4).
export const CNN = { channels: [1, 16, 32, 64, 64], classes: 10, batchSize: 64, lr: 1e-3, betas: [0.9, 0.999], seed: 11 };

/** A judge: labels for images in [-1, 1]; judge B also gives its penultimate features. */
export interface Judge {
  name: string;
  labels(images: Tensor): Tensor;
  features?(images: Tensor): Tensor;
}

/** Judge A, trained once and cached in .gd-cache/eval. */
export async function classifierJudge(train: { images: Tensor; labels: Tensor }, steps: number, log: (s: string) => void, device: Device): Promise<Module> {
  const file = path.join(CACHE, `judge-${steps}.pt`);
  if (fs.existsSync(file)) return jit.load(file).eval();
  log(`training judge A (${steps} steps on clean images, on ${device})...`);
  // The trainer's seed draws batches and noise, not the weights: LibTorch seeds its default
  // generator at random in each process, so without this two fresh checkouts got different judges.
  torch.manualSeed(JUDGE.train.seed);
  const result = await trainClassifier(new Classifier(JUDGE.model).to(device), {
    ...JUDGE.train,
    steps,
    data: train.images,
    labels: train.labels,
    timesteps: 1000,
    betaSchedule: 'cosine',
    onProgress: (p) => p.step % 100 === 0 && log(`  judge A step ${p.step}/${p.total} loss ${p.loss.toFixed(3)}`),
  });
  result.ema.to('cpu').save(`${file}.tmp`); // renamed when complete: another process may read the cache
  fs.renameSync(`${file}.tmp`, file);
  return result.ema;
}

/** Judge B's penultimate features: the global average pool of its last convolution, [B, 64]. */
export function cnnFeatures(w: Record<string, Tensor>, x: Tensor): Tensor {
  let h = x;
  for (let i = 0; i < CNN.channels.length - 1; i++) {
    h = torch.nn.functional.conv2d(h, w[`conv${i}.weight`], w[`conv${i}.bias`], { stride: i === 0 ? 1 : 2, padding: 1 }).relu();
  }
  return h.mean([2, 3]);
}

/** Judge B's forward: logits [B, classes] for x [B, 1, 32, 32]. */
export function cnnForward(w: Record<string, Tensor>, x: Tensor): Tensor {
  return torch.nn.functional.linear(cnnFeatures(w, x), w['fc.weight'], w['fc.bias']);
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
export function cnnJudge(train: { images: Tensor; labels: Tensor }, steps: number, log: (s: string) => void, device: Device): Record<string, Tensor> {
  const file = path.join(CACHE, `cnn-judge-${steps}.safetensors`);
  if (fs.existsSync(file)) return loadSafetensors(file);
  log(`training judge B, the plain CNN (${steps} steps on clean images, on ${device})...`);
  const w = cnnInit();
  const onDevice = device === 'cpu' ? undefined : { images: train.images.to(device), labels: train.labels.to(device) };
  const data = onDevice ?? train;
  if (device !== 'cpu') for (const k of Object.keys(w)) w[k] = w[k].to(device);
  const names = Object.keys(w);
  const params = names.map((k) => w[k].requiresGrad_());
  const m = params.map((p) => torch.zerosLike(p));
  const v = params.map((p) => torch.zerosLike(p));
  const [b1, b2] = CNN.betas;
  const n = train.images.shape[0];
  for (let step = 1; step <= steps; step++) {
    const loss = torch.tidy(() => {
      const idx = torch.randint(0, n, [CNN.batchSize], { dtype: 'int64' }).to(device);
      const logits = cnnForward(w, data.images.indexSelect(0, idx));
      const l = torch.nn.functional.crossEntropy(logits, data.labels.indexSelect(0, idx));
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
  if (onDevice) torch.dispose(onDevice.images, onDevice.labels);
  const trained: Record<string, Tensor> = {};
  for (const k of names) trained[k] = w[k].detach().to('cpu');
  saveSafetensors(trained, `${file}.tmp`);
  fs.renameSync(`${file}.tmp`, file);
  torch.dispose(Object.values(w));
  return trained;
}

/** f over images in batches of 500, without grad, concatenated. */
function batched(images: Tensor, f: (x: Tensor) => Tensor): Tensor {
  return torch.tidy(() =>
    torch.noGrad(() => {
      const parts: Tensor[] = [];
      for (let i = 0; i < images.shape[0]; i += 500) parts.push(f(images.slice(0, i, Math.min(i + 500, images.shape[0]))));
      return torch.cat(parts);
    }),
  );
}

/**
 * Judges A and B, trained by the first call (steps each, on device: the data stays on the CPU
 * for judge A, as trainClassifier copies batches) and cached in .gd-cache/eval; they judge on the CPU.
 */
export async function judges(steps: number, log: (s: string) => void, device: Device = 'cpu'): Promise<Judge[]> {
  fs.mkdirSync(CACHE, { recursive: true });
  const train = loadFashionMnist({ train: true, padTo: 32 });
  try {
    const a = (await classifierJudge(train, steps, log, device)).to('cpu');
    const b = cnnJudge(train, steps, log, device);
    if (device !== 'cpu') for (const k of Object.keys(b)) b[k] = b[k].to('cpu');
    return [
      { name: `A: Classifier(dim ${JUDGE.model.dim}), trainClassifier`, labels: (x) => batched(x, (xs) => a.forward(xs, torch.zeros([xs.shape[0]], { dtype: 'int64' })).argmax(1)) },
      {
        name: `B: plain CNN (${CNN.channels.slice(1).join('-')} channels), its own Adam loop`,
        labels: (x) => batched(x, (xs) => cnnForward(b, xs).argmax(1)),
        features: (x) => batched(x, (xs) => cnnFeatures(b, xs)),
      },
    ];
  } finally {
    train.images.dispose();
    train.labels.dispose();
  }
}

/** Samples as the judges read them ([-1, 1]; sample() returns [0, 1]) and each judge's labels of them. */
export function judgeSamples(judged: Judge[], images: Tensor): { x: Tensor; got: number[][] } {
  const x = torch.tidy(() => images.mul(2).sub(1));
  const got = judged.map((j) => {
    const labels = j.labels(x);
    const out = labels.toArray() as number[];
    labels.dispose();
    return out;
  });
  return { x, got };
}

/** Each judge's share of the test set it labels right. */
export function judgeAccuracies(judged: Judge[], test: { images: Tensor; labels: Tensor }, log: (s: string) => void): number[] {
  const testLabels = test.labels.toArray() as number[];
  return judged.map((j) => {
    const got = j.labels(test.images);
    const share = (got.toArray() as number[]).filter((p, i) => p === testLabels[i]).length / testLabels.length;
    got.dispose();
    log(`judge ${j.name}: ${(share * 100).toFixed(1)}% on the 10,000 test images`);
    return share;
  });
}

/** Mean pairwise L2 distance between the rows of x [N, ...]. */
export function meanPairwiseDistance(x: Tensor): number {
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

export function entropyBits(labels: number[], classes: number): number {
  const counts = new Array(classes).fill(0);
  for (const l of labels) counts[l]++;
  return -counts.filter((c) => c > 0).reduce((h, c) => h + (c / labels.length) * Math.log2(c / labels.length), 0);
}

/** Per class, the mean pairwise distance of the first (up to) 200 test images of that class, after f. */
export function realSpread(test: { images: Tensor; labels: Tensor }, classes: number, f: (x: Tensor) => Tensor = (x) => x): number[] {
  const testLabels = test.labels.toArray() as number[];
  return Array.from({ length: classes }, (_, c) =>
    torch.tidy(() => {
      const idx = torch.tensor(testLabels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0).slice(0, 200), { dtype: 'int64' });
      return meanPairwiseDistance(f(test.images.indexSelect(0, idx)));
    }),
  );
}

/** Spread of class-major samples x [classes * n, ...] (n per class), relative to real, averaged over the classes. */
export function relativeSpread(x: Tensor, n: number, real: number[]): number {
  return real.map((r, c) => torch.tidy(() => meanPairwiseDistance(x.slice(0, c * n, (c + 1) * n)) / r)).reduce((a, b) => a + b, 0) / real.length;
}
