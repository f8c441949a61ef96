// recurrence k (Universal Guidance's self-recurrence) with the fast samplers: a guided step from
// level s to t is taken k times, x_t renoised back to s between takes with the seed's next draw.
// A retake starts from the multistep history as it was before the step, the newest value (at s)
// computed again at the renoised x_s; only the last take's values enter the history; UniPC's
// earlier takes are its predictor alone (docs/guidance.md). Each test works the first steps out
// from x_T with the test's own updates (test/x0-fast-steps.ts) and our autograd through the model.
// recurrence 1 = none and the option's checks: test/x0-recurrence.test.ts.
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, torch, Tensor } from '../lib';
import type { SamplerName } from '../lib/samplers';
import { f32Tol, FIXTURES, maxAbsDiff } from './helpers';
import { draws, loss, recording, renoise } from './x0-steps';
import type { Call } from './x0-steps';
import { dataPrediction, denoised, dpmppUpdate, lambda, sigmaK, unipcUpdate } from './x0-fast-steps';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const SHAPE = [2, 3, 8, 8];
// guidanceScale with gradientNorm. The toy model's samples (random weights) reach |x| ~ 1e3
// unguided; guided at every step from the noisiest, 1e4 to 1e5: bounds are relative to max |x|.
const S = 0.5;

function diffusion(): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 40, betaSchedule: 'linear', autoNormalize: false });
}

/** A k-recurrent sample guided at every step, with its trajectory and the condFn's calls. */
async function recurrent(sampler: SamplerName, seed: number, extra: object, scale = S): Promise<{ all: Tensor; calls: Call[] }> {
  const calls: Call[] = [];
  const all = await diffusion().sample({ batchSize: 2, seed, sampler, returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: scale, gradientNorm: true, condFn: recording(calls), ...extra });
  return { all, calls };
}

/** max |sampler's x after n steps - the test's|, the bound (10 float32 ulps of max |x|) and how far the k = 1 x is. */
function compare(all: Tensor, n: number, expected: Tensor, once: Tensor): [number, number, number] {
  const got = all.select(1, n).data() as Float32Array;
  const want = expected.data() as Float32Array;
  return [maxAbsDiff(got, want), f32Tol(want), maxAbsDiff(got, once.select(1, n).data() as Float32Array)];
}

