// guidanceInput 'x0': one guided DDIM step against the same formula computed here, with our
// autograd through the same model: eps_hat = eps + s * sqrt(1 - ab) * d loss(x0(x_t)) / d x_t,
// x0_hat = clip((x_t - sqrt(1 - ab) eps_hat) / sqrt(ab)), x_next = sqrt(ab') x0_hat + sqrt(1 - ab') eps_hat
// (eta 0). alphaBar from the linear betas in doubles.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, classifierGuidance, jit, torch, Tensor } from '../lib';
import { FIXTURES, linearAlphaBars, maxAbsDiff } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const T = 40;


// Per-image loss: squared distance of x0 to 0.3, summed over pixels.
const loss = (x0: Tensor): Tensor => x0.sub(0.3).square().flatten(1).sum(1);

function diffusion(): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: T, betaSchedule: 'linear', autoNormalize: false, samplingTimesteps: 5 });
}

describe("guidanceInput 'x0'", () => {
  let baseline: number;
  beforeEach(() => { baseline = torch.memory().tensors; });
  afterEach(() => { assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind'); });

  for (const gradientNorm of [false, true]) {
    it(`one guided DDIM step equals the formula computed with autograd through the model (gradientNorm ${gradientNorm})`, async () => {
      const s = 0.5;
      const all = await diffusion().sample({
        batchSize: 2, seed: 5, sampler: 'ddim', returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, gradientNorm,
        condFn: (x0: Tensor) => torch.tidy(() => loss(x0)),
      });
      const abs = linearAlphaBars(T);
      // DDIM's last step with 5 of 40 steps: t = 7 -> the clean image, x_next = x0_hat (clipped).
      const ab = abs[7];
      const [expected, got, unguided] = torch.tidy(() => {
        const xt = all.select(1, 4);
        const t = torch.full([2], 7, { dtype: 'int64' });
        return torch.enableGrad(() => {
          const x = xt.detach().requiresGrad_(true);
          const eps = toy.forward(x, t) as Tensor;
          const x0 = x.sub(eps.mul(Math.sqrt(1 - ab))).div(Math.sqrt(ab)).clamp(-1, 1);
          const l = loss(x0);
          let [g] = torch.autograd.grad(l.sum(), x);
          // DPS's zeta / ||residual||: the residual of image i is sqrt(loss_i) here.
          if (gradientNorm) g = g!.div(l.detach().sqrt().view(2, 1, 1, 1));
          const epsHat = eps.detach().add(g!.mul(s * Math.sqrt(1 - ab)));
          const x0Hat = xt.sub(epsHat.mul(Math.sqrt(1 - ab))).div(Math.sqrt(ab)).clamp(-1, 1);
          return [x0Hat.data() as Float32Array, all.select(1, 5).data() as Float32Array, x0.detach().data() as Float32Array];
        });
      });
      all.dispose();
      const err = maxAbsDiff(got, expected);
      const moved = maxAbsDiff(got, unguided);
      console.log(`    guided DDIM step t=7->0, s=${s}, gradientNorm ${gradientNorm}: max |sampler - test's autograd| = ${err.toExponential(2)} (bound 1e-4); the guidance moved x0 by up to ${moved.toFixed(3)}`);
      assert.ok(err < 1e-4);
      assert.ok(moved > 1e-2, 'the guidance changed nothing');
    });
  }

  it('guidanceInterval: steps outside it are the unguided ones, bit for bit', async () => {
    const f = (x0: Tensor) => torch.tidy(() => loss(x0));
    const run = (extra: object) => diffusion().sample({ batchSize: 2, seed: 5, returnAllTimesteps: true, ...extra });
    const plain = await run({});
    const none = await run({ guidanceInput: 'x0', condFn: f, guidanceInterval: [0, 6] });
    const last = await run({ guidanceInput: 'x0', condFn: f, guidanceInterval: [7, 7] });
    const [noneDiff, lastBefore, lastAfter] = torch.tidy(() => [
      maxAbsDiff(none.data() as Float32Array, plain.data() as Float32Array),
      maxAbsDiff(last.narrow(1, 0, 5).data() as Float32Array, plain.narrow(1, 0, 5).data() as Float32Array),
      maxAbsDiff(last.select(1, 5).data() as Float32Array, plain.select(1, 5).data() as Float32Array),
    ]);
    [plain, none, last].forEach((x) => x.dispose());
    console.log(`    guidanceInterval [0, 6]: differs from unguided by ${noneDiff}; [7, 7]: ${lastBefore} before the last step, ${lastAfter.toFixed(3)} after it`);
    assert.strictEqual(noneDiff, 0);
    assert.strictEqual(lastBefore, 0);
    assert.ok(lastAfter > 1e-2);
  });

  it('rejects bad options and losses with clear errors', async () => {
    const d = diffusion();
    const f = (x0: Tensor) => torch.tidy(() => loss(x0));
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0' }), { message: "guidanceInput 'x0' needs a condFn that returns a loss on x0" });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'eps' as 'x0', condFn: f }), { message: `guidanceInput must be 'x0'; got "eps"` });
    await assert.rejects(d.sample({ batchSize: 1, guidanceScale: 2, condFn: f }), { message: "guidanceScale applies to guidanceInput 'x0' only" });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', guidanceScale: NaN, condFn: f }), { message: 'guidanceScale must be a finite number; got NaN' });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', condFn: classifierGuidance as never }), /classifierGuidance gives a gradient of x_t/);
    await assert.rejects(d.sample({ batchSize: 1, gradientNorm: true, condFn: f }), { message: "gradientNorm applies to guidanceInput 'x0' only" });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', gradientNorm: 1 as never, condFn: f }), { message: 'gradientNorm must be a boolean; got 1' });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', guidanceInterval: [5, 2], condFn: f }), {
      message: 'guidanceInterval must be [tLo, tHi], integer timesteps with 0 <= tLo <= tHi; got [5,2]',
    });
    await assert.rejects(d.sample({ batchSize: 2, guidanceInput: 'x0', gradientNorm: true, condFn: (x0: Tensor) => torch.tidy(() => loss(x0).sum()) }), {
      message: 'condFn at step 0 (t=39) returned a scalar loss; gradientNorm needs one loss per image',
    });
    await assert.rejects(d.sample({ batchSize: 2, guidanceInput: 'x0', condFn: (x0: Tensor) => x0.sum(1) }), {
      message: "condFn at step 0 (t=39) returned a loss of shape [2, 8, 8]; with guidanceInput 'x0' expected a scalar or [2]",
    });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', condFn: () => torch.zeros([1]) }), {
      message: 'condFn at step 0 (t=39) returned a loss that does not depend on x0 (it requires no grad)',
    });
    await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', condFn: (x0: Tensor) => torch.tidy(() => x0.sum().mul(NaN)) }), {
      message: 'condFn at step 0 (t=39) returned a NaN or Inf loss',
    });
  });
});
