// guidanceInput 'x0' with recurrence k (Universal Guidance's self-recurrence): a guided step
// t -> t' taken k times, x_t' renoised back to t with a fresh draw between them. The first step
// with k = 2 is worked out here from the seed's draws and our autograd through the model
// (test/x0-steps.ts); k = 1 is the sampler without recurrence, bit for bit (every sampler).
import * as assert from 'assert';
import * as path from 'path';
import { GaussianDiffusion, jit, torch, Tensor } from '../lib';
import { FIXTURES, linearAlphaBars, maxAbsDiff } from './helpers';
import { ancestralStep, ddimStep, draws, loss, renoise } from './x0-steps';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const T = 40;
const abs = linearAlphaBars(T);
const SHAPE = [2, 3, 8, 8];

function diffusion(): GaussianDiffusion {
  return new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: T, betaSchedule: 'linear', autoNormalize: false, samplingTimesteps: 5 });
}
const condFn = (x0: Tensor): Tensor => torch.tidy(() => loss(x0));

describe("guidanceInput 'x0': recurrence", () => {
  let baseline: number;
  beforeEach(() => { baseline = torch.memory().tensors; });
  afterEach(() => { assert.strictEqual(torch.memory().tensors, baseline, 'tensors left behind'); });

  // The fast samplers' k > 1: test/x0-recurrence-fast.test.ts.
  for (const sampler of ['ddim', 'ancestral', 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'] as const) {
    it(`${sampler}: recurrence 1 is the sampler without recurrence, bit for bit`, async () => {
      const fast = sampler !== 'ddim' && sampler !== 'ancestral' ? { steps: 4, gradientNorm: true } : {};
      const run = (extra: object) => diffusion().sample({ batchSize: 2, seed: 3, sampler, guidanceInput: 'x0', guidanceScale: 0.5, condFn, ...fast, ...extra });
      const [plain, once] = [await run({}), await run({ recurrence: 1 })];
      const diff = maxAbsDiff(plain.data() as Float32Array, once.data() as Float32Array);
      [plain, once].forEach((x) => x.dispose());
      console.log(`      ${sampler}: max |recurrence 1 - none| = ${diff}`);
      assert.strictEqual(diff, 0);
    });
  }

  it('ddim, recurrence 2: a step is guided step, renoise, guided step with the seed\'s draws', async () => {
    const s = 0.5, eta = 0.5;
    const all = await diffusion().sample({ batchSize: 2, seed: 5, sampler: 'ddim', eta, returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, recurrence: 2, condFn });
    // DDIM's times with 5 of 40 steps: 39, 31, 23, 15, 7. Draws: x_T, then per step the step's z,
    // the renoising's z, the step's z: the fourth step (t = 15 -> 7) takes draws 10, 11, 12.
    // (At t = 39, ab = 2e-6, float32 rounding of the step is 1e-3.)
    const [start, err, moved, guided] = torch.tidy(() => {
      const z = draws(5, 13, SHAPE);
      const x = all.select(1, 3);
      const k2 = (scale: number) => ddimStep(toy, renoise(ddimStep(toy, x, 15, abs[15], abs[7], eta, z[10], scale), abs[7], abs[15], z[11]), 15, abs[15], abs[7], eta, z[12], scale);
      const once = ddimStep(toy, x, 15, abs[15], abs[7], eta, z[10], s);
      const got = all.select(1, 4).data() as Float32Array;
      return [
        maxAbsDiff(all.select(1, 0).data() as Float32Array, z[0].data() as Float32Array),
        maxAbsDiff(got, k2(s).data() as Float32Array),
        maxAbsDiff(got, once.data() as Float32Array),
        maxAbsDiff(got, k2(0).data() as Float32Array),
      ];
    });
    all.dispose();
    console.log(`      ddim t=15->7, k=2, eta ${eta}: x_T from the seed within ${start}; max |sampler - test's k=2 step| = ${err.toExponential(2)} (bound 1e-4); differs from one step by ${moved.toFixed(3)}, from the unguided k=2 step by ${guided.toFixed(3)}`);
    assert.strictEqual(start, 0);
    assert.ok(err < 1e-4);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
    assert.ok(guided > 1e-2, 'the guidance changed nothing');
  });

  it('ancestral, recurrence 2: a step is DPS step, renoise, DPS step with the seed\'s draws', async () => {
    const s = 0.05;
    const all = await diffusion().sample({ batchSize: 2, seed: 7, sampler: 'ancestral', returnAllTimesteps: true, guidanceInput: 'x0', guidanceScale: s, recurrence: 2, condFn });
    // Draws: x_T, then per step the step's z, the renoising's z, the step's z: step 19
    // (t = 20 -> 19) takes draws 58, 59, 60.
    const [err, moved, guided] = torch.tidy(() => {
      const z = draws(7, 61, SHAPE);
      const x = all.select(1, 19);
      const k2 = (scale: number) => ancestralStep(toy, renoise(ancestralStep(toy, x, 20, abs, z[58], scale), abs[19], abs[20], z[59]), 20, abs, z[60], scale);
      const once = ancestralStep(toy, x, 20, abs, z[58], s);
      const twice = k2(s);
      const got = all.select(1, 20).data() as Float32Array;
      return [maxAbsDiff(got, twice.data() as Float32Array), maxAbsDiff(got, once.data() as Float32Array), maxAbsDiff(got, k2(0).data() as Float32Array)];
    });
    all.dispose();
    console.log(`      ancestral t=20->19, k=2, s=${s}: max |sampler - test's k=2 step| = ${err.toExponential(2)} (bound 1e-4); differs from one step by ${moved.toFixed(3)}, from the unguided k=2 step by ${guided.toFixed(3)}`);
    assert.ok(err < 1e-4);
    assert.ok(moved > 1e-2, 'the recurrence changed nothing');
    assert.ok(guided > 1e-2, 'the guidance changed nothing');
  });

  it('calls condFn k times per guided step only, and a seed reproduces the sample', async () => {
    const steps: number[] = [];
    const run = (record: boolean) => diffusion().sample({
      batchSize: 2, seed: 9, guidanceInput: 'x0', recurrence: 3, guidanceInterval: [23, 39],
      condFn: (x0: Tensor, _t: Tensor, _k: unknown, context: { step: number }) => { if (record) steps.push(context.step); return condFn(x0); },
    });
    const a = await run(true);
    const b = await run(false);
    const c = await diffusion().sample({ batchSize: 2, seed: 9, guidanceInput: 'x0', guidanceInterval: [23, 39], condFn });
    const same = maxAbsDiff(a.data() as Float32Array, b.data() as Float32Array);
    const fromOnce = maxAbsDiff(a.data() as Float32Array, c.data() as Float32Array);
    [a, b, c].forEach((x) => x.dispose());
    console.log(`      DDIM times 39, 31, 23 guided, k=3: condFn steps ${JSON.stringify(steps)}; two runs differ by ${same}; k=3 vs k=1: ${fromOnce.toFixed(3)}`);
    assert.deepStrictEqual(steps, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert.strictEqual(same, 0);
    assert.ok(fromOnce > 1e-2);
  });

  it('rejects a bad recurrence with clear errors', async () => {
    const d = diffusion();
    for (const bad of [0, 1.5, -1, NaN, '2']) {
      await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', recurrence: bad as number, condFn }), { message: `recurrence must be an integer >= 1; got ${String(bad)}` });
    }
    await assert.rejects(d.sample({ batchSize: 1, recurrence: 2, condFn }), { message: "recurrence applies to guidanceInput 'x0' only" });
    // The fast samplers take it too (test/x0-recurrence-fast.test.ts), with the same checks.
    for (const sampler of ['dpm-solver++', 'unipc', 'dpmpp-2m'] as const) {
      for (const bad of [0, 1.5]) {
        await assert.rejects(d.sample({ batchSize: 1, guidanceInput: 'x0', recurrence: bad, sampler, steps: 4, condFn }), { message: `recurrence must be an integer >= 1; got ${bad}` });
      }
      await assert.rejects(d.sample({ batchSize: 1, recurrence: 2, sampler, steps: 4, condFn }), { message: "recurrence applies to guidanceInput 'x0' only" });
    }
  });
});
