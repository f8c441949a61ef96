// The fast samplers' semantics beyond the reference fixtures: DPM-Solver++ of order 1 is DDIM
// on DPM-Solver's model timesteps, for every objective and on a respaced schedule (worked out
// here in float64 from the toy model's closed form, tanh(x) / 2 + t / 100); options checked
// before anything runs; seeds, abort, progress and memory as with the DDPM samplers.
import * as assert from 'assert';
import * as path from 'path';
import { Classifier, GaussianDiffusion, jit, openai, SampleOptions, torch, Unet } from '../lib';
import { collectedMemory, FIXTURES } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const toyOut = (x: number, t: number): number => Math.tanh(x) * 0.5 + t * 0.01;

/** DPM-Solver's NoiseScheduleVP('discrete') in float64: log alpha on t = (k + 1) / N, clipped at lambda -5.1. */
function vpSchedule(alphasCumprod: Float32Array): { n: number; logAlpha: (t: number) => number } {
  let la = Array.from(alphasCumprod, (ab) => 0.5 * Math.log(ab));
  const lambda = (l: number): number => l - 0.5 * Math.log(1 - Math.exp(2 * l));
  const clipped = la.filter((l) => lambda(l) < -5.1).length;
  la = la.slice(0, la.length - clipped);
  const n = la.length;
  const logAlpha = (t: number): number => {
    const pos = t * n - 1; // t_k = (k + 1) / n
    const k = Math.min(Math.max(Math.floor(pos), 0), n - 2);
    return la[k] + (pos - k) * (la[k + 1] - la[k]);
  };
  return { n, logAlpha };
}

/** DDIM over DPM-Solver's time-uniform steps, with the toy model's output read as `objective`. */
function ddim(xT: Float32Array, alphasCumprod: Float32Array, baseSteps: number, steps: number, objective: string, map?: number[]): Float64Array {
  const { n, logAlpha } = vpSchedule(alphasCumprod);
  const times = Array.from({ length: steps + 1 }, (_, i) => 1 + (i / steps) * (1 / n - 1));
  const modelT = (t: number): number => {
    const idx = (t - 1 / n) * baseSteps;
    if (!map) return idx;
    const k = Math.min(Math.floor(idx), map.length - 1);
    return map[k] + (idx - k) * (map[Math.min(k + 1, map.length - 1)] - map[k]);
  };
  const x = Float64Array.from(xT);
  for (let i = 0; i < steps; i++) {
    const [s, t] = [times[i], times[i + 1]];
    const [as, at] = [Math.exp(logAlpha(s)), Math.exp(logAlpha(t))];
    const [ss, st] = [Math.sqrt(1 - as * as), Math.sqrt(1 - at * at)];
    for (let j = 0; j < x.length; j++) {
      const out = toyOut(x[j], modelT(s));
      const eps = objective === 'pred_noise' ? out : objective === 'pred_x0' ? (x[j] - as * out) / ss : as * out + ss * x[j];
      const x0 = (x[j] - ss * eps) / as;
      x[j] = at * x0 + st * eps;
    }
  }
  return x;
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0;
  let m = 1;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
};

describe('fast samplers: DPM-Solver++ of order 1 is DDIM', () => {
  for (const objective of ['pred_noise', 'pred_x0', 'pred_v'] as const) {
    it(`on DPM-Solver's model timesteps, ${objective}, cosine schedule (clipped to fewer steps): within 1e-5 of the largest value`, async () => {
      const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 2, timesteps: 100, betaSchedule: 'cosine', objective, autoNormalize: false });
      const all = await d.sample({ batchSize: 2, sampler: 'dpm-solver++', order: 1, steps: 10, seed: 5, returnAllTimesteps: true });
      const xT = all.select(1, 0).toFloat32Array();
      const last = all.select(1, 10).toFloat32Array();
      const s = d.schedule();
      const expected = ddim(xT, s.alphasCumprod.toFloat32Array(), 100, 10, objective);
      const err = relErr(last, expected);
      console.log(`      ${objective}: relative error ${err.toExponential(2)}`);
      assert.ok(err <= 1e-5, `relative error ${err}`);
      torch.dispose([all, ...Object.values(s)]);
    });
  }

  it('on a respaced schedule: the model sees the kept timesteps interpolated (within 1e-5)', async () => {
    const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 2, timesteps: 100, betaSchedule: 'linear', timestepRespacing: '25', autoNormalize: false });
    const all = await d.sample({ batchSize: 2, sampler: 'dpm-solver++', order: 1, steps: 8, seed: 6, returnAllTimesteps: true });
    const s = d.schedule();
    const map = Array.from(s.timestepMap.toFloat32Array());
    assert.strictEqual(map.length, 25);
    const expected = ddim(all.select(1, 0).toFloat32Array(), s.alphasCumprod.toFloat32Array(), 25, 8, 'pred_noise', map);
    const err = relErr(all.select(1, 8).toFloat32Array(), expected);
    console.log(`      respaced: relative error ${err.toExponential(2)}`);
    assert.ok(err <= 1e-5, `relative error ${err}`);
    torch.dispose([all, ...Object.values(s)]);
  });
});

