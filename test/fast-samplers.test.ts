// The fast samplers against the references' own code (fixtures: scripts/fixtures/fast_samplers.py
// running DPM-Solver, UniPC and k-diffusion at the commits in test/fixtures/fast-samplers/README.md),
// on openai's nets (learned variance, class-conditional, linear and cosine schedules) and our Unet:
// seeded final samples, the model timesteps each reference called the model with, guided with
// native classifierGuidance and with the JS classifierCondFn.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, Module, SampleOptions, SamplerName, torch, Tensor } from '../lib';
import { createGaussianDiffusion } from '../lib/openai/diffusion';
import { FIXTURES, maxAbsDiff, readF32 } from './helpers';

const DIR = path.join(FIXTURES, 'fast-samplers');
interface Slice { offset: number; shape: number[] }
interface Case {
  name: string; sampler: SamplerName; model: 'cond' | 'uncond' | 'ours'; schedule: 'linear' | 'cosine' | 'sigmoid';
  steps: number; scale: number; seed: number; order?: 1 | 2 | 3; method?: 'multistep' | 'singlestep';
  skipType?: 'time_uniform' | 'logSNR' | 'time_quadratic'; lowerOrderFinal?: boolean; thresholding?: { ratio: number; maxVal: number } | null;
  unipcVariant?: 'bh1' | 'bh2'; sigmas?: 'karras' | 'model'; rho?: number; y?: number[];
  x_T: Slice; out: Slice; modelTimes: Slice; timeSteps?: Slice;
}
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8'));
const cases: Case[] = fixture.cases;
const blob = readF32(path.join(DIR, 'cases.f32'));
const arr = (s: Slice): Float32Array => blob.subarray(s.offset, s.offset + s.shape.reduce((a, b) => a * b, 1));
const byName = (name: string): Case => {
  const c = cases.find((k) => k.name === name);
  assert.ok(c, `fixture case ${name}`);
  return c;
};

const nets: Record<string, Module> = {};
const net = (file: string): Module => (nets[file] ??= jit.load(path.join(FIXTURES, file)));
const CLASSIFIER: Record<Case['model'], string> = { cond: 'openai-sampling/classifier.pt', uncond: 'openai-sampling/classifier.pt', ours: 'reference-case/classifier.pt' };

function diffusionOf(c: Case): GaussianDiffusion {
  if (c.model === 'ours') {
    return new GaussianDiffusion(net('reference-case/unet_traced.pt'), { imageSize: 16, timesteps: 1000, betaSchedule: 'sigmoid', autoNormalize: false });
  }
  const file = c.model === 'cond' ? 'openai-sampling/cond_unet.pt' : 'openai-sampling/uncond_unet.pt';
  return createGaussianDiffusion(net(file), { diffusion_steps: 1000, noise_schedule: c.schedule, learn_sigma: c.model === 'cond', image_size: 8 });
}

/** The sampler's options of a case, as a user passes them. */
function samplerOptions(c: Case): SampleOptions {
  const o: SampleOptions = { sampler: c.sampler, steps: c.steps };
  if (c.order !== undefined) o.order = c.order;
  if (c.method !== undefined && c.sampler !== 'unipc') o.method = c.method;
  if (c.skipType !== undefined) o.skipType = c.skipType;
  if (c.lowerOrderFinal !== undefined) o.lowerOrderFinal = c.lowerOrderFinal;
  if (c.thresholding) o.thresholding = c.thresholding;
  if (c.unipcVariant !== undefined) o.unipcVariant = c.unipcVariant;
  if (c.sigmas !== undefined) o.sigmas = c.sigmas;
  if (c.rho !== undefined) o.rho = c.rho;
  return o;
}

/** Runs a case (optionally changed); returns the sample and the timesteps condFn saw. */
async function run(c: Case, guidance: 'native' | 'js', change: Partial<SampleOptions> = {}, scale = c.scale): Promise<{ out: Float32Array; times: number[] }> {
  const diffusion = diffusionOf(c);
  const options: SampleOptions = { ...samplerOptions(c), batchSize: 2, seed: c.seed, ...change };
  const y = c.y ? torch.tensor(c.y) : undefined;
  if (c.model === 'cond') options.modelKwargs = { y };
  const times: number[] = [];
  if (scale > 0) {
    const classifier = net(CLASSIFIER[c.model]);
    options.guidanceKwargs = { classifier, y, classifierScale: scale };
    options.condFn = (guidance === 'native'
      ? classifierGuidance
      : (x: Tensor, t: Tensor, kwargs: never) => {
          times.push(t.toFloat32Array()[0]);
          return classifierCondFn(x, t, kwargs);
        }) as SampleOptions['condFn'];
  }
  const img = await diffusion.sample(options);
  const out = img.toFloat32Array();
  torch.dispose([img, ...(y ? [y] : [])]);
  return { out, times };
}

