// guidanceInput 'x0' beyond DDIM: the ancestral sampler applies the loss's gradient as DPS does
// (x_{t-1} = posterior mean + sigma z - guidanceScale * grad), the fast samplers shift their eps
// model's output by guidanceScale * sigma * grad (x0 = (x - sigma eps) / alpha, unclipped). One
// step of each worked out here with our autograd through the model (test/x0-steps.ts); the fast
// samplers' alpha, sigma and model time are read from the context condFn gets.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, torch, Tensor } from '../lib';
import { f32Tol, FIXTURES, linearAlphaBars, maxAbsDiff } from './helpers';
import { ancestralStep, draws, loss, recording, guidedEps as guidedEpsOf } from './x0-steps';
import type { Call } from './x0-steps';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const T = 40;
const abs = linearAlphaBars(T);
const SHAPE = [2, 3, 8, 8];

function diffusion(): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: T, betaSchedule: 'linear', autoNormalize: false, samplingTimesteps: 5 });
}

const guidedEps = (xIn: Tensor, call: Call, s: number, norm: boolean): Tensor => guidedEpsOf(toy, xIn, call, s, norm);

describe("guidanceInput 'x0': ancestral and fast samplers", () => {
  let baseline: number;
  beforeEach(() => { baseline = torch.memory().tensors; });
  afterEach(() => { assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind'); });

  for (const gradientNorm of [false, true]) {
    it(`ancestral: a guided step is DPS's, x_{t-1} = mean + sigma z - s * grad (gradientNorm ${gradientNorm})`, async () => {
      const s = gradientNorm ? 0.5 : 0.05;
      const all = await diffusion().sample({ batchSize: 2, seed: 11, sampler: 'ancestral', returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, gradientNorm, condFn: (x0: Tensor) => torch.tidy(() => loss(x0)) });
      // Draws: x_T, then one per step: step 19 (t = 20 -> 19) takes draw 20.
      const [err, guided] = torch.tidy(() => {
        const z = draws(11, 21, SHAPE);
        const x = all.select(1, 19);
        const got = all.select(1, 20).data() as Float32Array;
        return [
          maxAbsDiff(got, ancestralStep(toy, x, 20, abs, z[20], s, gradientNorm).data() as Float32Array),
          maxAbsDiff(got, ancestralStep(toy, x, 20, abs, z[20], 0).data() as Float32Array),
        ];
      });
      all.dispose();
      console.log(`      ancestral t=20->19, s=${s}, gradientNorm ${gradientNorm}: max |sampler - test's DPS step| = ${err.toExponential(2)} (bound 1e-4); the guidance moved x by ${guided.toFixed(3)}`);
      assert.ok(err < 1e-4);
      assert.ok(guided > 1e-2, 'the guidance changed nothing');
    });
  }

  for (const gradientNorm of [false, true]) {
    it(`dpm-solver++ (order 1): a step from the guided eps equals the test's (gradientNorm ${gradientNorm})`, async () => {
      // The toy model's unclipped x0 at t = 19 is far from [-1, 1]: a scale that moves x by about 1.
      const s = gradientNorm ? 0.5 : 5e-4;
      const calls: Call[] = [];
      const all = await diffusion().sample({ batchSize: 2, seed: 3, sampler: 'dpm-solver++', steps: 4, order: 1, returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, gradientNorm, guidanceInterval: [5, 25], condFn: recording(calls) });
      // Calls at schedule steps 39, 29.2, 19.4, 9.7; the interval guides the last two, so x before
      // step 3 is unguided (the fast samplers' x0 is unclipped: guided from the noisiest steps,
      // this loss's gradient, ~1/alpha, throws the toy model's sample off) and condFn records the
      // times of step 3's ends. DPM-Solver++'s first-order update
      // x' = (sigma'/sigma) x - alpha' expm1(-h) x0_hat, h = lambda' - lambda, lambda = log(alpha / sigma).
      const [a, b] = [calls[0], calls[1]];
      const h = Math.log(b.alpha / b.sigma) - Math.log(a.alpha / a.sigma);
      const [err, tol, guided] = torch.tidy(() => {
        const x = all.select(1, 2);
        const step = (scale: number) => {
          const x0 = x.sub(guidedEps(x, a, scale, gradientNorm).mul(a.sigma)).div(a.alpha);
          return x.mul(b.sigma / a.sigma).sub(x0.mul(b.alpha * Math.expm1(-h))).data() as Float32Array;
        };
        const got = all.select(1, 3).data() as Float32Array;
        const expected = step(s);
        // The toy model's x here reaches 266: 10 float32 ulps of that.
        return [maxAbsDiff(got, expected), f32Tol(expected), maxAbsDiff(got, step(0))];
      });
      all.dispose();
      console.log(`      dpm-solver++ 4 steps, step 3 (model t ${a.t.toFixed(2)} -> ${b.t.toFixed(2)}), s=${s}, gradientNorm ${gradientNorm}: ${calls.length} guided calls; max |sampler - test's step| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}, 10 ulps of max |x'|); the guidance moved x by ${guided.toFixed(3)}`);
      assert.strictEqual(calls.length, 2);
      assert.ok(err <= tol);
      assert.ok(guided > 1e-2, 'the guidance changed nothing');
    });
  }

  it('euler: the last step returns the guided denoised x - sigma * eps_hat(x * c_in)', async () => {
    const s = 0.5;
    const calls: Call[] = [];
    const all = await diffusion().sample({ batchSize: 2, seed: 4, sampler: 'euler', steps: 3, returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, guidanceInterval: [0, 1], condFn: recording(calls) });
    // k-diffusion's eps model gets x * c_in with alpha = c_in, sigma = sigma_k * c_in; the last
    // Karras sigma is 0, so the last Euler step lands on denoised. The interval guides the last
    // call only (sigma_min: schedule step 0).
    const c = calls[0];
    const sigmaK = c.sigma / c.alpha;
    const [err, guided] = torch.tidy(() => {
      const x = all.select(1, 2);
      const denoised = (scale: number) => x.sub(guidedEps(x.mul(c.alpha), c, scale, false).mul(sigmaK)).data() as Float32Array;
      const got = all.select(1, 3).data() as Float32Array;
      return [maxAbsDiff(got, denoised(s)), maxAbsDiff(got, denoised(0))];
    });
    all.dispose();
    console.log(`      euler 3 steps, last (sigma ${sigmaK.toFixed(3)} -> 0), s=${s}: max |sampler - test's denoised| = ${err.toExponential(2)} (bound 1e-4); the guidance moved x by ${guided.toFixed(3)}`);
    assert.strictEqual(calls.length, 1);
    assert.ok(err < 1e-4);
    assert.ok(guided > 1e-2, 'the guidance changed nothing');
  });

  it('fast samplers: guidanceInterval outside every call is the unguided sample, bit for bit', async () => {
    const calls: Call[] = [];
    const run = (extra: object) => diffusion().sample({ batchSize: 2, seed: 3, sampler: 'unipc', steps: 4, ...extra });
    const plain = await run({});
    const none = await run({ guidanceInput: 'x0', guidanceInterval: [0, 5], condFn: recording(calls) });
    const some = await run({ guidanceInput: 'x0', gradientNorm: true, guidanceScale: 0.5, guidanceInterval: [0, 25], condFn: recording(calls) });
    const [noneDiff, someDiff] = [maxAbsDiff(none.data() as Float32Array, plain.data() as Float32Array), maxAbsDiff(some.data() as Float32Array, plain.data() as Float32Array)];
    [plain, none, some].forEach((x) => x.dispose());
    console.log(`      unipc 4 steps: guidanceInterval [0, 5] differs from unguided by ${noneDiff}; [0, 25]: ${calls.length} guided calls, differs by ${someDiff.toFixed(3)}`);
    assert.strictEqual(noneDiff, 0);
    assert.ok(calls.length >= 1 && someDiff > 1e-2);
  });
});
