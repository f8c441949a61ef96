// Training from TypeScript on a real Fashion-MNIST slice: the loss falls, checkpoints resume
// to the same state, abort works, and missing data is named.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Classifier, loadFashionMnist, torch, trainClassifier, trainDiffusion, Unet } from '../lib';

describe('training', function () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-train-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const ds = loadFashionMnist({ limit: 256 });

  it('loads Fashion-MNIST as images in [-1, 1] with labels and class names', () => {
    assert.deepStrictEqual(ds.images.shape, [256, 1, 28, 28]);
    assert.deepStrictEqual(ds.labels.shape, [256]);
    assert.strictEqual(ds.images.min().item(), -1);
    assert.strictEqual(ds.images.max().item(), 1);
    assert.strictEqual(ds.classNames[7], 'Sneaker');
    // The first training label of Fashion-MNIST is 9 (Ankle boot).
    assert.strictEqual(ds.labels.select(0, 0).item(), 9);
    assert.deepStrictEqual(loadFashionMnist({ limit: 2, padTo: 32 }).images.shape, [2, 1, 32, 32]);
    assert.throws(() => loadFashionMnist({ dir: tmp }), {
      message: `Fashion-MNIST not found in ${tmp} (missing train-images-idx3-ubyte.gz); install it with: apt-get install dataset-fashion-mnist`,
    });
  });

  it('a few diffusion training steps lower the loss', async () => {
    torch.manualSeed(0);
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
    const progress: number[] = [];
    const r = await trainDiffusion(unet, { data: ds.images, steps: 30, batchSize: 8, lr: 2e-3, seed: 1, onProgress: (p) => progress.push(p.step) });
    assert.strictEqual(r.steps, 30);
    assert.strictEqual(progress.length, 30);
    const first = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(last < first * 0.8, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    assert.strictEqual(r.ema.training, false);
  });

  it("autocast 'bfloat16' trains on the CPU: losses within bf16 rounding of float32's, not equal, falling; weights stay float32", async () => {
    const run = async (autocast?: 'bfloat16') => {
      torch.manualSeed(0);
      const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
      return trainDiffusion(unet, { data: ds.images, steps: 30, batchSize: 8, lr: 2e-3, seed: 1, autocast });
    };
    const f32 = await run();
    const bf16 = await run('bfloat16');
    // Same weights and draws: the first step differs only by the forward's precision
    // (measured 1.4e-3 on a loss of 1.32; bfloat16 keeps 8 bits of mantissa, 4e-3 relative).
    const d0 = Math.abs(bf16.losses[0] - f32.losses[0]);
    assert.ok(d0 > 0 && d0 < 0.01 * f32.losses[0], `first loss ${f32.losses[0]} vs ${bf16.losses[0]}`);
    const mean = (l: Float64Array, a: number, b: number): number => l.slice(a, b).reduce((x, y) => x + y) / (b - a);
    assert.ok(mean(bf16.losses, 25, 30) < 0.8 * mean(bf16.losses, 0, 5), `bf16 loss ${mean(bf16.losses, 0, 5)} -> ${mean(bf16.losses, 25, 30)}`);
    assert.ok(Math.abs(mean(bf16.losses, 25, 30) - mean(f32.losses, 25, 30)) < 0.05, 'the last 5 steps within 0.05 of float32');
    for (const [k, p] of Object.entries(bf16.model.namedParameters())) assert.strictEqual(p.dtype, 'float32', k);
    for (const [k, p] of Object.entries(bf16.ema.namedParameters())) assert.strictEqual(p.dtype, 'float32', k);
  });

  it('a checkpoint saved mid-training resumes to the same state', async () => {
    const data = ds.images;
    const opts = { data, batchSize: 8, lr: 1e-3, seed: 3 };
    torch.manualSeed(5);
    const straight = await trainDiffusion(new Unet({ dim: 8, dimMults: [1, 2], channels: 1 }), { ...opts, steps: 6 });
    torch.manualSeed(5);
    const ckpt = path.join(tmp, 'half.pt');
    await trainDiffusion(new Unet({ dim: 8, dimMults: [1, 2], channels: 1 }), { ...opts, steps: 3, checkpointPath: ckpt, checkpointEvery: 3 });
    assert.ok(fs.existsSync(ckpt) && fs.existsSync(`${ckpt}.state`));
    const resumed = await trainDiffusion(new Unet({ dim: 8, dimMults: [1, 2], channels: 1 }), { ...opts, steps: 6, resumeFrom: ckpt });
    assert.strictEqual(resumed.stepsRun, 3);
    assert.deepStrictEqual(Array.from(resumed.losses), Array.from(straight.losses.slice(3)));
    const a = straight.model.namedParameters();
    const b = resumed.model.namedParameters();
    for (const k of Object.keys(a)) assert.strictEqual(a[k].sub(b[k]).abs().max().item(), 0, k);
  });

  it('classifier training lowers its cross-entropy', async () => {
    torch.manualSeed(0);
    const cls = new Classifier({ imageSize: 28, channels: 1, numClasses: 10, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' });
    const r = await trainClassifier(cls, { data: ds.images, labels: ds.labels, steps: 40, batchSize: 32, lr: 2e-3, timesteps: 100 });
    const first = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(last < first, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });

  it('clean: true trains on the images as they are at t = 0 (the first loss is the cross-entropy worked out here)', async () => {
    // Every batch is one image, so the first step's loss (taken before the update) is known.
    const x = ds.images.narrow(0, 0, 1).repeat([8, 1, 1, 1]);
    const y = ds.labels.narrow(0, 0, 1).repeat([8]);
    const make = (): Classifier => { torch.manualSeed(0); return new Classifier({ imageSize: 28, channels: 1, numClasses: 10, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' }); };
    const expected = torch.tidy(() => torch.nn.functional.crossEntropy(make().forward(x, torch.zeros([8], { dtype: 'int64' })), y).item() as number);
    // Linear betas over 20 steps: t = 0 still adds noise of std 0.07, which clean leaves out.
    const opts = { data: x, labels: y, steps: 1, batchSize: 4, timesteps: 20, betaSchedule: 'linear' as const };
    const clean = await trainClassifier(make(), { ...opts, clean: true });
    const noisy = await trainClassifier(make(), { ...opts, maxTimestep: 0 });
    const [dClean, dNoisy] = [Math.abs(clean.losses[0] - expected), Math.abs(noisy.losses[0] - expected)];
    console.log(`      first loss ${expected.toFixed(6)} worked out here: clean is ${dClean.toExponential(2)} from it (bound 1e-6), maxTimestep 0 (noise of t = 0) ${dNoisy.toExponential(2)}`);
    // Seeded draws: an untrained classifier moves little with the noise (4.55e-5 to 4.58e-5 measured).
    assert.ok(dClean < 1e-6);
    assert.ok(dNoisy > 1e-5, 'maxTimestep 0 adds noise, clean does not');
    await assert.rejects(trainClassifier(make(), { ...opts, clean: true, maxTimestep: 3 }), { message: 'clean trains at t = 0: maxTimestep must be 0 or unset; got 3' });
    await assert.rejects(trainClassifier(make(), { ...opts, clean: 1 as never }), { message: 'Expected boolean for clean but received 1' });
    await assert.rejects(trainDiffusion(make(), { data: x, steps: 1, clean: true } as never), /unknown option 'clean'/);
    torch.dispose([x, y]);
  });

  it('an AbortSignal stops training with an AbortError', async () => {
    const controller = new AbortController();
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
    const p = trainDiffusion(unet, { data: ds.images, steps: 1000, batchSize: 4, signal: controller.signal, onProgress: (s) => s.step === 2 && controller.abort() });
    await assert.rejects(p, { name: 'AbortError' });
  });

  it('an onProgress that throws stops training and rejects with that very error, as sample() does', async () => {
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
    const thrown = new RangeError('progress handler failed at step 2');
    const seen: number[] = [];
    const p = trainDiffusion(unet, {
      data: ds.images, steps: 1000, batchSize: 4,
      onProgress: ({ step }) => {
        seen.push(step);
        if (step === 2) throw thrown;
      },
    });
    await assert.rejects(p, (err) => err === thrown);
    // Not called again after it threw.
    assert.strictEqual(seen[seen.length - 1], 2);
    // A thrown non-Error value comes through as well.
    await assert.rejects(
      trainClassifier(new Classifier({ imageSize: 28, channels: 1, numClasses: 10, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' }), {
        data: ds.images, labels: ds.labels, steps: 1000, batchSize: 4, onProgress: () => { throw 'plain string'; },
      }),
      (err) => err === 'plain string',
    );
  });
});
