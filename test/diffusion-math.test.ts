// Schedules, objectives and samplers against values computed independently in Python
// (scripts/fixtures/diffusion_schedules.py, toy model scripts/fixtures/toy_model.py).
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { BetaSchedule, GaussianDiffusion, jit, Objective, torch, Tensor } from '../lib';
import { assertClose, f32Tol, FIXTURES } from './helpers';

const DIR = path.join(FIXTURES, 'diffusion');
const index: Record<string, { offset: number; shape: number[] }> = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8'));
const bin = fs.readFileSync(path.join(DIR, 'diffusion.bin'));
const all = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));

function fx(name: string): Float32Array {
  const e = index[name];
  assert.ok(e, `fixture ${name}`);
  const n = e.shape.reduce((a, b) => a * b, 1);
  return all.slice(e.offset, e.offset + n);
}
function fxTensor(name: string, dtype: 'float32' | 'int64' = 'float32'): Tensor {
  const t = torch.tensor(fx(name), { shape: index[name].shape });
  return dtype === 'int64' ? t.to('int64') : t;
}

const toy = jit.load(path.join(DIR, 'toy_model.pt'));
const camel: Record<string, string> = {
  betas: 'betas',
  alphas_cumprod: 'alphasCumprod',
  alphas_cumprod_prev: 'alphasCumprodPrev',
  sqrt_alphas_cumprod: 'sqrtAlphasCumprod',
  sqrt_one_minus_alphas_cumprod: 'sqrtOneMinusAlphasCumprod',
  posterior_variance: 'posteriorVariance',
  posterior_log_variance_clipped: 'posteriorLogVarianceClipped',
  posterior_mean_coef1: 'posteriorMeanCoef1',
  posterior_mean_coef2: 'posteriorMeanCoef2',
};

