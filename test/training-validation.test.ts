// Training options and resume checked before any step: resumeFrom loads into the model passed
// (and names the first name or shape that differs), minSnrGamma, seed and timesteps are
// validated as sample() and GaussianDiffusion validate them.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Classifier, GaussianDiffusion, jit, torch, trainClassifier, trainDiffusion, Unet } from '../lib';
import { FIXTURES } from './helpers';

describe('training options and resume', function () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-train-validation-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  torch.manualSeed(1);
  const data = torch.tidy(() => torch.rand([16, 1, 8, 8]).mul(2).sub(1));
  const labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3], { dtype: 'int64' });
  const opts = { data, batchSize: 4, lr: 1e-3, seed: 3, timesteps: 50 };
  const unet = (dim = 8): Unet => new Unet({ dim, dimMults: [1, 2], channels: 1 });
  const ckpt = path.join(tmp, 'unet.pt');

  before(async () => {
    torch.manualSeed(5);
    await trainDiffusion(unet(), { ...opts, steps: 2, checkpointPath: ckpt });
  });

  it('resumeFrom trains the model passed, in place, to the straight run\'s weights', async () => {
    torch.manualSeed(5);
    const straight = await trainDiffusion(unet(), { ...opts, steps: 4 });
    torch.manualSeed(77); // other initial weights: the checkpoint's must replace them all
    const model = unet();
    const resumed = await trainDiffusion(model, { ...opts, steps: 4, resumeFrom: ckpt });
    assert.strictEqual(resumed.model, model);
    assert.strictEqual(resumed.stepsRun, 2);
    assert.deepStrictEqual(Array.from(resumed.losses), Array.from(straight.losses.slice(2)));
    const a = straight.model.namedParameters();
    const b = model.namedParameters();
    assert.deepStrictEqual(Object.keys(b), Object.keys(a));
    for (const k of Object.keys(a)) assert.strictEqual(a[k].sub(b[k]).abs().max().item(), 0, k);
    // A fresh run returns the module passed too.
    const fresh = unet();
    assert.strictEqual((await trainDiffusion(fresh, { ...opts, steps: 1 })).model, fresh);
  });

  it('resumeFrom a checkpoint of another width names the first shape that differs, and leaves the model as it was', async () => {
    torch.manualSeed(9);
    const wide = unet(16);
    const before = wide.namedParameters()['init_conv.weight'].clone();
    await assert.rejects(trainDiffusion(wide, { ...opts, steps: 4, resumeFrom: ckpt }), {
      message: `cannot load training state ${ckpt}.state: the checkpoint does not match the model: 'init_conv.weight' has shape [8, 1, 7, 7] in the checkpoint and [16, 1, 7, 7] in the model`,
    });
    assert.strictEqual(wide.namedParameters()['init_conv.weight'].sub(before).abs().max().item(), 0);
  });

  it('trainClassifier resuming from a Unet checkpoint says the checkpoint does not match the classifier (it blamed the logits)', async () => {
    const cls = new Classifier({ imageSize: 8, channels: 1, numClasses: 4, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' });
    await assert.rejects(trainClassifier(cls, { ...opts, labels, steps: 4, resumeFrom: ckpt }), {
      message: `cannot load training state ${ckpt}.state: the checkpoint does not match the classifier: 'init_conv.weight' has shape [8, 1, 7, 7] in the checkpoint and [8, 1, 3, 3] in the classifier`,
    });
  });

  it('a name on one side only is named, whichever side has it', async () => {
    const classifier = (numResBlocks: number): Classifier =>
      new Classifier({ imageSize: 8, channels: 1, numClasses: 4, dim: 8, dimMults: [1, 2], numResBlocks, attentionResolutions: [], pool: 'avg' });
    const one = path.join(tmp, 'one-block.pt');
    const two = path.join(tmp, 'two-blocks.pt');
    await trainClassifier(classifier(1), { ...opts, labels, steps: 1, checkpointPath: one });
    await trainClassifier(classifier(2), { ...opts, labels, steps: 1, checkpointPath: two });
    await assert.rejects(trainClassifier(classifier(2), { ...opts, labels, steps: 2, resumeFrom: one }), {
      message: `cannot load training state ${one}.state: the checkpoint does not match the classifier: the classifier has 'downs.0.blocks.1.mlp.1.weight', which the checkpoint lacks`,
    });
    await assert.rejects(trainClassifier(classifier(1), { ...opts, labels, steps: 2, resumeFrom: two }), /^Error: cannot load training state .*: the checkpoint does not match the classifier: it has 'downs\.0\.blocks\.1\.[^']+', which the classifier lacks$/);
  });

  it('minSnrGamma must be positive and finite (0 trained with a loss of 0)', async () => {
    for (const [gamma, shown] of [[0, '0'], [-1, '-1'], [NaN, 'nan'], [Infinity, 'inf']] as const) {
      await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 2, minSnrLossWeight: true, minSnrGamma: gamma }), {
        name: 'RangeError',
        message: `Expected a positive finite number for minSnrGamma but received ${shown}`,
      });
    }
    const r = await trainDiffusion(unet(), { ...opts, steps: 2, minSnrLossWeight: true, minSnrGamma: 0.5 });
    assert.ok(r.losses.every((l) => l > 0), String(r.losses));
  });

  it('seed: -1 is refused by the trainers as sample() refuses it', async () => {
    const message = 'Expected seed to be an integer in 0..9007199254740991 but received -1';
    await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 1, seed: -1 }), { name: 'RangeError', message });
    await assert.rejects(trainClassifier(new Classifier({ imageSize: 8, channels: 1, numClasses: 4, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' }), { ...opts, labels, steps: 1, seed: -1 }), {
      name: 'RangeError',
      message,
    });
    const d = new GaussianDiffusion(jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt')), { imageSize: 8, timesteps: 10 });
    await assert.rejects(d.sample({ batchSize: 1, seed: -1 }), { name: 'RangeError', message });
  });

  it("autocast other than 'bfloat16' or 'float16' is a RangeError naming the value", async () => {
    await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 1, autocast: 'float64' as 'bfloat16' }), {
      name: 'RangeError',
      message: "autocast must be 'float16' or 'bfloat16'; got 'float64'",
    });
    await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 1, autocast: 16 as unknown as 'bfloat16' }), { name: 'TypeError' });
  });

  it('a float64 model, labels beyond the classifier\'s classes and float16 autocast on the CPU say what is wrong (issue 21 D18)', async () => {
    await assert.rejects(trainDiffusion(unet().to('float64'), { ...opts, data: data.to('float64'), steps: 1 }), {
      name: 'RangeError',
      message: /^the model's parameters must be float32 to train \(its [\w.]+ is float64\): convert it with \.to\('float32'\); autocast: 'bfloat16' lowers the precision of the forward only$/,
    });
    const classifier = new Classifier({ imageSize: 8, channels: 1, numClasses: 3, dim: 8, dimMults: [1, 2] });
    // labels holds 0..3: 3 is not a class of a 3-class classifier (cross_entropy said "Target 3 is out of bounds").
    await assert.rejects(trainClassifier(classifier, { ...opts, labels, steps: 1 }), {
      message: 'a class label of 3 for a classifier of 3 classes: labels must be in [0, 3)',
    });
    await assert.rejects(trainClassifier(classifier, { ...opts, labels: labels.sub(1), steps: 1 }), {
      message: 'a class label of -1 for a classifier of 3 classes: labels must be in [0, 3)',
    });
    // Sampling refuses it the same way.
    await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 1, autocast: 'float16' }), {
      name: 'RangeError',
      message: "autocast 'float16' needs a CUDA device (the CPU takes 'bfloat16'); this model trains on cpu",
    });
    assert.throws(() => new GaussianDiffusion(unet(), { imageSize: 8, channels: 1, timesteps: 10, autocast: 'float16' }), /autocast 'float16' needs a CUDA device/);
  });

  it('timesteps above 100,000 is a RangeError before the schedule is built', async () => {
    await assert.rejects(trainDiffusion(unet(), { ...opts, steps: 1, timesteps: 1e8 }), { name: 'RangeError', message: 'timesteps must be at most 100000; got 100000000' });
  });
});