describe('fast samplers: options', () => {
  const small = (): GaussianDiffusion => new GaussianDiffusion(toy, { imageSize: 4, channels: 1, timesteps: 50 });
  const cases: [SampleOptions, string, string][] = [
    [{ sampler: 'euler', order: 2 }, 'TypeError', "order is an option of 'dpm-solver++', 'dpm-solver', 'unipc'; sampler 'euler' does not take it"],
    [{ sampler: 'dpm-solver++', sigmas: 'karras' }, 'TypeError', "sigmas is an option of 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'; sampler 'dpm-solver++' does not take it"],
    [{ sampler: 'dpm-solver', thresholding: true }, 'TypeError', "thresholding is an option of 'dpm-solver++', 'unipc'; sampler 'dpm-solver' does not take it"],
    [{ sampler: 'unipc', method: 'singlestep' }, 'TypeError', "method is an option of 'dpm-solver++', 'dpm-solver'; sampler 'unipc' does not take it"],
    [{ sampler: 'heun', eta: 0.5 }, 'TypeError', "eta is an option of 'ddim'; sampler 'heun' does not take it"],
    [{ steps: 10 }, 'TypeError', "steps is an option of 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'; sampler 'ancestral' does not take it"],
    [{ sampler: 'dpm-solver++', steps: 5, order: 4 as never }, 'RangeError', 'order must be 1, 2 or 3; got 4'],
    [{ sampler: 'unipc', skipType: 'uniform' as never }, 'TypeError', "skipType must be one of 'time_uniform', 'logSNR', 'time_quadratic'; got 'uniform'"],
    [{ sampler: 'dpm-solver++', steps: 51 }, 'RangeError', "steps (51) cannot exceed the schedule's 50 steps"],
    [{ sampler: 'dpm-solver++' }, 'RangeError', "steps defaults to 20, more than the schedule's 50 steps: give steps"],
    [{ sampler: 'euler', steps: 0 }, 'TypeError', 'steps must be a positive integer; got 0'],
    [{ sampler: 'unipc', thresholding: { ratio: 1.5 } }, 'RangeError', 'thresholding.ratio must be in (0, 1]; got 1.5'],
    [{ sampler: 'unipc', thresholding: { max: 2 } as never }, 'TypeError', "thresholding: unknown option 'max' (it takes ratio, maxVal)"],
    [{ sampler: 'dpmpp-2m', rho: -1 }, 'RangeError', 'rho must be a positive number; got -1'],
    [{ sampler: 'dpm-solver++', steps: 5, stepz: 3 } as never, 'TypeError', "sample(): unknown option 'stepz' (did you mean 'steps'?)"],
  ];
  for (const [options, name, message] of cases) {
    it(`${JSON.stringify(options)}: ${name} before anything runs`, async () => {
      let progress = 0;
      const d = options.steps === undefined && options.sampler === 'dpm-solver++' ? new GaussianDiffusion(toy, { imageSize: 4, channels: 1, timesteps: 10 }) : small();
      await assert.rejects(d.sample({ batchSize: 1, ...options, onProgress: () => progress++ }), { name, message: message.replace("50 steps: give", `${d.numTimesteps} steps: give`) });
      assert.strictEqual(progress, 0);
    });
  }

  it('UniPC refuses a zero-terminal-SNR schedule; DPM-Solver++ clips it and samples', async () => {
    const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 1, timesteps: 20, betaSchedule: 'linear', objective: 'pred_v' });
    await assert.rejects(d.sample({ batchSize: 1, sampler: 'unipc', steps: 5 }), /zero terminal SNR/);
    await assert.rejects(d.sample({ batchSize: 1, sampler: 'euler', steps: 5 }), /zero-terminal-SNR schedule/);
    const img = await d.sample({ batchSize: 1, sampler: 'dpm-solver++', steps: 5 });
    assert.ok(img.toFloat32Array().every(Number.isFinite));
    img.dispose();
  });
});

