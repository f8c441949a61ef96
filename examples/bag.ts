// Guidance by a classifier that has never seen noise: a plain CNN trained on clean Fashion-MNIST
// steers the shipped model towards "Bag" through its predicted clean image x0 (guidanceInput
// 'x0': Universal Guidance's forward guidance, DDIM). Run: npm run example:bag
import * as fs from 'fs';
import * as path from 'path';
import { Classifier, jit, loadFashionMnist, loadPretrained, Module, saveImage, Tensor, torch, trainClassifier } from '../lib';

const HERE = path.resolve(__dirname, '..', '..', 'examples');

export interface BagOptions {
  /** Images sampled with and without guidance (the same seed, so the same starting noise). */
  n: number;
  ddimSteps: number;
  /** DDIM's eta: 0 deterministic, 1 as noisy as ancestral steps. */
  eta: number;
  guidanceScale: number;
  /** Guide only steps with t in [tLo, tHi]. */
  guidanceInterval?: [number, number];
  cnnSteps: number;
  seed: number;
}

export const BAG_DEFAULTS: BagOptions = { n: 32, ddimSteps: 25, eta: 1, guidanceScale: 2, guidanceInterval: [0, 998], cnnSteps: 400, seed: 1 };

/** A plain CNN (residual convolutions, global average pool, no attention) trained on clean images. */
export async function trainCnn(steps: number, limit?: number): Promise<Module> {
  const { images, labels } = loadFashionMnist({ train: true, padTo: 32, limit });
  torch.manualSeed(3);
  const cnn = new Classifier({ imageSize: 32, channels: 1, numClasses: 10, dim: 16, dimMults: [1, 2, 2], attentionResolutions: [], pool: 'avg' });
  // clean: t = 0 and no noise, so this is an off-the-shelf classifier, not a noise-aware one.
  const { ema } = await trainClassifier(cnn, { data: images, labels, steps, clean: true, lr: 1e-3, emaDecay: 0.99, seed: 3 });
  torch.dispose(images, labels);
  return ema;
}

/** Cross-entropy of the CNN on images in [-1, 1] against `label`, one per image. */
export function cnnLoss(cnn: Module, x: Tensor, label: number): Tensor {
  return torch.tidy(() => {
    const logits = cnn.forward(x, torch.zeros([x.shape[0]], { dtype: 'int64' }));
    return torch.nn.functional.crossEntropy(logits, torch.full([x.shape[0]], label, { dtype: 'int64' }), { reduction: 'none' });
  });
}

/** Samples of the shipped model, in [0, 1], unguided and guided by the CNN towards "Bag"; seconds each. */
export async function sampleBags(cnn: Module, o: BagOptions) {
  const { diffusion, classNames } = loadPretrained('fashion-mnist', { samplingTimesteps: o.ddimSteps, ddimSamplingEta: o.eta });
  const bag = classNames.indexOf('Bag');
  let start = Date.now();
  const unguided = await diffusion.sample({ batchSize: o.n, seed: o.seed });
  const unguidedSeconds = (Date.now() - start) / 1000;
  start = Date.now();
  const guided = await diffusion.sample({
    batchSize: o.n,
    seed: o.seed,
    guidanceInput: 'x0',
    guidanceScale: o.guidanceScale,
    guidanceInterval: o.guidanceInterval,
    condFn: (x0: Tensor) => cnnLoss(cnn, x0, bag),
  });
  return { unguided, guided, unguidedSeconds, guidedSeconds: (Date.now() - start) / 1000, bag };
}

const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

/** The argmax labels of logits(x) over x in batches of 500, without grad. */
function labelsOf(logits: (x: Tensor) => Tensor, x: Tensor): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.shape[0]; i += 500) {
    out.push(...torch.tidy(() => torch.noGrad(() => logits(x.slice(0, i, Math.min(i + 500, x.shape[0]))).argmax(1).toArray() as number[])));
  }
  return out;
}