/** The parity bound: max(1e-4 absolute, 1e-5 of the largest value). */
const bound = (expected: Float32Array): number => Math.max(1e-4, 1e-5 * expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0));

describe('fast samplers: parity with DPM-Solver, UniPC and k-diffusion', function () {
  this.timeout(120000);
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  it(`the fixture covers every sampler, guided and unguided (${cases.length} cases, torch ${fixture.torch})`, () => {
    for (const s of ['dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m']) {
      assert.ok(cases.some((c) => c.sampler === s && c.scale > 0), `${s} guided`);
      assert.ok(cases.some((c) => c.sampler === s && c.scale === 0), `${s} unguided`);
    }
  });

  let worst = 0;
  for (const c of cases) {
    const what = `${c.name}: ${c.sampler}${c.order ? ` order ${c.order}` : ''}${c.method === 'singlestep' ? ' singlestep' : ''}, ${c.model} ${c.schedule}, ${c.steps} steps, scale ${c.scale}`;
    it(`${what} matches the reference${c.scale > 0 ? ' (native and JS guidance)' : ''}`, async () => {
      const expected = arr(c.out);
      const tol = bound(expected);
      const native = await run(c, 'native');
      const err = maxAbsDiff(native.out, expected);
      worst = Math.max(worst, err / tol);
      assert.ok(err <= tol, `sample differs by ${err} (bound ${tol})`);
      if (c.scale > 0) {
        const js = await run(c, 'js');
        assert.ok(maxAbsDiff(js.out, native.out) <= tol, `JS and native guidance differ by ${maxAbsDiff(js.out, native.out)}`);
        // The classifier is called once per model call, at the reference's model timesteps.
        const times = arr(c.modelTimes);
        assert.strictEqual(js.times.length, times.length, 'model calls');
        assert.ok(maxAbsDiff(js.times, times) <= 1e-3, `model timesteps differ by ${maxAbsDiff(js.times, times)}`);
      }
    });
  }
  after(() => console.log(`      worst error over all cases: ${worst.toFixed(3)} of the bound`));
});

describe('fast samplers: the tests would catch a wrong option', function () {
  this.timeout(60000);
  // Each change must move the sample by far more than the parity bound.
  const changes: [string, Partial<SampleOptions>, number?][] = [
    ['dpmpp_ms3_cond_linear_logsnr', { order: 2 }],
    ['dpmpp_ms2_cond_linear', { skipType: 'logSNR' }],
    ['dpmpp_ms2_cond_linear', { skipType: 'time_quadratic' }],
    ['unipc_bh2_o2_cond_linear', { unipcVariant: 'bh1' }],
    ['euler_karras_cond_linear', { sigmas: 'model' }],
    ['dpmpp_2m_karras_cond_linear', { rho: 3 }],
    ['dpmpp_ss3_cond_linear_logsnr', { method: 'multistep' }],
    ['dpmpp_ms3_uncond_linear_steps8', { lowerOrderFinal: false }],
    ['dpmpp_ms2_cond_linear_thresh_g10', { thresholding: false }],
  ];
  for (const [name, change] of changes) {
    it(`${name} with ${JSON.stringify(change)} is far from the reference`, async () => {
      const c = byName(name);
      const expected = arr(c.out);
      const d = maxAbsDiff((await run(c, 'native', change)).out, expected);
      console.log(`      moved by ${d.toExponential(2)}, ${(d / bound(expected)).toExponential(1)} x the bound`);
      assert.ok(d > 10 * bound(expected), `moved only ${d}`);
    });
  }
  // On random weights the samples reach |x| of 1e3 to 1e5, so guidance at scale 1 moves them
  // little against a bound relative to that: the scale-10 cases show a wrong factor.
  for (const name of ['dpmpp_ms3_cond_cosine_quadratic_g10', 'unipc_bh1_o3_cond_cosine_g10', 'dpmpp_2m_karras_uncond_linear_g10', 'euler_karras_rho3_cond_cosine_g10', 'euler_ancestral_karras_cond_cosine_g10']) {
    it(`${name} with the guidance scaled by 1.5 is far from the reference`, async () => {
      const c = byName(name);
      const expected = arr(c.out);
      const d = maxAbsDiff((await run(c, 'native', {}, c.scale * 1.5)).out, expected);
      console.log(`      moved by ${d.toExponential(2)}, ${(d / bound(expected)).toExponential(1)} x the bound`);
      assert.ok(d > 10 * bound(expected), `moved only ${d}`);
    });
  }
});
