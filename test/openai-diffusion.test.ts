// openai/guided-diffusion's diffusion in our GaussianDiffusion: respacing, the variance types,
// model kwargs, and seeded samples equal to their p_sample_loop / ddim_sample_loop guided by
// classifier_sample.py's cond_fn (fixtures: scripts/fixtures/openai_sampling.py).
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { classifierCondFn, classifierGuidance, GaussianDiffusion, jit, torch, Tensor } from '../lib';
import { createGaussianDiffusion, diffusionFlags, spaceTimesteps } from '../lib/openai/diffusion';
import { FIXTURES, maxAbsDiff, readF32 } from './helpers';

const DIR = path.join(FIXTURES, 'openai-sampling');
interface Entry { offset: number; shape: number[] }
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8'));
const index = fixture.index;
const blob = readF32(path.join(DIR, 'cases.f32'));
function arr(name: string): Float32Array {
  const e: Entry = index[name];
  assert.ok(e, `fixture ${name}`);
  const n = e.shape.reduce((a, b) => a * b, 1);
  return blob.subarray(e.offset, e.offset + n);
}
const tensorOf = (name: string): Tensor => torch.tensor(arr(name), { shape: index[name].shape });

const condUnet = jit.load(path.join(DIR, 'cond_unet.pt'));
const uncondUnet = jit.load(path.join(DIR, 'uncond_unet.pt'));
const classifier = jit.load(path.join(DIR, 'classifier.pt'));
const IMAGE = fixture.image_size as number;

