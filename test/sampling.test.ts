// sample(): threads, progress, abort, error paths, concurrency and the effect of guidance.
import * as assert from 'assert';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, LinearClassifier, torch, Tensor, Unet } from '../lib';
import { assertClose, f32Tol, FIXTURES, maxAbsDiff } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const REF = path.join(FIXTURES, 'reference-case');

function smallDiffusion(extra: object = {}): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 10, ...extra });
}

describe('sample()', () => {
  it('keeps the event loop responsive while a guided sample runs', async () => {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).eval();
    const d = new GaussianDiffusion(unet, { imageSize: 16, timesteps: 40 });
    const classifier = jit.load(path.join(REF, 'classifier.pt'));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    await d.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([0, 1]), classifierScale: 1 } });
    clearInterval(timer);
    const elapsed = Date.now() - started;
    // A blocked loop would deliver no tick until the end; a free one delivers many (fewer
    // than elapsed/10 when the machine is busy, so the bar is low).
    assert.ok(ticks >= 5, `only ${ticks} ticks in ${elapsed} ms`);
  });

  it('reports progress once per step', async () => {
    const steps: { step: number; total: number; t: number }[] = [];
    await smallDiffusion().sample({ batchSize: 1, onProgress: (p) => steps.push(p) });
    assert.strictEqual(steps.length, 10);
    assert.deepStrictEqual(steps[0], { step: 1, total: 10, t: 9 });
    assert.deepStrictEqual(steps[9], { step: 10, total: 10, t: 0 });
    const ddim: number[] = [];
    await smallDiffusion({ samplingTimesteps: 4 }).sample({ batchSize: 1, onProgress: (p) => ddim.push(p.total) });
    assert.deepStrictEqual(ddim, [4, 4, 4, 4]);
  });

  it('an AbortSignal stops the sample within one step with an AbortError', async () => {
    const controller = new AbortController();
    let seen = 0;
    const p = smallDiffusion({ timesteps: 200 }).sample({
      batchSize: 1,
      signal: controller.signal,
      onProgress: (s) => {
        seen = s.step;
        if (s.step === 3) controller.abort();
      },
    });
    await assert.rejects(p, (err: Error) => err.name === 'AbortError' && /aborted/.test(err.message));
    assert.ok(seen < 10, `ran ${seen} steps after abort`);
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(smallDiffusion().sample({ signal: aborted.signal }), { name: 'AbortError' });
  });

  it('a condFn that throws rejects sample() with that error', async () => {
    const boom = new Error('boom from condFn');
    await assert.rejects(smallDiffusion().sample({ batchSize: 1, condFn: () => { throw boom; } }), (err) => err === boom);
    const rejection = new TypeError('async boom');
    await assert.rejects(smallDiffusion().sample({ batchSize: 1, condFn: async () => { throw rejection; } }), (err) => err === rejection);
  });

  it('a condFn returning a non-tensor, a wrong shape or NaN rejects naming the step', async () => {
    const d = smallDiffusion();
    await assert.rejects(d.sample({ batchSize: 1, condFn: () => undefined as unknown as Tensor }), {
      message: 'condFn at step 0 (t=9) returned undefined; expected a Tensor',
    });
    await assert.rejects(d.sample({ batchSize: 1, condFn: () => 3 as unknown as Tensor }), {
      message: 'condFn at step 0 (t=9) returned 3; expected a Tensor',
    });
    await assert.rejects(d.sample({ batchSize: 2, condFn: () => torch.zeros([2, 3, 4, 4]) }), {
      message: 'condFn at step 0 (t=9) returned a tensor of shape [2, 3, 4, 4]; expected [2, 3, 8, 8]',
    });
    let calls = 0;
    await assert.rejects(
      d.sample({ batchSize: 1, condFn: (x) => (++calls === 3 ? torch.fullLike(x, NaN) : torch.zerosLike(x)) }),
      { message: 'condFn at step 2 (t=7) returned NaN or Inf' },
    );
  });

  it('an async condFn works and gives the same result as a sync one', async () => {
    const d = smallDiffusion();
    const g = (x: Tensor): Tensor => x.mul(-0.2);
    const a = await d.sample({ batchSize: 2, seed: 3, condFn: g });
    const b = await d.sample({ batchSize: 2, seed: 3, condFn: async (x) => { await new Promise((r) => setTimeout(r, 1)); return g(x); } });
    assert.strictEqual(maxAbsDiff(a.toFloat32Array(), b.toFloat32Array()), 0);
  });

  it('a condFn without guidanceKwargs still applies, in DDIM too', async () => {
    for (const samplingTimesteps of [10, 4]) {
      const d = smallDiffusion({ samplingTimesteps });
      const plain = await d.sample({ batchSize: 1, seed: 1 });
      const guided = await d.sample({ batchSize: 1, seed: 1, condFn: (x) => torch.onesLike(x) });
      assert.ok(maxAbsDiff(plain.toFloat32Array(), guided.toFloat32Array()) > 1e-3, `samplingTimesteps ${samplingTimesteps}`);
    }
  });

  it('stepTimeoutMs cuts off a condFn that never settles', async () => {
    await assert.rejects(
      smallDiffusion().sample({ batchSize: 1, stepTimeoutMs: 100, condFn: () => new Promise<Tensor>(() => undefined) }),
      { message: 'condFn at step 0 (t=9) did not settle within 100 ms (stepTimeoutMs)' },
    );
  });

  it('concurrent samples with seeds equal the same samples run one after another', async () => {
    const d = smallDiffusion();
    const seeds = [1, 2, 3, 4];
    const guide = (x: Tensor): Tensor => x.mul(-0.1);
    const serial: Float32Array[] = [];
    for (const seed of seeds) serial.push((await d.sample({ batchSize: 2, seed, condFn: guide })).toFloat32Array());
    const together = await Promise.all(seeds.map((seed) => d.sample({ batchSize: 2, seed, condFn: guide })));
    together.forEach((img, i) => assert.strictEqual(maxAbsDiff(img.toFloat32Array(), serial[i]), 0, `seed ${seeds[i]}`));
    assert.ok(maxAbsDiff(serial[0], serial[1]) > 0.01);
  });

  it('classifierCondFn and classifierGuidance give the same DDIM sample', async () => {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).eval();
    const d = new GaussianDiffusion(unet, { imageSize: 16, timesteps: 50, samplingTimesteps: 5 });
    const classifier = new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 4 });
    const kwargs = { classifier, y: torch.tensor([1, 3]), classifierScale: 4 };
    const a = await d.sample({ batchSize: 2, seed: 9, condFn: classifierCondFn, guidanceKwargs: kwargs });
    const b = await d.sample({ batchSize: 2, seed: 9, condFn: classifierGuidance, guidanceKwargs: kwargs });
    assertClose(a.toFloat32Array(), b.toFloat32Array(), f32Tol(a.toFloat32Array()), 'classifierCondFn vs classifierGuidance DDIM'); // measured 0
  });

  it('guided DDIM raises the classifier log-probability of the targets, more with a larger scale', async () => {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 }).eval();
    const d = new GaussianDiffusion(unet, { imageSize: 16, timesteps: 100, samplingTimesteps: 10 });
    torch.manualSeed(0);
    const classifier = new LinearClassifier({ imageSize: 16, channels: 3, numClasses: 5 }).eval();
    const y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]);
    const meanLogProb = (img: Tensor): number =>
      torch.noGrad(() => {
        const logits = classifier.forward(img.mul(2).sub(1), torch.zeros([8], { dtype: 'int64' }));
        return logits.logSoftmax(-1).index([torch.arange(8), y]).mean().item() as number;
      });
    const scores: number[] = [];
    for (const scale of [0, 2, 8]) {
      const img = await d.sample({ batchSize: 8, seed: 5, condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: scale } });
      scores.push(meanLogProb(img));
    }
    assert.ok(scores[1] > scores[0] && scores[2] > scores[1], `log p: ${scores.join(', ')}`);
  });

  it('clipAfterGuidance: a zero gradient gives the unguided DDIM sample exactly; without it, x0 is left unclamped', async () => {
    const zero = (x: Tensor): Tensor => torch.zerosLike(x);
    const clipped = smallDiffusion({ samplingTimesteps: 5, betaSchedule: 'cosine', clipAfterGuidance: true });
    const plain = smallDiffusion({ samplingTimesteps: 5, betaSchedule: 'cosine' });
    const unguided = await clipped.sample({ batchSize: 2, seed: 9 });
    const a = await clipped.sample({ batchSize: 2, seed: 9, condFn: zero });
    const b = await plain.sample({ batchSize: 2, seed: 9, condFn: zero });
    assert.strictEqual(maxAbsDiff(a.toFloat32Array(), unguided.toFloat32Array()), 0);
    assert.ok(maxAbsDiff(b.toFloat32Array(), unguided.toFloat32Array()) > 1e-3);
    torch.dispose([unguided, a, b]);
  });

  it('autocast float16 is refused on the CPU (bfloat16 runs there), and an unknown dtype is named', () => {
    const model = smallDiffusion().model;
    assert.throws(() => new GaussianDiffusion(model, { imageSize: 8, timesteps: 10, autocast: 'float16' }), {
      name: 'RangeError',
      message: "autocast 'float16' needs a CUDA device (the CPU takes 'bfloat16'); this diffusion samples on cpu",
    });
    assert.throws(() => new GaussianDiffusion(model, { imageSize: 8, timesteps: 10, autocast: 'int8' as never }), {
      name: 'RangeError',
      message: "autocast must be 'float16' or 'bfloat16'; got 'int8'",
    });
  });

  it('cudaGraph is off on the CPU by default, refused when asked for there, and a CPU sample replays nothing', async () => {
    const model = smallDiffusion().model;
    assert.strictEqual(smallDiffusion().options.cudaGraph, false);
    assert.strictEqual(smallDiffusion({ cudaGraph: false }).options.cudaGraph, false);
    assert.throws(() => new GaussianDiffusion(model, { imageSize: 8, timesteps: 10, cudaGraph: true }), {
      name: 'RangeError',
      message: 'cudaGraph needs a CUDA device; this diffusion samples on cpu',
    });
    assert.throws(() => smallDiffusion({ cudaGraph: 'yes' }), { name: 'TypeError', message: /cudaGraph/ });
    const before = torch.cuda.graphStats();
    // supported: built with CUDA; a CUDA build may run where no GPU is.
    if (torch.cuda.isAvailable()) assert.strictEqual(before.supported, true);
    const img = await smallDiffusion({ samplingTimesteps: 5 }).sample({ batchSize: 2, seed: 1 });
    assert.deepStrictEqual(torch.cuda.graphStats(), before);
    img.dispose();
  });

  it('bad options and guidanceKwargs reject cleanly', async () => {
    const d = smallDiffusion();
    const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
    await assert.rejects(d.sample({ batchSize: 0 }), { message: 'Expected positive integer for batchSize but received 0' });
    await assert.rejects(d.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: { y: torch.tensor([1, 2]) } as never }), {
      message: 'guidanceKwargs.classifier: expected a Module (a Classifier, or jit.load of a checkpoint)',
    });
    await assert.rejects(d.sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([1]) } }), {
      message: 'guidanceKwargs.y has 1 labels but batchSize is 2',
    });
    await assert.rejects(d.sample({ batchSize: 2, condFn: classifierCondFn, guidanceKwargs: { classifier, y: torch.tensor([1, 4]) } }), {
      message: 'guidanceKwargs.y has class 4, outside 0..3',
    });
    await assert.rejects(d.sample({ condFnInput: 'z' as never }), { message: "condFnInput must be 'mean' or 'x'; got 'z'" });
  });

  it('a model with the wrong forward is rejected at construction', () => {
    const classifier = new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 4 });
    assert.throws(() => new GaussianDiffusion(classifier, { imageSize: 8, timesteps: 10 }), /GaussianDiffusion: the model's forward\(x, t\)/);
    assert.throws(() => new GaussianDiffusion(toy, { imageSize: 8, timesteps: 10, samplingTimesteps: 11 }), {
      message: 'samplingTimesteps (11) cannot exceed timesteps (10)',
    });
    assert.throws(() => new GaussianDiffusion(toy, { imageSize: 8, timesteps: 10, betaSchedule: 'foo' as never }), {
      message: "betaSchedule must be one of linear, cosine, sigmoid; got 'foo'",
    });
  });

  it('a classifier that fails inside TorchScript rejects with LibTorch\'s cause, not only "the TorchScript interpreter failed"', async () => {
    const d = smallDiffusion(); // 8x8x3 images: 192 features
    const classifier = new LinearClassifier({ imageSize: 4, channels: 3, numClasses: 5 }); // expects 48
    for (const condFn of [classifierGuidance, classifierCondFn]) {
      await assert.rejects(d.sample({ batchSize: 2, seed: 1, condFn, guidanceKwargs: { classifier, y: torch.tensor([0, 1]) } }), {
        message: 'mat1 and mat2 shapes cannot be multiplied (2x192 and 48x5)',
      });
    }
  });
});
