// use_checkpoint (their gradient checkpointing of ResBlocks and AttentionBlocks): a training step
// of a net built with it gives the same loss and gradients as the same net without it, with
// dropout (the recomputation must draw the same masks), scale-shift norm, resampling ResBlocks,
// attention and class labels; forward() and sampling are untouched. The memory it saves is
// measured by bench/openai_checkpoint.ts (bench/OPENAI_CHECKPOINT.md).
import * as assert from 'assert';
import { Module, openai, torch, Tensor } from '../lib';

// The largest difference of gradients allowed between the two ways, relative to the largest
// gradient (float32: the recomputation runs the same ops on the same values; only the order in
// which autograd sums the gradients of a tensor with several consumers can differ).
const GRAD_BOUND = 1e-5;
// Under bfloat16 autocast the same, except that a bfloat16 activation with three consumers (the
// input conv's output: the first ResBlock's norm and residual, and the last skip) sums their
// gradients in bfloat16 in another order: measured 8.1e-4 of the largest gradient, where running
// in float32 instead moves them by 9.1e-3.
const BF16_GRAD_BOUND = 2e-3;

const UNET: openai.UNetModelOptions = {
  imageSize: 16,
  inChannels: 3,
  modelChannels: 32,
  outChannels: 6, // learned sigma: the hybrid loss
  numResBlocks: 1,
  attentionResolutions: [1, 2],
  channelMult: [1, 2],
  dropout: 0.3,
  numClasses: 3,
  numHeadChannels: 16,
  useScaleShiftNorm: true,
  resblockUpdown: true,
};

const ENCODER: openai.EncoderUNetModelOptions = {
  imageSize: 16,
  inChannels: 3,
  modelChannels: 32,
  outChannels: 5,
  numResBlocks: 1,
  attentionResolutions: [2],
  channelMult: [1, 2],
  dropout: 0.3,
  numHeadChannels: 16,
  useScaleShiftNorm: true,
  resblockUpdown: true,
  pool: 'attention',
};

// Every weight moved off its init (their zero_module leaves the blocks' last convs at zero, which
// would zero most gradients), the same in both nets.
function randomize(a: Module, b: Module): void {
  torch.manualSeed(11);
  torch.tidy(() => {
    const sd: Record<string, Tensor> = {};
    for (const [name, p] of Object.entries(a.namedParameters())) sd[name] = p.add(torch.randnLike(p).mul(0.2));
    a.loadStateDict(sd);
    b.loadStateDict(sd);
  });
}

interface Grads {
  log: Record<string, number>;
  grads: Record<string, Float32Array>;
  /** The most bytes in CPU tensors during the step, above those held before it. */
  peak: number;
}

function grads(net: Module): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, p] of Object.entries(net.namedParameters())) {
    const g = p.grad;
    assert.ok(g, `${name} has a gradient`);
    out[name] = Float32Array.from(g.toFloat32Array());
    g.dispose();
  }
  return out;
}

// The largest |a - b| over all gradients, relative to the largest |a|.
function worstRelative(a: Record<string, Float32Array>, b: Record<string, Float32Array>): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (const name of Object.keys(a)) {
    assert.strictEqual(a[name].length, b[name].length, name);
    a[name].forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - b[name][i]));
      scale = Math.max(scale, Math.abs(v));
    });
  }
  return { diff: diff / scale, scale };
}