describe("guidanceInput 'x0': recurrence with the fast samplers", () => {
  let baseline: number;
  beforeEach(() => { baseline = torch.memory().tensors; });
  afterEach(() => { assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind'); });

  it('dpm-solver++ (multistep, order 2), k=2: three steps from x_T, retakes from the history before the step', async () => {
    const opts = { steps: 4, order: 2, recurrence: 2 };
    const { all, calls } = await recurrent('dpm-solver++', 5, opts);
    const { all: once } = await recurrent('dpm-solver++', 5, { ...opts, recurrence: 1 });
    // Calls: two per level (the step's own and its retake's). Draws: x_T, then one renoise per step.
    const L = [0, 2, 4, 6].map((i) => calls[i]);
    const [err, tol, moved] = torch.tidy(() => {
      const z = draws(5, 4, SHAPE);
      let x = z[0];
      let m = dataPrediction(toy, x, L[0], S, true);
      let prev: { m: Tensor; lambda: number } | undefined;
      for (let i = 1; i <= 3; i++) {
        const [a, b] = [L[i - 1], L[i]];
        x = dpmppUpdate(x, a, b, m, prev);
        x = renoise(x, b.alpha ** 2, a.alpha ** 2, z[i]);
        m = dataPrediction(toy, x, a, S, true);  // the retake's value replaces the step's own
        x = dpmppUpdate(x, a, b, m, prev);
        prev = { m, lambda: lambda(a) };
        m = dataPrediction(toy, x, b, S, true);
      }
      return compare(all, 3, x, once);
    });
    [all, once].forEach((x) => x.dispose());
    console.log(`      dpm-solver++ 2M, 4 steps, k=2: ${calls.length} guided calls; x after step 3: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}); differs from k=1 by ${moved.toFixed(3)}`);
    assert.strictEqual(calls.length, 8);
    assert.ok(err <= tol);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
  });

  it('unipc (order 2), k=2: earlier takes are the predictor, the last take runs the corrector', async () => {
    const opts = { steps: 3, order: 2, recurrence: 2 };
    const { all, calls } = await recurrent('unipc', 6, opts);
    const { all: once } = await recurrent('unipc', 6, { ...opts, recurrence: 1 });
    // Calls: x_T's; per step the retake's at s and (but the last step) the corrector's at t.
    const L = [calls[0], calls[2], calls[4]];
    const [err, tol, moved] = torch.tidy(() => {
      const z = draws(6, 3, SHAPE);
      let x = z[0];
      let m = dataPrediction(toy, x, L[0], S, true);
      let prev: { m: Tensor; lambda: number } | undefined;
      for (let i = 1; i <= 2; i++) {
        const [a, b] = [L[i - 1], L[i]];
        x = unipcUpdate(x, a, b, m, prev);
        x = renoise(x, b.alpha ** 2, a.alpha ** 2, z[i]);
        m = dataPrediction(toy, x, a, S, true);
        const mB = dataPrediction(toy, unipcUpdate(x, a, b, m, prev), b, S, true);
        x = unipcUpdate(x, a, b, m, prev, mB);
        prev = { m, lambda: lambda(a) };
        m = mB;  // the corrector's model value is the next step's
      }
      return compare(all, 2, x, once);
    });
    [all, once].forEach((x) => x.dispose());
    console.log(`      unipc bh1 order 2, 3 steps, k=2: ${calls.length} guided calls; x after step 2: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}); differs from k=1 by ${moved.toFixed(3)}`);
    assert.strictEqual(calls.length, 6);
    assert.ok(err <= tol);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
  });

  it('euler-ancestral, k=2: draws in the order step, renoise, step', async () => {
    const opts = { steps: 4, recurrence: 2 };
    const { all, calls } = await recurrent('euler-ancestral', 7, opts);
    const { all: once } = await recurrent('euler-ancestral', 7, { ...opts, recurrence: 1 });
    const L = [0, 2, 4].map((i) => calls[i]);
    const [err, tol, moved] = torch.tidy(() => {
      const z = draws(7, 7, SHAPE);
      let x = z[0].mul(sigmaK(L[0]));
      let k = 1;
      for (let i = 1; i <= 2; i++) {
        const [from, to] = [sigmaK(L[i - 1]), sigmaK(L[i])];
        const up = Math.min(to, Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
        const down = Math.sqrt(to * to - up * up);
        const take = (xs: Tensor) => xs.add(xs.sub(denoised(toy, xs, L[i - 1], S, true)).div(from).mul(down - from)).add(z[k++].mul(up));
        x = take(x);
        x = x.add(z[k++].mul(Math.sqrt(from * from - to * to)));  // back to sigma_s
        x = take(x);
      }
      return compare(all, 2, x, once);
    });
    [all, once].forEach((x) => x.dispose());
    console.log(`      euler-ancestral, 4 steps, k=2: ${calls.length} guided calls; x after step 2: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}); differs from k=1 by ${moved.toFixed(3)}`);
    assert.strictEqual(calls.length, 8);
    assert.ok(err <= tol);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
  });

  it("dpmpp-2m, k=3: every take uses the previous step's denoised, the last take's is kept", async () => {
    // A smaller scale: guided at s = 0.5, |x| reaches 1e5.
    const opts = { steps: 4, recurrence: 3 }, s = 0.05;
    const { all, calls } = await recurrent('dpmpp-2m', 8, opts, s);
    const { all: once } = await recurrent('dpmpp-2m', 8, { ...opts, recurrence: 1 }, s);
    const L = [0, 3, 6, 9].map((i) => calls[i]);
    // chained: the other choice, a retake's history advanced by the take before it (old = its denoised).
    const sample = (chained: boolean): Tensor => {
      const z = draws(8, 7, SHAPE);
      let x = z[0].mul(sigmaK(L[0]));
      let old: Tensor | undefined;
      let k = 1;
      for (let i = 1; i <= 3; i++) {
        const [sigma, next] = [sigmaK(L[i - 1]), sigmaK(L[i])];
        const h = Math.log(sigma / next);
        const hPrev = i > 1 ? Math.log(sigmaK(L[i - 2]) / sigma) : 0;
        let den = x;
        for (let r = 0; r < 3; r++) {
          if (r > 0) x = x.add(z[k++].mul(Math.sqrt(sigma * sigma - next * next)));
          if (chained && r > 0) old = den;
          den = denoised(toy, x, L[i - 1], s, true);
          let target = den;
          if (old) {
            const rr = (chained && r > 0 ? h : hPrev) / h;
            target = den.mul(1 + 1 / (2 * rr)).sub(old.mul(1 / (2 * rr)));
          }
          x = x.mul(next / sigma).sub(target.mul(Math.expm1(-h)));
        }
        old = den;
      }
      return x;
    };
    // 100 ulps: the toy model amplifies the float32 rounding of the sampler's coefficients (the
    // test's are double) about tenfold per guided call; 10 ulps hold for one or two steps only.
    const [err, tol, moved, other] = torch.tidy(() => {
      const [e, tol10, m] = compare(all, 3, sample(false), once);
      return [e, 10 * tol10, m, maxAbsDiff(all.select(1, 3).data() as Float32Array, sample(true).data() as Float32Array)];
    });
    [all, once].forEach((x) => x.dispose());
    console.log(`      dpmpp-2m, 4 steps, k=3, s=${s}: ${calls.length} guided calls; x after step 3: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}, 100 ulps of max |x|); differs from k=1 by ${moved.toFixed(3)}, from retakes chained through the history by ${other.toFixed(3)}`);
    assert.strictEqual(calls.length, 12);
    assert.ok(err <= tol);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
    assert.ok(other > 100 * tol, 'the history choice is not seen');
  });

  it('heun, k=2: a take is the whole step, both its model calls', async () => {
    const { all, calls } = await recurrent('heun', 10, { steps: 4, recurrence: 2 });
    const { all: once } = await recurrent('heun', 10, { steps: 4, recurrence: 1 });
    // Step 1's calls: (sigma_0, sigma_1) per take. Draws: x_T, the renoising.
    const [err, tol, moved] = torch.tidy(() => {
      const z = draws(10, 2, SHAPE);
      const [a, b] = [calls[0], calls[1]];
      const [sigma, next] = [sigmaK(a), sigmaK(b)];
      const take = (x: Tensor) => {
        const d = x.sub(denoised(toy, x, a, S, true)).div(sigma);
        const x2 = x.add(d.mul(next - sigma));
        const d2 = x2.sub(denoised(toy, x2, b, S, true)).div(next);
        return x.add(d.add(d2).div(2).mul(next - sigma));
      };
      const x = take(take(z[0].mul(sigma)).add(z[1].mul(Math.sqrt(sigma * sigma - next * next))));
      return compare(all, 1, x, once);
    });
    [all, once].forEach((x) => x.dispose());
    console.log(`      heun, 4 steps, k=2: guided calls ${calls.map((c) => c.t.toFixed(1)).join(', ')}; x after step 1: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}); differs from k=1 by ${moved.toFixed(3)}`);
    // Four steps of two calls but the last (to sigma 0: one), each taken twice.
    assert.strictEqual(calls.length, 14);
    assert.deepStrictEqual([calls[2].t, calls[3].t], [calls[0].t, calls[1].t]);
    assert.ok(err <= tol);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
  });

  it('dpm-solver++ singlestep (order 2), k=2: a take is the whole step, its intermediate call too', async () => {
    const times: number[] = [];
    const out = await diffusion().sample({
      batchSize: 2, seed: 11, sampler: 'dpm-solver++', method: 'singlestep', order: 2, steps: 4, guidanceInput: 'x0', guidanceScale: S, gradientNorm: true, recurrence: 2,
      condFn: (x0: Tensor, t: Tensor) => { times.push((t.data() as Float32Array)[0]); return torch.tidy(() => loss(x0)); },
    });
    const finite = torch.tidy(() => out.isfinite().all().item() as boolean);
    out.dispose();
    console.log(`      dpm-solver++ singlestep order 2, 4 calls' steps, k=2: guided calls at ${times.map((t) => t.toFixed(1)).join(', ')}`);
    // Two steps of order 2 (calls at s and at the intermediate s1), each taken twice.
    assert.strictEqual(times.length, 8);
    assert.deepStrictEqual(times.slice(2, 4), times.slice(0, 2));
    assert.deepStrictEqual(times.slice(6, 8), times.slice(4, 6));
    assert.ok(finite);
  });

  // The samplers of one model call per step; Heun's and singlestep DPM-Solver's takes are whole
  // steps of two or more calls, not counted here.
  for (const sampler of ['dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'dpmpp-2m'] as SamplerName[]) {
    it(`${sampler}: a step guided in the interval takes k = 3 model calls at its level, others one; a seed reproduces it`, async () => {
      const times = async (recurrence: number, calls: number[]): Promise<Tensor> => diffusion().sample({
        batchSize: 2, seed: 9, sampler, steps: 5, order: sampler.startsWith('dpm-solver') || sampler === 'unipc' ? 2 : undefined,
        guidanceInput: 'x0', guidanceScale: 0.05, gradientNorm: true, guidanceInterval: [0, 25], recurrence,
        condFn: (x0: Tensor, t: Tensor) => { calls.push((t.data() as Float32Array)[0]); return torch.tidy(() => loss(x0)); },
      });
      const [once, thrice, again]: number[][] = [[], [], []];
      const a = await times(1, once);
      const b = await times(3, thrice);
      const c = await times(3, again);
      const same = maxAbsDiff(b.data() as Float32Array, c.data() as Float32Array);
      const moved = maxAbsDiff(a.data() as Float32Array, b.data() as Float32Array);
      [a, b, c].forEach((x) => x.dispose());
      console.log(`      ${sampler}, 5 steps, interval [0, 25]: guided calls at ${once.map((t) => t.toFixed(1)).join(', ')} with k=1; ${thrice.length} with k=3; two k=3 runs differ by ${same}; k=3 vs k=1: ${moved.toFixed(3)}`);
      assert.ok(once.length >= 2 && once.length < 5, 'the interval should guide some steps only');
      assert.deepStrictEqual(thrice, once.flatMap((t) => [t, t, t]));
      assert.strictEqual(same, 0);
      assert.ok(moved > 1e-2, 'the recurrence changed nothing');
    });
  }

  it("euler with a mask (inpainting), k=2: the known region is replaced after every take, before the renoising", async () => {
    torch.manualSeed(1);
    const [init, mask] = torch.tidy(() => [
      torch.rand([2, 3, 8, 8]).mul(2).sub(1),
      torch.tensor(Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0)), { shape: [8, 8] }).to('float32'),
    ]);
    const { all, calls } = await recurrent('euler', 4, { steps: 4, recurrence: 2, init, mask });
    // Draws: x_T; the first take's known region, the renoising, the second take's known region.
    const [err, tol, kept] = torch.tidy(() => {
      const z = draws(4, 4, SHAPE);
      const [a, b] = [calls[0], calls[2]];
      const [sigma, next] = [sigmaK(a), sigmaK(b)];
      const known = (x: Tensor, zk: Tensor) => mask.mul(init.add(zk.mul(next))).add(mask.neg().add(1).mul(x));
      const take = (x: Tensor) => x.add(x.sub(denoised(toy, x, a, S, true)).div(sigma).mul(next - sigma));
      let x = take(z[0].mul(sigma));
      x = known(x, z[1]).add(z[2].mul(Math.sqrt(sigma * sigma - next * next)));
      x = known(take(x), z[3]);
      const got = all.select(1, 1);
      // Of the last step (sigma 0): the kept region is init itself.
      const last = all.select(1, 4);
      return [maxAbsDiff(got.data() as Float32Array, x.data() as Float32Array), f32Tol(x.data() as Float32Array), last.sub(init).mul(mask).abs().amax().item() as number];
    });
    [all, init, mask].forEach((x) => x.dispose());
    console.log(`      euler, 4 steps, k=2, left half kept: x after step 1: max |sampler - test's| = ${err.toExponential(2)} (bound ${tol.toExponential(2)}); kept region of the sample vs init: ${kept}`);
    assert.strictEqual(calls.length, 8);
    assert.ok(err <= tol);
    assert.strictEqual(kept, 0);
  });
});