/** The CNN saved beside this file (examples/bag-cnn.pt), trained and saved there first if missing. */
async function savedCnn(steps: number): Promise<Module> {
  const file = path.join(HERE, 'bag-cnn.pt');
  if (fs.existsSync(file)) return jit.load(file).eval();
  const start = Date.now();
  const cnn = await trainCnn(steps);
  cnn.save(file);
  console.log(`CNN trained on clean images: ${steps} steps in ${((Date.now() - start) / 1000).toFixed(1)} s, saved to ${file}`);
  return cnn;
}

async function main(): Promise<void> {
  // Other settings as JSON: npm run example:... -- '{"guidanceScale": 4}'
  const settings = JSON.parse(process.argv[2] ?? '{}');
  const unknown = Object.keys(settings).filter((k) => !(k in BAG_DEFAULTS));
  if (unknown.length > 0) throw new Error(`unknown setting ${unknown.join(', ')}; known: ${Object.keys(BAG_DEFAULTS).join(', ')}`);
  const o = { ...BAG_DEFAULTS, ...settings };
  const cnn = await savedCnn(o.cnnSteps);
  const test = loadFashionMnist({ train: false, padTo: 32 });
  const testLabels = test.labels.toArray() as number[];
  const cnnLabels = (x: Tensor): number[] => labelsOf((b) => cnn.forward(b, torch.zeros([b.shape[0]], { dtype: 'int64' })), x);
  const accuracy = mean(cnnLabels(test.images).map((l, i) => (l === testLabels[i] ? 1 : 0)));
  console.log(`the CNN: ${(accuracy * 100).toFixed(1)}% on the 10,000 test images`);
  const s = await sampleBags(cnn, o);
  const file = path.join(HERE, 'bag.png');
  saveImage(torch.cat([s.unguided, s.guided]), file, { nrow: 16 });
  console.log(`${o.n} images, DDIM ${o.ddimSteps} steps, eta ${o.eta}, seed ${o.seed}; guidanceScale ${o.guidanceScale}, guidanceInterval ${JSON.stringify(o.guidanceInterval)}; ${file}: unguided (top ${o.n / 16} rows), guided (bottom)`);
  // Judged by the project's evaluation (scripts/eval-common.ts, docs/EVAL.md), not the library:
  // judge B, a plain CNN of its own code and training loop (cached in .gd-cache/eval). Judge A
  // is a Classifier trained by trainClassifier, the guiding CNN's own kind, and so not used.
  const { CACHE, cnnForward, cnnJudge } = await import('../scripts/eval-common');
  fs.mkdirSync(CACHE, { recursive: true });
  const train = loadFashionMnist({ train: true, padTo: 32 });
  const judge = cnnJudge(train, 1000, (line) => console.log(line), 'cpu');
  torch.dispose(train.images, train.labels);
  const judged = (x: Tensor): number[] => labelsOf((b) => cnnForward(judge, b), x);
  const judgeAccuracy = mean(judged(test.images).map((l, i) => (l === testLabels[i] ? 1 : 0)));
  console.log(`judge B: ${(judgeAccuracy * 100).toFixed(1)}% on the 10,000 test images`);
  for (const [name, x, seconds] of [['unguided', s.unguided, s.unguidedSeconds], ['guided', s.guided, s.guidedSeconds]] as const) {
    const inModelRange = x.mul(2).sub(1);
    const bags = judged(inModelRange).filter((l) => l === s.bag).length;
    const loss = torch.tidy(() => torch.noGrad(() => cnnLoss(cnn, inModelRange, s.bag).mean().item() as number));
    const cnnBags = cnnLabels(inModelRange).filter((l) => l === s.bag).length;
    inModelRange.dispose();
    console.log(`${name.padEnd(8)} ${seconds.toFixed(1)} s; judged as Bag by judge B: ${bags}/${o.n}, by the guiding CNN: ${cnnBags}/${o.n}; the CNN's mean cross-entropy for Bag ${loss.toFixed(3)}`);
  }
}

if (require.main === module) main().catch((err) => { console.error(err); process.exit(1); });