describe('openai use_checkpoint (gradient checkpointing in training)', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it('UNetModel: a TrainLoop step gives the same loss and gradients of every parameter (float32 and bfloat16 autocast), and the same forward', () => {
    const before = torch.memory().tensors;
    torch.manualSeed(1);
    const plain = new openai.UNetModel({ ...UNET, useCheckpoint: false });
    const ckpt = new openai.UNetModel({ ...UNET, useCheckpoint: true });
    assert.strictEqual(ckpt.attribute('use_checkpoint'), true);
    assert.strictEqual(plain.attribute('use_checkpoint'), false);
    randomize(plain, ckpt);
    torch.manualSeed(5);
    const batch = torch.tidy(() => torch.rand([4, 3, 16, 16]).mul(2).sub(1));
    const y = torch.tensor([0, 2, 1, 2], { dtype: 'int64' });
    const t = torch.tensor([3, 250, 600, 999], { dtype: 'int64' });
    const weights = torch.tensor([1, 1, 1, 1]);
    const noise = torch.randn([4, 3, 16, 16]);
    // Each step starts from these weights (a step's AdamW update moves them).
    const init = torch.tidy(() => Object.fromEntries(Object.entries(plain.namedParameters()).map(([k, v]) => [k, v.clone()])));
    // forward() is the TorchScript one, in eval and in training mode (with gradients) alike.
    torch.tidy(() => {
      for (const mode of ['eval', 'train'] as const) {
        plain[mode]();
        ckpt[mode]();
        torch.manualSeed(3);
        const p = plain.forward(batch, t, y).toFloat32Array();
        torch.manualSeed(3);
        const c = ckpt.forward(batch, t, y).toFloat32Array();
        assert.deepStrictEqual(c, p, `forward in ${mode} mode`);
      }
    });
    const step = (net: Module, dropoutSeed: number, autocast?: 'bfloat16'): Grads =>
      torch.tidy(() => {
        net.loadStateDict(init);
        const diffusion = openai.createGaussianDiffusion(net, { learn_sigma: true, image_size: 16 }, autocast ? { autocast } : {});
        const loop = new openai.TrainLoop(diffusion, { lr: 1e-4 });
        torch.manualSeed(dropoutSeed); // dropout draws from the global generator
        torch.resetCpuPeakMemoryStats();
        const held = torch.cpuMemoryStats().allocated;
        const log = loop.runStep(batch, { y, t, weights, noise });
        return { log, grads: grads(net), peak: torch.cpuMemoryStats().peakAllocated - held };
      });
    const a = step(plain, 7);
    const b = step(ckpt, 7);
    const { diff, scale } = worstRelative(a.grads, b.grads);
    console.log(`      loss ${a.log.loss.toFixed(7)} without, ${b.log.loss.toFixed(7)} with; grad_norm ${a.log.grad_norm.toFixed(6)} / ${b.log.grad_norm.toFixed(6)}; ` +
      `${Object.keys(a.grads).length} parameters, max |grad diff| ${diff.toExponential(2)} of the largest |grad| ${scale.toExponential(2)}`);
    assert.ok(Math.abs(a.log.loss - b.log.loss) <= GRAD_BOUND * Math.abs(a.log.loss), `loss ${a.log.loss} vs ${b.log.loss}`);
    assert.ok(diff <= GRAD_BOUND, `gradients differ by ${diff}`);
    // The blocks' activations are not kept: the step's peak of tensor bytes is lower.
    console.log(`      tensors the step added at its peak: ${(a.peak / 2 ** 20).toFixed(2)} MiB without, ${(b.peak / 2 ** 20).toFixed(2)} MiB with`);
    assert.ok(b.peak < a.peak, `peak ${b.peak} with checkpointing, ${a.peak} without`);
    // Other dropout masks move the gradients far beyond the bound: the equality above needs the
    // recomputation to draw the masks of the forward.
    const other = step(plain, 8);
    const { diff: byMask } = worstRelative(a.grads, other.grads);
    console.log(`      the same step with other dropout masks: max |grad diff| ${byMask.toExponential(2)} of the largest`);
    assert.ok(byMask > 1e3 * GRAD_BOUND);

    // Under the CPU's bfloat16 autocast the recomputation casts as the forward did.
    const a16 = step(plain, 7, 'bfloat16');
    const b16 = step(ckpt, 7, 'bfloat16');
    const { diff: diff16 } = worstRelative(a16.grads, b16.grads);
    const { diff: byPrecision } = worstRelative(a.grads, a16.grads);
    console.log(`      bfloat16 autocast: loss ${a16.log.loss.toFixed(7)} without, ${b16.log.loss.toFixed(7)} with; max |grad diff| ${diff16.toExponential(2)} ` +
      `of the largest (float32 against bfloat16: ${byPrecision.toExponential(2)})`);
    assert.ok(Math.abs(a16.log.loss - b16.log.loss) <= GRAD_BOUND * Math.abs(a16.log.loss));
    assert.ok(diff16 <= BF16_GRAD_BOUND, `bfloat16 gradients differ by ${diff16}`);
    assert.ok(byPrecision > 4 * BF16_GRAD_BOUND);

    torch.dispose([batch, y, t, weights, noise, Object.values(init)]);
    plain.dispose();
    ckpt.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('EncoderUNetModel: a ClassifierTrainLoop step gives the same loss and gradients of every parameter', () => {
    const before = torch.memory().tensors;
    for (const pool of ['attention', 'spatial'] as const) {
      torch.manualSeed(1);
      const plain = new openai.EncoderUNetModel({ ...ENCODER, pool, useCheckpoint: false });
      const ckpt = new openai.EncoderUNetModel({ ...ENCODER, pool, useCheckpoint: true });
      randomize(plain, ckpt);
      torch.manualSeed(5);
      const batch = torch.tidy(() => torch.rand([4, 3, 16, 16]).mul(2).sub(1));
      const y = torch.tensor([0, 4, 1, 2], { dtype: 'int64' });
      const t = torch.tensor([3, 250, 600, 999], { dtype: 'int64' });
      const noise = torch.randn([4, 3, 16, 16]);
      const step = (net: Module): Grads =>
        torch.tidy(() => {
          const loop = new openai.ClassifierTrainLoop(net, { diffusion_steps: 1000 }, { lr: 1e-4 });
          torch.manualSeed(7);
          torch.resetCpuPeakMemoryStats();
          const held = torch.cpuMemoryStats().allocated;
          const log = loop.runStep(batch, y, { t, noise });
          return { log, grads: grads(net), peak: torch.cpuMemoryStats().peakAllocated - held };
        });
      const a = step(plain);
      const b = step(ckpt);
      const { diff, scale } = worstRelative(a.grads, b.grads);
      console.log(`      pool ${pool}: train_loss ${a.log.train_loss.toFixed(7)} without, ${b.log.train_loss.toFixed(7)} with; ` +
        `${Object.keys(a.grads).length} parameters, max |grad diff| ${diff.toExponential(2)} of the largest |grad| ${scale.toExponential(2)}`);
      assert.ok(Math.abs(a.log.train_loss - b.log.train_loss) <= GRAD_BOUND * Math.abs(a.log.train_loss));
      assert.ok(diff <= GRAD_BOUND, `gradients differ by ${diff}`);
      console.log(`      pool ${pool}: tensors the step added at its peak: ${(a.peak / 2 ** 20).toFixed(2)} MiB without, ${(b.peak / 2 ** 20).toFixed(2)} MiB with`);
      assert.ok(b.peak < a.peak, `peak ${b.peak} with checkpointing, ${a.peak} without`);
      torch.dispose([batch, y, t, noise]);
      plain.dispose();
      ckpt.dispose();
    }
    assert.strictEqual(torch.memory().tensors, before);
  });
});
