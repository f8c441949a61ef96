// A diffusion's default sampler (GaussianDiffusionOptions.defaultSampler): what sample() runs
// when its options name no sampler. The shipped model's is euler-ancestral over 20 Karras
// sigmas (docs/EVAL.md "Fast samplers"); asking pretrained() for steps of the schedule gives
// ancestral / DDIM sampling as before.
import * as assert from 'assert';
import * as path from 'path';
import { classifierGuidance, GaussianDiffusion, jit, torch } from '../lib';
import { FIXTURES } from './helpers';

const toy = jit.load(path.join(FIXTURES, 'diffusion', 'toy_model.pt'));
const base = { imageSize: 4, channels: 1, timesteps: 50 };

describe('default sampler', () => {
  it('sample() without a sampler runs the default with its options; its own options override them', async () => {
    const d = new GaussianDiffusion(toy, { ...base, defaultSampler: { sampler: 'dpm-solver++', steps: 6, order: 3 } });
    const seen: number[] = [];
    const byDefault = await d.sample({ batchSize: 2, seed: 3, onProgress: (p) => seen.push(p.total) });
    const explicit = await d.sample({ batchSize: 2, seed: 3, sampler: 'dpm-solver++', steps: 6, order: 3 });
    assert.deepStrictEqual(byDefault.toFloat32Array(), explicit.toFloat32Array());
    assert.deepStrictEqual(seen, [6, 6, 6, 6, 6, 6]);
    // steps given: the default's other options stay (order 3), steps is replaced.
    const fewer = await d.sample({ batchSize: 2, seed: 3, steps: 4 });
    const fewerExplicit = await d.sample({ batchSize: 2, seed: 3, sampler: 'dpm-solver++', steps: 4, order: 3 });
    assert.deepStrictEqual(fewer.toFloat32Array(), fewerExplicit.toFloat32Array());
    // A sampler given: none of the default's options apply (order would be refused by DDIM).
    const ddim = await d.sample({ batchSize: 2, seed: 3, sampler: 'ddim' });
    assert.strictEqual(ddim.shape[0], 2);
    torch.dispose([byDefault, explicit, fewer, fewerExplicit, ddim]);
  });

  it('an option the default sampler does not take is refused naming the samplers that do', async () => {
    const d = new GaussianDiffusion(toy, { ...base, defaultSampler: { sampler: 'euler-ancestral', steps: 5 } });
    await assert.rejects(d.sample({ batchSize: 1, order: 2 }), { name: 'TypeError', message: "order is an option of 'dpm-solver++', 'dpm-solver', 'unipc'; sampler 'euler-ancestral' does not take it" });
    await assert.rejects(d.sample({ batchSize: 1, steps: 51 }), { name: 'RangeError', message: "steps (51) cannot exceed the schedule's 50 steps" });
  });

  const bad: [unknown, string, string][] = [
    [{ sampler: 'euler', steps: 51 }, 'RangeError', "defaultSampler: steps (51) cannot exceed the schedule's 50 steps"],
    [{ sampler: 'ddim', steps: 5 }, 'TypeError', "defaultSampler: steps is an option of 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'; sampler 'ddim' does not take it"],
    [{ sampler: 'euler', steps: 5, stepz: 2 }, 'TypeError', "defaultSampler: unknown option 'stepz' (did you mean 'steps'?)"],
    [{ steps: 5 }, 'TypeError', 'defaultSampler: sampler is required'],
    [{ sampler: 'plms' }, 'TypeError', "sampler must be one of 'ancestral', 'ddim', 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'; got 'plms'"],
    [{ sampler: 'ddim', eta: 2 }, 'RangeError', 'defaultSampler: eta must be in [0, 1]; got 2'],
    ['euler', 'TypeError', "defaultSampler: expected an object such as { sampler: 'euler-ancestral', steps: 20 }; got string"],
  ];
  for (const [value, name, message] of bad) {
    it(`defaultSampler ${JSON.stringify(value)}: ${name} when the diffusion is built`, () => {
      assert.throws(() => new GaussianDiffusion(toy, { ...base, defaultSampler: value as never }), { name, message });
    });
  }

  it('GaussianDiffusion and pretrained() refuse options they do not know, naming them', () => {
    assert.throws(() => new GaussianDiffusion(toy, { ...base, samplingSteps: 10, sampler: 'euler' } as never), {
      name: 'TypeError',
      message: "GaussianDiffusion: unknown options 'samplingSteps' (did you mean 'samplingTimesteps'?), 'sampler'",
    });
    assert.throws(() => GaussianDiffusion.pretrained('fashion-mnist', { sampler: 'ddim' } as never), { name: 'TypeError', message: "pretrained: unknown option 'sampler'" });
  });
});

describe('default sampler: the shipped model', () => {
  it("pretrained('fashion-mnist') samples with euler-ancestral over 20 Karras sigmas unless asked for schedule steps", async () => {
    const p = GaussianDiffusion.pretrained('fashion-mnist');
    assert.deepStrictEqual(p.meta.sampler, { sampler: 'euler-ancestral', steps: 20 });
    assert.deepStrictEqual(p.diffusion.options.defaultSampler, { sampler: 'euler-ancestral', steps: 20 });
    const y = torch.tensor([7, 8], { dtype: 'int64' });
    const kwargs = { classifier: p.classifier, y, classifierScale: p.meta.classifierScale };
    // TorchScript's profiling executor optimises the graphs over their first calls (the first
    // sample differs from later ones by ~1e-6): warm up, then compare bit for bit.
    (await p.diffusion.sample({ batchSize: 2, steps: 3, condFn: classifierGuidance, guidanceKwargs: kwargs })).dispose();
    const totals: number[] = [];
    const byDefault = await p.diffusion.sample({ batchSize: 2, seed: 1, condFn: classifierGuidance, guidanceKwargs: kwargs, onProgress: (s) => totals.push(s.total) });
    const explicit = await p.diffusion.sample({ batchSize: 2, seed: 1, sampler: 'euler-ancestral', steps: 20, sigmas: 'karras', condFn: classifierGuidance, guidanceKwargs: kwargs });
    assert.strictEqual(totals.length, 20);
    assert.ok(totals.every((t) => t === 20));
    assert.deepStrictEqual(byDefault.toFloat32Array(), explicit.toFloat32Array());
    torch.dispose([byDefault, explicit, y]);
    // Steps of the schedule asked for: ancestral / DDIM as the options say, no default sampler.
    assert.strictEqual(GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: 10 }).diffusion.options.defaultSampler, undefined);
    assert.strictEqual(GaussianDiffusion.pretrained('fashion-mnist', { samplingTimesteps: 10 }).diffusion.isDdimSampling, true);
    assert.strictEqual(GaussianDiffusion.pretrained('fashion-mnist', { timestepRespacing: '10' }).diffusion.options.defaultSampler, undefined);
  });
});