describe('openai diffusion', () => {
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => torch.setNumThreads(threads));

  describe('space_timesteps', () => {
    it('keeps exactly the timesteps theirs keeps, for every case of the table', () => {
      const table = index.space_timesteps as { timesteps: number; spec: string; kept: number[] }[];
      assert.strictEqual(table.length, 14);
      for (const c of table) assert.deepStrictEqual(spaceTimesteps(c.timesteps, c.spec), c.kept, `${c.timesteps} '${c.spec}'`);
    });

    it('rounds positions half to even, as Python round()', () => {
      // 6 steps, 5 kept: positions 0, 1.25, 2.5, 3.75, 5 -> 2.5 rounds to 2 (half-up would give 3).
      assert.deepStrictEqual(spaceTimesteps(6, '5'), [0, 1, 2, 4, 5]);
      // 14 steps, 5 kept: 6.5 -> 6; 100 steps, 7 kept: 49.5 -> 50, 82.5 -> 82.
      assert.deepStrictEqual(spaceTimesteps(14, '5'), [0, 3, 6, 10, 13]);
      assert.deepStrictEqual(spaceTimesteps(100, '7'), [0, 16, 33, 50, 66, 82, 99]);
    });

    it('finds the DDIM stride and says when there is none', () => {
      assert.deepStrictEqual(spaceTimesteps(10, 'ddim4'), [0, 3, 6, 9]);
      assert.throws(() => spaceTimesteps(10, 'ddim6'), { message: "timestepRespacing 'ddim6': no integer stride takes exactly 6 of 10 steps" });
      assert.throws(() => spaceTimesteps(10, '20'), { message: "timestepRespacing '20': section 0 has 10 steps, too few to take 20" });
      assert.throws(() => spaceTimesteps(10, '4,x'), { message: "timestepRespacing '4,x': expected a step count such as 250, sections such as 10,15,20, or ddimN; got 'x'" });
    });

    it('bounds the base steps (MAX_TIMESTEPS) before any work, and quotes a long spec shortened', () => {
      // 1e11 steps blocked the JS thread 84 s; 1e12 never returned.
      for (const T of [1e11, 1e15, 100_001]) {
        const started = Date.now();
        assert.throws(() => spaceTimesteps(T, 'ddim3'), { message: `timestepRespacing: timesteps must be at most 100000; got ${T}` });
        assert.ok(Date.now() - started < 1000);
      }
      assert.deepStrictEqual(spaceTimesteps(100_000, 'ddim2'), [0, 50_000]);
      const long = '1,'.repeat(1_000_000) + '1';
      assert.throws(() => spaceTimesteps(1000, long), {
        message: `timestepRespacing '${'1,'.repeat(20)}... (2000001 characters)': section 1000 has 0 steps, too few to take 1`,
      });
      assert.throws(() => spaceTimesteps(1000, 'x'.repeat(100)), {
        message: `timestepRespacing '${'x'.repeat(40)}... (100 characters)': expected a step count such as 250, sections such as 10,15,20, or ddimN; got '${'x'.repeat(40)}...'`,
      });
    });
  });

  describe('respaced schedules', () => {
    it('have their SpacedDiffusion betas (within 1e-6) and timestep map', () => {
      for (const r of index.respaced as { schedule: 'linear' | 'cosine'; steps: number; spec: string; name: string; timestep_map: number[] }[]) {
        const d = createGaussianDiffusion(uncondUnet, { diffusion_steps: r.steps, noise_schedule: r.schedule, timestep_respacing: r.spec, image_size: IMAGE });
        const s = d.schedule();
        const err = maxAbsDiff(s.betas.toFloat32Array(), arr(r.name));
        assert.ok(err <= 1e-6, `${r.schedule} ${r.steps} '${r.spec}': betas differ by ${err}`);
        assert.deepStrictEqual(Array.from(s.timestepMap.toFloat32Array()), r.timestep_map);
        assert.strictEqual(d.numTimesteps, r.timestep_map.length);
        assert.strictEqual(d.options.samplingTimesteps, r.timestep_map.length);
        torch.dispose(Object.values(s));
      }
    });
  });

  describe('p_mean_variance', () => {
    it('gives their mean, variance, log variance and x0 for each modelVarType (1e-5)', () => {
      const x = tensorOf('pmv_x');
      const worst: Record<string, number> = {};
      for (const c of index.pmv as { var_type: string; class_cond: boolean; t: number[]; y: number[]; name: string }[]) {
        const modelVarType = ({ fixed_small: 'fixedSmall', fixed_large: 'fixedLarge', learned: 'learned', learned_range: 'learnedRange' } as const)[c.var_type as 'learned'];
        const d = createGaussianDiffusion(c.class_cond ? condUnet : uncondUnet,
          { diffusion_steps: 100, learn_sigma: c.class_cond, sigma_small: c.var_type === 'fixed_small', timestep_respacing: '10', image_size: IMAGE },
          { modelVarType });
        const out = d.predict(x, torch.tensor(c.t), c.class_cond ? { y: torch.tensor(c.y) } : undefined);
        const pairs: [Tensor, string][] = [[out.mean, 'mean'], [out.variance, 'variance'], [out.logVariance, 'log_variance'], [out.x0, 'pred_xstart']];
        for (const [mine, key] of pairs) {
          const err = maxAbsDiff(mine.toFloat32Array(), arr(`${c.name}_${key}`));
          worst[c.var_type] = Math.max(worst[c.var_type] ?? 0, err);
          assert.ok(err <= 1e-5, `${c.name} ${key}: max abs difference ${err}`);
        }
        torch.dispose([out.eps, out.x0, out.mean, out.variance, out.logVariance]);
      }
      assert.deepStrictEqual(Object.keys(worst).sort(), ['fixed_large', 'fixed_small', 'learned', 'learned_range']);
    });

    it('refuses a model whose output lacks the variance channels, naming the shapes', () => {
      assert.throws(() => createGaussianDiffusion(uncondUnet, { learn_sigma: true, diffusion_steps: 100, image_size: IMAGE }),
        (err: Error) => err.message.includes('returned a tensor of shape [1, 3, 8, 8]; expected [1, 6, 8, 8] (its input\'s, with twice the channels: modelVarType learnedRange)'));
    });
  });

  describe('seeded sampling equals classifier_sample.py', () => {
    interface SampleCase {
      name: string; class_cond: boolean; learn_sigma: boolean; sigma_small?: boolean; respacing: string; ddim: boolean;
      scale: number | null; seed: number; eta?: number; rescale_timesteps?: boolean; noise_schedule?: string;
      predict_xstart?: boolean; classes: number[]; num_timesteps: number;
    }
    const cases = index.samples as SampleCase[];
    const measured: Record<string, number> = {};
    after(() => console.log('      max abs error per case:', JSON.stringify(measured)));

    async function run(c: SampleCase, guidance: 'native' | 'js'): Promise<number> {
      const d = createGaussianDiffusion(c.class_cond ? condUnet : uncondUnet, {
        diffusion_steps: 100, learn_sigma: c.learn_sigma, sigma_small: c.sigma_small ?? false, noise_schedule: c.noise_schedule ?? 'linear',
        predict_xstart: c.predict_xstart ?? false, rescale_timesteps: c.rescale_timesteps ?? false, timestep_respacing: c.respacing, image_size: IMAGE,
      });
      assert.strictEqual(d.numTimesteps, c.num_timesteps);
      torch.manualSeed(c.seed);
      const classes = torch.randint(0, fixture.num_classes, [fixture.batch]);
      assert.deepStrictEqual(Array.from(classes.toFloat32Array()), c.classes);
      const sample = await d.sample({
        batchSize: fixture.batch,
        sampler: c.ddim ? 'ddim' : 'ancestral',
        ...(c.eta !== undefined ? { eta: c.eta } : {}),
        ...(c.class_cond ? { modelKwargs: { y: classes } } : {}),
        ...(c.scale !== null
          ? { condFn: guidance === 'native' ? classifierGuidance : classifierCondFn, guidanceKwargs: { classifier, y: classes, classifierScale: c.scale } }
          : {}),
      });
      assert.deepStrictEqual(sample.shape, [fixture.batch, 3, IMAGE, IMAGE]);
      const err = maxAbsDiff(sample.toFloat32Array(), arr(`sample_${c.name}`));
      measured[`${c.name}/${guidance}`] = Number(err.toExponential(2));
      torch.dispose([sample, classes]);
      return err;
    }

    for (const c of index.samples as SampleCase[]) {
      for (const guidance of c.scale !== null ? (['native', 'js'] as const) : (['native'] as const)) {
        it(`${c.name} (${c.ddim ? 'DDIM' : 'ancestral'}, ${c.scale !== null ? `${guidance} guidance` : 'unguided'}) within 1e-4`, async () => {
          const err = await run(c, guidance);
          assert.ok(err <= 1e-4, `max abs difference ${err}`);
        });
      }
    }

    it('covers ancestral and DDIM, class-conditional and unconditional, every variance of the flags', () => {
      assert.ok(cases.some((c) => c.ddim) && cases.some((c) => !c.ddim));
      assert.ok(cases.some((c) => c.class_cond) && cases.some((c) => !c.class_cond));
      assert.ok(cases.some((c) => c.learn_sigma) && cases.some((c) => c.sigma_small) && cases.some((c) => !c.learn_sigma && !c.sigma_small));
    });
  });

  describe('model kwargs', () => {
    it('a class-conditional model needs y, and an unconditional one refuses it', async () => {
      const cond = createGaussianDiffusion(condUnet, { learn_sigma: true, diffusion_steps: 100, timestep_respacing: '5', image_size: IMAGE });
      await assert.rejects(cond.sample({ batchSize: 2 }), { message: 'this model is class-conditional (its forward takes y): pass modelKwargs: { y }' });
      await assert.rejects(cond.sample({ batchSize: 2, modelKwargs: { y: torch.tensor([1, 2, 3]) } }), { message: 'modelKwargs.y has 3 labels but batchSize is 2' });
      const uncond = createGaussianDiffusion(uncondUnet, { diffusion_steps: 100, timestep_respacing: '5', image_size: IMAGE });
      await assert.rejects(uncond.sample({ batchSize: 2, modelKwargs: { y: torch.tensor([1, 2]) } }), { message: "modelKwargs.y: this model's forward takes no class labels y" });
      await assert.rejects(uncond.sample({ batchSize: 2, modelKwargs: { label: 1 } as never }), { message: 'modelKwargs.label: only y (class labels) is passed to the model' });
    });

    it('changes the sample with the class', async () => {
      const d = createGaussianDiffusion(condUnet, { learn_sigma: true, diffusion_steps: 100, timestep_respacing: '5', image_size: IMAGE });
      const a = await d.sample({ batchSize: 2, seed: 3, modelKwargs: { y: torch.tensor([1, 1]) } });
      const b = await d.sample({ batchSize: 2, seed: 3, modelKwargs: { y: torch.tensor([1, 7]) } });
      const av = a.toFloat32Array(), bv = b.toFloat32Array(), half = av.length / 2;
      assert.strictEqual(maxAbsDiff(av.subarray(0, half), bv.subarray(0, half)), 0);
      assert.ok(maxAbsDiff(av.subarray(half), bv.subarray(half)) > 1e-3);
    });
  });

  describe('bad options', () => {
    it('are refused with the option named', async () => {
      const opts = { imageSize: IMAGE, timesteps: 100 };
      assert.throws(() => new GaussianDiffusion(uncondUnet, { ...opts, modelVarType: 'big' as never }), { name: 'TypeError', message: "modelVarType must be one of fixedSmall, fixedLarge, learned, learnedRange; got 'big'" });
      assert.throws(() => new GaussianDiffusion(uncondUnet, { ...opts, timestepRespacing: 250 as never }), { name: 'TypeError', message: "timestepRespacing: expected a string such as '250', '10,15,20' or 'ddim25' but received 250" });
      assert.throws(() => new GaussianDiffusion(uncondUnet, { ...opts, timestepRespacing: 'ddim11' }), { message: "timestepRespacing 'ddim11': no integer stride takes exactly 11 of 100 steps" });
      assert.throws(() => new GaussianDiffusion(uncondUnet, { ...opts, timestepRespacing: '10', samplingTimesteps: 11 }), { name: 'RangeError', message: 'samplingTimesteps (11) must be from 1 to the 10 timesteps of the (respaced) schedule' });
      const d = new GaussianDiffusion(uncondUnet, { ...opts, timestepRespacing: '10' });
      await assert.rejects(d.sample({ batchSize: 1, sampler: 'plms' as never }), { name: 'TypeError', message: "sampler must be one of 'ancestral', 'ddim', 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'; got 'plms'" });
      await assert.rejects(d.sample({ batchSize: 1, eta: -1 }), { name: 'RangeError', message: 'eta must be in [0, 1] (0: deterministic DDIM, 1: as noisy as ancestral steps); got -1' });
      await assert.rejects(d.sample({ batchSize: 1, eta: 1.01 }), { name: 'RangeError', message: 'eta must be in [0, 1] (0: deterministic DDIM, 1: as noisy as ancestral steps); got 1.01' });
      await assert.rejects(d.sample({ batchSize: 1, modelKwargs: { y: [1] as never } }), { name: 'TypeError', message: 'modelKwargs.y: expected an int64 Tensor of class labels' });
    });

    it('a sample with model kwargs and guidance leaves no tensor behind', async () => {
      const d = createGaussianDiffusion(condUnet, { learn_sigma: true, diffusion_steps: 100, timestep_respacing: '5', image_size: IMAGE });
      const y = torch.tensor([1, 2]);
      // Collect other tests' garbage first: its finalizers would lower the count meanwhile.
      const settle = async (): Promise<void> => {
        (global as { gc?: () => void }).gc?.();
        await new Promise((resolve) => setImmediate(resolve));
      };
      await settle();
      const before = torch.memory().tensors;
      for (const condFn of [classifierGuidance, classifierCondFn]) {
        const out = await d.sample({ batchSize: 2, modelKwargs: { y }, condFn, guidanceKwargs: { classifier, y, classifierScale: 1 } });
        out.dispose();
      }
      await settle();
      assert.strictEqual(torch.memory().tensors, before);
    });
  });

  describe('createGaussianDiffusion flags', () => {
    it('fills their defaults and reads snake_case, camelCase and argparse strings', () => {
      assert.deepStrictEqual(diffusionFlags({}), {
        diffusion_steps: 1000, learn_sigma: false, sigma_small: false, noise_schedule: 'linear', use_kl: false,
        predict_xstart: false, rescale_timesteps: false, rescale_learned_sigmas: false, timestep_respacing: '', image_size: 64,
      });
      const f = diffusionFlags({ learnSigma: 'True', diffusion_steps: '4000', noiseSchedule: 'cosine', timestep_respacing: 250 });
      assert.strictEqual(f.learn_sigma, true);
      assert.strictEqual(f.diffusion_steps, 4000);
      assert.strictEqual(f.noise_schedule, 'cosine');
      assert.strictEqual(f.timestep_respacing, '250');
      assert.throws(() => diffusionFlags({ noise_schedule: 'sigmoid' }), { message: "noise_schedule must be 'linear' or 'cosine'; got 'sigmoid'" });
      assert.throws(() => diffusionFlags({ learn_sigma: 'maybe' }), { message: 'learn_sigma: expected a boolean (True/False) but received maybe' });
    });

    it('maps the flags to our options as their create_gaussian_diffusion does', () => {
      const d = createGaussianDiffusion(condUnet, { learn_sigma: true, diffusion_steps: 100, timestep_respacing: 'ddim10', image_size: IMAGE });
      const o = d.options;
      assert.strictEqual(o.modelVarType, 'learnedRange');
      assert.strictEqual(o.objective, 'pred_noise');
      assert.strictEqual(o.betaSchedule, 'linear');
      assert.strictEqual(o.autoNormalize, false);
      assert.strictEqual(o.clipDenoised, true);
      assert.strictEqual(o.condFnInput, 'x');
      assert.strictEqual(d.numTimesteps, 10);
      const small = createGaussianDiffusion(uncondUnet, { sigma_small: true, predict_xstart: true, diffusion_steps: 100, image_size: IMAGE });
      assert.strictEqual(small.options.modelVarType, 'fixedSmall');
      assert.strictEqual(small.options.objective, 'pred_x0');
      assert.strictEqual(createGaussianDiffusion(uncondUnet, { diffusion_steps: 100, image_size: IMAGE }).options.modelVarType, 'fixedLarge');
    });
  });
});

