// The class-conditional Unet (Unet({ numClasses }), lucidrains' classifier_free_guidance.Unet)
// against THEIR module traced in test/fixtures/lucidrains-cfg/unet_cfg.pt (scripts/fixtures/
// lucidrains_cfg.py: their Unet(dim=8, dim_mults=(1, 2), channels=3, num_classes=3) after
// torch.manual_seed(1234)), and trainDiffusion({ labels, condDropProb }) that trains it for
// classifier-free guidance (issue 22 §2).
import * as assert from 'assert';
import * as path from 'path';
import { jit, Module, openai, Tensor, torch, trainDiffusion, Unet } from '../lib';
import { FIXTURES, linearAlphaBars, maxAbsDiff, printMeasured } from './helpers';

const THEIRS = path.join(FIXTURES, 'lucidrains-cfg', 'unet_cfg.pt');
const CONFIG = { dim: 8, dimMults: [1, 2], channels: 3, numClasses: 3 };

// Their state dict under our names: the fixture wraps their classes_emb (as `emb`, with a copy
// of null_classes_emb as `null`) inside a scripted module (`net.unet`).
function theirStateDict(theirs: Module): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(theirs.stateDict())) {
    const name = k.replace(/^net\.unet\./, '').replace(/^classes_emb\.emb\./, 'classes_emb.');
    if (name === 'classes_emb.null') v.dispose();
    else out[name] = v;
  }
  return out;
}