describe('fast samplers: seeds, progress, abort, memory', () => {
  const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 1, timesteps: 100 });

  it('a seed reproduces each sampler; euler-ancestral draws its step noise from it', async () => {
    for (const sampler of ['dpm-solver++', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'] as const) {
      const a = await d.sample({ batchSize: 2, sampler, steps: 6, seed: 9 });
      const b = await d.sample({ batchSize: 2, sampler, steps: 6, seed: 9 });
      const c = await d.sample({ batchSize: 2, sampler, steps: 6, seed: 10 });
      assert.deepStrictEqual(a.toFloat32Array(), b.toFloat32Array(), sampler);
      assert.notDeepStrictEqual(a.toFloat32Array(), c.toFloat32Array(), sampler);
      torch.dispose([a, b, c]);
    }
  });

  it('onProgress counts the solver steps and reports fractional model timesteps', async () => {
    const seen: { step: number; total: number; t: number }[] = [];
    const img = await d.sample({ batchSize: 1, sampler: 'heun', steps: 4, seed: 1, onProgress: (p) => seen.push(p) });
    assert.deepStrictEqual(seen.map((p) => [p.step, p.total]), [[1, 4], [2, 4], [3, 4], [4, 4]]);
    assert.ok(seen.some((p) => !Number.isInteger(p.t)), `timesteps ${seen.map((p) => p.t)}`);
    img.dispose();
  });

  it('aborting stops a fast sampler within a step; no tensor outlives the runs', async () => {
    const before = await collectedMemory();
    const controller = new AbortController();
    await assert.rejects(
      d.sample({ batchSize: 1, sampler: 'unipc', steps: 50, onProgress: ({ step }) => step === 2 && controller.abort(new Error('stop')), signal: controller.signal }),
      { message: 'stop' },
    );
    const img = await d.sample({ batchSize: 1, sampler: 'dpm-solver', steps: 6, method: 'singlestep', order: 3, seed: 2 });
    img.dispose();
    assert.deepStrictEqual(await collectedMemory(), before);
  });

  it('a JS condFn gets float timesteps and its errors reject the sample', async () => {
    const types: string[] = [];
    const img = await d.sample({ batchSize: 1, sampler: 'dpmpp-2m', steps: 3, condFn: (x, t) => (types.push(t.dtype), torch.zerosLike(x)) });
    assert.deepStrictEqual(types, ['float32', 'float32', 'float32']);
    img.dispose();
    await assert.rejects(d.sample({ batchSize: 1, sampler: 'unipc', steps: 3, condFn: () => { throw new Error('bad gradient'); } }), { message: 'bad gradient' });
    await assert.rejects(d.sample({ batchSize: 1, sampler: 'dpm-solver++', steps: 3, condFn: (x) => torch.zeros([3]) }), /condFn at step 0 \(t=\d+(\.\d+)?\) returned a tensor of shape \[3\]; expected \[1, 1, 4, 4\]/);
  });
});

describe('fast samplers: the networks take fractional timesteps', () => {
  const at = (net: { forward(...a: unknown[]): unknown }, x: unknown, t: number, y?: unknown): Float32Array =>
    torch.tidy(() => (net.forward(x, torch.tensor([t, t]), ...(y ? [y] : [])) as ReturnType<typeof torch.zeros>).toFloat32Array());
  const between = (lo: Float32Array, mid: Float32Array, hi: Float32Array): boolean =>
    mid.some((v, i) => v !== lo[i] && v !== hi[i]);

  it("our Unet and Classifier, openai's UNetModel and EncoderUNetModel: t = 10.5 is neither 10 nor 11", () => {
    torch.manualSeed(3);
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1 });
    const classifier = new Classifier({ imageSize: 16, channels: 1, numClasses: 3, dim: 8, dimMults: [1, 2], attentionResolutions: [], pool: 'avg' });
    const small = '--image_size 64 --channel_mult 1,2 --attention_resolutions 32';
    const model = openai.createModel(openai.parseFlags(`${small} --num_channels 32 --num_res_blocks 1 --num_head_channels 32 --class_cond True`));
    const encoder = openai.createClassifier(openai.parseFlags(`${small} --classifier_width 32 --classifier_depth 1 --classifier_channel_mult 1,2 --classifier_attention_resolutions 32 --classifier_num_head_channels 32`));
    const x16 = torch.randn([2, 1, 16, 16]);
    const x64 = torch.randn([2, 3, 64, 64]);
    const y = torch.tensor([1, 2]);
    // openai's nets start with zeroed output layers (zero_module): random weights let t show.
    for (const net of [['unet', unet, x16], ['classifier', classifier, x16], ['UNetModel', model, x64, y], ['EncoderUNetModel', encoder, x64]] as const) {
      const [name, m, x, labels] = net as unknown as [string, { forward(...a: unknown[]): unknown }, unknown, unknown];
      if (name === 'UNetModel' || name === 'EncoderUNetModel') torch.noGrad(() => torch.tidy(() => { for (const p of (m as typeof model | typeof encoder).parameters()) p.copy_(torch.randnLike(p).mul(0.05)); }));
      const [lo, mid, hi] = [10, 10.5, 11].map((t) => at(m, x, t, labels));
      assert.ok(mid.every(Number.isFinite), name);
      assert.ok(between(lo, mid, hi), `${name} truncates a fractional t`);
    }
    torch.dispose([x16, x64, y]);
    for (const m of [unet, classifier, model, encoder]) m.dispose();
  });
});
