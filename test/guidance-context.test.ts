// condFn's fourth argument, { x0, eps, alphaBar, sigma, step, total }, checked against values
// worked out here: alphaBar from the linear schedule's betas in doubles, eps from the model
// called on the same x and t, x0 = (x - sqrt(1 - ab) eps) / sqrt(ab) (clipped by the discrete
// samplers, as they clip it).
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, GuidanceContext, jit, torch, Tensor } from '../lib';
import { FIXTURES, linearAlphaBars, maxAbsDiff } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const T = 40;


interface Seen { step: number; total: number; ab: number; sigma: number; t: number; epsErr: number; x0Err: number }

// A condFn that checks its context against the model recomputed on (x, t) and returns zeros.
function recorder(seen: Seen[], clip: boolean) {
  return (x: Tensor, t: Tensor, _k: unknown, ctx: GuidanceContext): Tensor => {
    const errs = torch.tidy(() => {
      const eps = toy.forward(x, t) as Tensor;
      const a = Math.sqrt(ctx.alphaBar), s = Math.sqrt(1 - ctx.alphaBar);
      let x0 = x.sub(eps.mul(s)).div(a);
      if (clip) x0 = x0.clamp(-1, 1);
      return [maxAbsDiff(ctx.eps.data() as Float32Array, eps.data() as Float32Array), maxAbsDiff(ctx.x0.data() as Float32Array, x0.data() as Float32Array)];
    });
    seen.push({ step: ctx.step, total: ctx.total, ab: ctx.alphaBar, sigma: ctx.sigma, t: Number(t.data()[0]), epsErr: errs[0], x0Err: errs[1] });
    return torch.zerosLike(x);
  };
}

describe('condFn context', () => {
  let baseline: number;
  beforeEach(() => { baseline = torch.memory().tensors; });
  afterEach(() => { assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind'); });

  const abs = linearAlphaBars(T);
  for (const sampler of ['ancestral', 'ddim'] as const) {
    it(`${sampler}: x0 (clipped), eps, alphaBar, sigma, step, total`, async () => {
      const ddim = sampler === 'ddim' ? { samplingTimesteps: 5 } : {};
      const d = new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: T, betaSchedule: 'linear', autoNormalize: false, ...ddim });
      const seen: Seen[] = [];
      const opts = sampler === 'ddim' ? { sampler } : { sampler, condFnInput: 'x' as const };
      const img = await d.sample({ batchSize: 2, seed: 3, ...opts, condFn: recorder(seen, true) });
      img.dispose();
      const n = sampler === 'ddim' ? 5 : T;
      assert.strictEqual(seen.length, n);
      let worst = 0;
      seen.forEach((s, i) => {
        assert.strictEqual(s.step, i);
        assert.strictEqual(s.total, n);
        assert.ok(Math.abs(s.ab - abs[s.t]) < 1e-6, `alphaBar ${s.ab} vs ${abs[s.t]} at t=${s.t}`);
        assert.ok(Math.abs(s.sigma - Math.sqrt(1 - s.ab)) < 1e-12);
        worst = Math.max(worst, s.epsErr, s.x0Err);
      });
      console.log(`    ${sampler}: ${n} calls, max |context - recomputed| over eps and x0 = ${worst.toExponential(2)} (bound 1e-4)`);
      assert.ok(worst < 1e-4);
    });
  }

  it('dpm-solver++: x0 unclipped from the continuous alpha and sigma, total = steps', async () => {
    const d = new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: T, betaSchedule: 'linear', autoNormalize: false });
    const seen: Seen[] = [];
    const img = await d.sample({ batchSize: 2, seed: 3, sampler: 'dpm-solver++', steps: 4, order: 1, condFn: recorder(seen, false) });
    img.dispose();
    assert.strictEqual(seen.length, 4);
    let worst = 0;
    seen.forEach((s, i) => {
      assert.strictEqual(s.step, i);
      assert.strictEqual(s.total, 4);
      assert.ok(s.ab > 0 && s.ab < 1 && Math.abs(s.sigma - Math.sqrt(1 - s.ab)) < 1e-6);
      worst = Math.max(worst, s.epsErr, s.x0Err);
    });
    console.log(`    dpm-solver++: 4 calls, max |context - recomputed| over eps and x0 = ${worst.toExponential(2)} (bound 1e-4)`);
    assert.ok(worst < 1e-4);
  });
});