describe('zero terminal SNR (last beta 1)', () => {
  const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
  const ztsnr = (objective: 'pred_x0' | 'pred_v' | 'pred_noise', extra: object = {}): GaussianDiffusion =>
    new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 20, betaSchedule: 'linear', objective, ...extra });

  it('linear with 20 steps ends at beta 1 and alphas_cumprod 0', () => {
    const s = ztsnr('pred_x0').schedule();
    const betas = s.betas.toFloat32Array(), ab = s.alphasCumprod.toFloat32Array();
    assert.strictEqual(betas[19], 1);
    assert.strictEqual(ab[19], 0);
    torch.dispose(Object.values(s));
  });

  for (const objective of ['pred_x0', 'pred_v'] as const) {
    it(`${objective} samples finite images, ancestral (guided too) and DDIM`, async () => {
      const runs = [
        await ztsnr(objective).sample({ batchSize: 2, seed: 1 }),
        await ztsnr(objective).sample({ batchSize: 2, seed: 1, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([0, 1]), classifierScale: 1 } }),
        await ztsnr(objective, { samplingTimesteps: 5 }).sample({ batchSize: 2, seed: 1 }),
      ];
      for (const r of runs) {
        assert.deepStrictEqual(r.shape, [2, 3, 8, 8]);
        assert.ok(r.toFloat32Array().every(Number.isFinite));
      }
    });
  }

  it('pred_noise is refused, saying why', () => {
    assert.throws(() => ztsnr('pred_noise'), {
      message: "objective 'pred_noise' cannot use a schedule whose last beta is 1 (zero terminal SNR): x0 = (x_t - sqrt(1 - ab_T) * eps) / sqrt(ab_T) divides by sqrt(ab_T) = 0 at the last timestep; use objective 'pred_x0' or 'pred_v', or a schedule whose betas stay below 1",
    });
  });

  it('guided DDIM is refused, saying why', async () => {
    await assert.rejects(ztsnr('pred_x0', { samplingTimesteps: 5 }).sample({ batchSize: 2, condFn: classifierGuidance, guidanceKwargs: { classifier, y: torch.tensor([0, 1]) } }), {
      message: 'guided DDIM cannot use a schedule whose last beta is 1 (zero terminal SNR): condition_score re-derives x0 from eps, which divides by sqrt(ab_T) = 0 at the first step; sample it ancestrally',
    });
  });

  it('fewer than 20 linear steps (a beta above 1) is refused', () => {
    assert.throws(() => new GaussianDiffusion(toy, { imageSize: 8, channels: 3, timesteps: 19, betaSchedule: 'linear', objective: 'pred_x0' }), {
      message: "betaSchedule 'linear' needs timesteps >= 20 (its last beta is 20 / timesteps, which must not exceed 1); got timesteps 19",
    });
  });
});