describe("class-conditional Unet: lucidrains' classifier_free_guidance.Unet", () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('with their weights, forward(x, t, y) is theirs for every label and the null label (3)', () => {
    const before = torch.memory().tensors;
    const theirs = jit.load(THEIRS).eval();
    const ours = new Unet(CONFIG).eval();
    const sd = theirStateDict(theirs);
    ours.loadStateDict(sd);
    torch.dispose(Object.values(sd));
    assert.strictEqual(ours.attribute('null_class'), 3);
    assert.strictEqual(ours.attribute('num_classes'), 3);
    torch.manualSeed(7);
    const x = torch.randn([4, 3, 16, 16]);
    const t = torch.tensor([0, 3, 500, 999], { dtype: 'int64' });
    const y = torch.tensor([0, 1, 2, 3], { dtype: 'int64' });
    const [a, b] = [ours.forward(x, t, y) as Tensor, theirs.forward(x, t, y) as Tensor];
    const d = maxAbsDiff(a.toFloat32Array(), b.toFloat32Array());
    printMeasured('max |ours - theirs| over labels 0, 1, 2 and null', d, 2e-6);
    assert.ok(d <= 2e-6, `${d}`);
    // The labels reach the output: the null row differs from the class rows.
    const rows = torch.tidy(() => (a.narrow(0, 0, 3).sub(a.narrow(0, 3, 1))).abs().max().item() as number);
    assert.ok(rows > 1e-3, `${rows}`);
    torch.dispose([x, t, y, a, b]);
    ours.dispose();
    theirs.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('the same seed draws their initial weights (built in the order of their __init__)', () => {
    const theirs = jit.load(THEIRS);
    const sd = theirStateDict(theirs);
    torch.manualSeed(1234);
    const ours = new Unet(CONFIG);
    const mine = ours.stateDict();
    assert.deepStrictEqual(Object.keys(mine).sort(), Object.keys(sd).sort());
    let worst = 0;
    for (const k of Object.keys(mine)) worst = Math.max(worst, maxAbsDiff(mine[k].toFloat32Array(), sd[k].toFloat32Array()));
    printMeasured('max |initial weights ours - theirs|', worst, 0);
    assert.strictEqual(worst, 0);
    torch.dispose([...Object.values(mine), ...Object.values(sd)]);
    ours.dispose();
    theirs.dispose();
  });

  it('rejects bad labels and options with clear errors', () => {
    const m = new Unet(CONFIG).eval();
    const x = torch.zeros([2, 3, 16, 16]);
    const t = torch.zeros([2], { dtype: 'int64' });
    const bad = torch.tensor([0, 4], { dtype: 'int64' });
    assert.throws(() => m.forward(x, t, bad), /Unet: class labels must be in \[0, 3\] \(3: no class\); got 0\.\.4/);
    const short = torch.tensor([0], { dtype: 'int64' });
    assert.throws(() => m.forward(x, t, short), /Unet: y must hold one class label per image \(2\)/);
    assert.throws(() => new Unet({ ...CONFIG, selfCondition: true }), /num_classes \(the classifier-free guidance Unet\) has no self_condition/);
    assert.throws(() => new Unet({ ...CONFIG, numClasses: -1 }), /num_classes must be a positive integer/);
    torch.dispose([x, t, bad, short]);
    m.dispose();
  });
});

describe('trainDiffusion({ labels, condDropProb }): label dropout for classifier-free guidance', () => {
  const T = 25;  // linear betas end at 0.02 * 1000 / T: below 1 from T > 20
  const B = 8;
  const SEED = 11;
  const P = 0.5;

  // The trainer's draws, in its order, from a CPU generator seeded as it is: batch indices,
  // timesteps, noise, then the dropout coin (the global generator after manualSeed is one).
  function firstStepLoss(model: Module, data: Tensor, labels: Tensor, p: number, nullClass = 3): { loss: number; dropped: number } {
    return torch.tidy(() => {
      torch.manualSeed(SEED);
      const idx = torch.randint(0, data.shape[0], [B], { dtype: 'int64' });
      const t = torch.randint(0, T, [B], { dtype: 'int64' });
      const noise = torch.randn([B, ...data.shape.slice(1)]);
      const drop = p > 0 ? torch.rand([B]).lt(p) : torch.zeros([B], { dtype: 'bool' });
      const y = torch.where(drop, torch.full([B], nullClass, { dtype: 'int64' }), labels.indexSelect(0, idx));
      const ab = torch.tensor(linearAlphaBars(T)).indexSelect(0, t).reshape([B, 1, 1, 1]);
      const x0 = data.indexSelect(0, idx);
      const xt = ab.sqrt().mul(x0).add(ab.neg().add(1).sqrt().mul(noise));
      const out = model.forward(xt, t, y) as Tensor;
      return { loss: out.sub(noise).square().mean().item() as number, dropped: drop.sum().item() as number };
    });
  }

  it('the first step trains on the labels dropped to the null class by the coin worked out here', async () => {
    torch.manualSeed(3);
    const data = torch.rand([6, 3, 16, 16]).mul(2).sub(1);
    const labels = torch.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' });
    const make = (): Unet => { torch.manualSeed(5); return new Unet(CONFIG); };
    const opts = { data, labels, steps: 1, batchSize: B, timesteps: T, betaSchedule: 'linear' as const, seed: SEED };
    for (const p of [0, P]) {
      const expected = firstStepLoss(make(), data, labels, p);
      const r = await trainDiffusion(make(), { ...opts, condDropProb: p });
      const d = Math.abs(r.losses[0] - expected.loss);
      printMeasured(`condDropProb ${p}: first loss ${expected.loss.toFixed(6)} with ${expected.dropped}/${B} labels dropped, |trainer - here|`, d, 1e-6);
      assert.ok(d <= 1e-6, `${r.losses[0]} vs ${expected.loss}`);
      if (p > 0) assert.ok(expected.dropped > 0 && expected.dropped < B, 'the seed drops some labels, not all');
      r.ema.dispose();
      r.model.dispose();
    }
    // Without dropout the null class is never seen: the loss with every label dropped differs.
    const allDropped = firstStepLoss(make(), data, torch.full([6], 3, { dtype: 'int64' }), 0);
    const none = firstStepLoss(make(), data, labels, 0);
    assert.ok(Math.abs(allDropped.loss - none.loss) > 1e-5);
    torch.dispose([data, labels]);
  });

  it("openai's UNetModel with num_classes + 1 labels and nullClass given: the same dropout", async () => {
    torch.manualSeed(3);
    const data = torch.rand([6, 1, 8, 8]).mul(2).sub(1);
    const labels = torch.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' });
    const make = (): Module => {
      torch.manualSeed(5);
      return new openai.UNetModel({ imageSize: 8, inChannels: 1, modelChannels: 32, outChannels: 1, numResBlocks: 1, attentionResolutions: [], numClasses: 4 });
    };
    const expected = firstStepLoss(make(), data, labels, P, 3);
    const r = await trainDiffusion(make(), { data, labels, steps: 1, batchSize: B, timesteps: T, betaSchedule: 'linear', seed: SEED, condDropProb: P, nullClass: 3 });
    const d = Math.abs(r.losses[0] - expected.loss);
    printMeasured(`UNetModel, condDropProb ${P}: first loss ${expected.loss.toFixed(6)} with ${expected.dropped}/${B} dropped, |trainer - here|`, d, 1e-6);
    assert.ok(d <= 1e-6);
    await assert.rejects(trainDiffusion(make(), { data, labels, steps: 1, batchSize: B, timesteps: T, condDropProb: P }), /condDropProb needs the label of "no class": give nullClass/);
    torch.dispose([data, labels]);
    r.ema.dispose();
    r.model.dispose();
  });

  it('rejects what cannot be trained, naming it', async () => {
    const data = torch.zeros([4, 3, 16, 16]);
    const labels = torch.tensor([0, 1, 2, 0], { dtype: 'int64' });
    const m = new Unet(CONFIG);
    const plain = new Unet({ dim: 8, dimMults: [1, 2], channels: 3 });
    const o = { data, steps: 1, batchSize: 2, timesteps: T };
    await assert.rejects(trainDiffusion(m, { ...o, labels, condDropProb: 1 }), { message: 'condDropProb must be in [0, 1); got 1' });
    await assert.rejects(trainDiffusion(m, { ...o, condDropProb: 0.1 }), { message: 'condDropProb drops class labels: give labels' });
    await assert.rejects(trainDiffusion(plain, { ...o, labels }), /labels need a class-conditional model \(forward\(x, t, y\)\)/);
    const three = torch.tensor([0, 1, 3, 0], { dtype: 'int64' });
    await assert.rejects(trainDiffusion(m, { ...o, labels: three, condDropProb: 0.1 }), { message: 'a class label of 3 with the null class 3: labels must be in [0, 3)' });
    const short = torch.tensor([0, 1], { dtype: 'int64' });
    await assert.rejects(trainDiffusion(m, { ...o, labels: short }), /labels must be a 1-D tensor with one class index per image \(4\)/);
    await assert.rejects(trainDiffusion(m, { ...o, labels, condDrop: 0.1 } as never), /unknown option 'condDrop'/);
    torch.dispose([data, labels, three, short]);
    m.dispose();
    plain.dispose();
  });
});