describe('diffusion math against independent Python values', () => {
  const schedules: [string, BetaSchedule, number, object][] = [
    ['linear/25', 'linear', 25, {}],
    ['linear/1000', 'linear', 1000, {}],
    ['cosine/20', 'cosine', 20, {}],
    ['cosine/1000', 'cosine', 1000, {}],
    ['sigmoid/20', 'sigmoid', 20, {}],
    ['sigmoid/1000', 'sigmoid', 1000, {}],
    ['cosine_s0.02/20', 'cosine', 20, { s: 0.02 }],
    ['sigmoid_-2_4_0.7/20', 'sigmoid', 20, { start: -2, end: 4, tau: 0.7 }],
  ];
  for (const [name, kind, T, kwargs] of schedules) {
    it(`schedule ${name}`, () => {
      const d = new GaussianDiffusion(toy, { imageSize: 4, channels: 3, timesteps: T, betaSchedule: kind, scheduleFnKwargs: kwargs });
      const buffers = d.schedule();
      let checked = 0;
      for (const [py, js] of Object.entries(camel)) {
        const key = `schedule/${name}/${py}`;
        if (!index[key]) continue;
        assertClose(buffers[js].toFloat32Array(), fx(key), f32Tol(fx(key)), key); // measured 0
        checked++;
      }
      assert.ok(checked >= 2);
    });
  }

  for (const objective of ['pred_noise', 'pred_x0', 'pred_v'] as Objective[]) {
    it(`objective ${objective}: model output -> (eps, x0), clipped`, () => {
      const out = fxTensor('predict/out');
      const x = fxTensor('predict/x');
      const t = fxTensor('predict/t', 'int64');
      const d = new GaussianDiffusion(toy, { imageSize: 4, timesteps: 20, objective });
      // The conversions of the math doc, written here over our schedule, against Python's.
      const s = d.schedule();
      const ex = (buf: Tensor): Tensor => buf.indexSelect(0, t).view(-1, 1, 1, 1);
      const r = ex(s.sqrtAlphasCumprod).pow(-1);
      const rm1 = ex(s.sqrtAlphasCumprod).pow(-2).sub(1).sqrt();
      let x0: Tensor;
      if (objective === 'pred_noise') x0 = r.mul(x).sub(rm1.mul(out));
      else if (objective === 'pred_x0') x0 = out;
      else x0 = ex(s.sqrtAlphasCumprod).mul(x).sub(ex(s.sqrtOneMinusAlphasCumprod).mul(out));
      x0 = x0.clamp(-1, 1);
      const eps = objective === 'pred_noise' ? out : r.mul(x).sub(x0).div(rm1);
      assertClose(x0.toFloat32Array(), fx(`predict/${objective}/clip/x0`), 3e-6, 'x0'); // measured 2.4e-7
      assertClose(eps.toFloat32Array(), fx(`predict/${objective}/clip/eps`), 1.5e-5, 'eps'); // measured 1.4e-6
      // And the native denoiser on the toy model agrees with the same formulas.
      const p = d.predict(x, t);
      const outToy = torch.noGrad(() => toy.forward(x, t));
      const x0Toy =
        objective === 'pred_noise'
          ? r.mul(x).sub(rm1.mul(outToy))
          : objective === 'pred_x0'
            ? outToy
            : ex(s.sqrtAlphasCumprod).mul(x).sub(ex(s.sqrtOneMinusAlphasCumprod).mul(outToy));
      assertClose(p.x0.toFloat32Array(), x0Toy.clamp(-1, 1).toFloat32Array(), 1.5e-6, 'native x0'); // measured 1.2e-7
    });
  }

  const runs: [string, { sampler: 'ancestral' | 'ddim'; seed: number; objective: Objective; S?: number; eta?: number; guided?: boolean; condInput?: 'mean' | 'x'; clip?: boolean; all?: boolean; gen?: boolean }][] = [
    ['ancestral/pred_noise', { sampler: 'ancestral', seed: 11, objective: 'pred_noise' }],
    ['ancestral/pred_x0', { sampler: 'ancestral', seed: 12, objective: 'pred_x0' }],
    ['ancestral/pred_v', { sampler: 'ancestral', seed: 13, objective: 'pred_v' }],
    ['ancestral/pred_noise/guided', { sampler: 'ancestral', seed: 14, objective: 'pred_noise', guided: true }],
    ['ancestral/pred_v/guided_x', { sampler: 'ancestral', seed: 15, objective: 'pred_v', guided: true, condInput: 'x' }],
    ['ancestral/pred_noise/noclip', { sampler: 'ancestral', seed: 16, objective: 'pred_noise', clip: false }],
    ['ancestral/pred_noise/all', { sampler: 'ancestral', seed: 18, objective: 'pred_noise', guided: true, all: true }],
    ['ancestral/pred_noise/generator', { sampler: 'ancestral', seed: 19, objective: 'pred_noise', gen: true }],
    ['ddim/pred_noise/eta0', { sampler: 'ddim', seed: 21, objective: 'pred_noise', S: 4, eta: 0 }],
    ['ddim/pred_noise/eta0.5', { sampler: 'ddim', seed: 22, objective: 'pred_noise', S: 4, eta: 0.5 }],
    ['ddim/pred_x0/eta1', { sampler: 'ddim', seed: 23, objective: 'pred_x0', S: 5, eta: 1 }],
    ['ddim/pred_v/guided', { sampler: 'ddim', seed: 24, objective: 'pred_v', S: 4, eta: 0.5, guided: true }],
    ['ddim/pred_noise/guided', { sampler: 'ddim', seed: 25, objective: 'pred_noise', S: 7, eta: 0, guided: true }],
    ['ddim/pred_noise/noclip_generator', { sampler: 'ddim', seed: 27, objective: 'pred_noise', S: 4, eta: 0.5, clip: false, gen: true }],
  ];
  for (const [name, r] of runs) {
    it(`sampler run ${name} (JS condFn where guided)`, async () => {
      const T = r.sampler === 'ancestral' ? 5 : 20;
      const d = new GaussianDiffusion(toy, {
        imageSize: 4,
        channels: 3,
        timesteps: T,
        samplingTimesteps: r.S ?? T,
        objective: r.objective,
        ddimSamplingEta: r.eta ?? 0,
        clipDenoised: r.clip ?? true,
      });
      // toy_guidance(x, t) = -0.3 x + 0.01 t
      const condFn = r.guided ? (x: Tensor, t: Tensor): Tensor => x.mul(-0.3).add(t.to('float32').view(-1, 1, 1, 1).mul(0.01)) : undefined;
      torch.manualSeed(r.gen ? r.seed + 1000 : r.seed);
      const img = await d.sample({
        batchSize: 2,
        condFn,
        guidanceKwargs: {},
        condFnInput: r.condInput ?? 'mean',
        returnAllTimesteps: r.all ?? false,
        seed: r.gen ? r.seed : undefined,
      });
      assert.deepStrictEqual(img.shape, index[`run/${name}`].shape);
      assertClose(img.toFloat32Array(), fx(`run/${name}`), f32Tol(fx(`run/${name}`)), name); // measured 0
    });
  }

  it('qSample and pLosses (pred_noise, pred_x0, pred_v) match', () => {
    const x0 = fxTensor('loss/x0');
    const noise = fxTensor('loss/noise');
    const t = fxTensor('loss/t', 'int64');
    for (const objective of ['pred_noise', 'pred_x0', 'pred_v'] as Objective[]) {
      const d = new GaussianDiffusion(toy, { imageSize: 4, timesteps: 20, objective });
      assertClose(d.qSample(x0, t, noise).toFloat32Array(), fx('loss/q_sample'), f32Tol(fx('loss/q_sample')), 'q_sample'); // measured 0
      assertClose([d.pLosses(x0, t, noise).item() as number], fx(`loss/p_losses/${objective}/plain`), f32Tol(fx(`loss/p_losses/${objective}/plain`)), objective); // measured 0
    }
  });
});
