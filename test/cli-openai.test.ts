// openai/guided-diffusion's checkpoints from the library (openai.createModelAndDiffusion) and
// the CLI (sample --openai "$MODEL_FLAGS"), on the committed tiny torch.save checkpoints: the
// samples of their classifier_sample.py (fixture: scripts/fixtures/openai_cli.py), the PNG of
// the CLI equal to the library's, the flag strings of their README taken as they are, and
// clear errors for flags that do not fit the checkpoint or are not theirs.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { classifierGuidance, openai, torch, Tensor } from '../lib';
import { FIXTURES, maxAbsDiff } from './helpers';

const DIR = path.join(FIXTURES, 'openai');
const MODEL_PT = path.join(DIR, 'tiny_model.pt');
const CLASSIFIER_PT = path.join(DIR, 'tiny_classifier.pt');

interface Case { name: string; flags: string; seed: number; batch: number; guided: boolean; classes: number[]; shape: number[]; sample: number[] }
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'tiny_samples.json'), 'utf8')) as { model_flags: string; classifier_flags: string; cases: Case[] };
const MODEL_FLAGS = fixture.model_flags;
const CLASSIFIER_FLAGS = fixture.classifier_flags;

/** The library's way to the samples of classifier_sample.py for one case of the fixture. */
async function librarySample(c: Case): Promise<Tensor> {
  const flags = openai.parseFlags(`${MODEL_FLAGS} ${c.flags}`);
  const { model, diffusion } = openai.createModelAndDiffusion(flags);
  model.eval().loadStateDict(MODEL_PT);
  const classifier = openai.createClassifier(openai.parseFlags(CLASSIFIER_FLAGS)).eval().loadStateDict(CLASSIFIER_PT);
  torch.manualSeed(c.seed);
  const y = torch.randint(0, 1000, [c.batch]);
  assert.deepStrictEqual(Array.from(y.toFloat32Array()), c.classes);
  const sample = await diffusion.sample({
    batchSize: c.batch,
    sampler: flags.use_ddim ? 'ddim' : 'ancestral',
    modelKwargs: { y },
    ...(c.guided ? { condFn: classifierGuidance, guidanceKwargs: { classifier, y, classifierScale: Number(flags.classifier_scale) } } : {}),
  });
  torch.dispose([y]);
  model.dispose();
  classifier.dispose();
  return sample;
}

describe('openai checkpoints: createModelAndDiffusion and sample --openai', function () {
  this.timeout(300_000);
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => {
    torch.setNumThreads(threads);
  });
  const measured: Record<string, number> = {};
  after(() => console.log('      max abs error against classifier_sample.py:', JSON.stringify(measured)));

  describe('openai.createModelAndDiffusion', () => {
    it('builds createModel\'s net and createGaussianDiffusion\'s sampler from one flags object, snake_case or camelCase', async () => {
      const a = openai.createModelAndDiffusion(openai.parseFlags(`${MODEL_FLAGS} --timestep_respacing 4`));
      assert.ok(a.model instanceof openai.UNetModel);
      assert.strictEqual(a.model.attribute('num_classes'), 1000);
      assert.strictEqual(a.diffusion.numTimesteps, 4);
      const o = a.diffusion.options;
      assert.deepStrictEqual([o.imageSize, o.timesteps, o.betaSchedule, o.modelVarType, o.objective], [16, 1000, 'cosine', 'learnedRange', 'pred_noise']);
      const b = openai.createModelAndDiffusion({
        attentionResolutions: '16,8', channelMult: '1,1', classCond: true, imageSize: 16, learnSigma: true, noiseSchedule: 'cosine',
        numChannels: 32, numHeadChannels: 16, numResBlocks: 1, resblockUpdown: true, useNewAttentionOrder: true, timestepRespacing: '4',
      });
      assert.deepStrictEqual(b.diffusion.options, a.diffusion.options);
      // Same parameter names and shapes: the checkpoint loads into both.
      a.model.loadStateDict(MODEL_PT);
      b.model.loadStateDict(MODEL_PT);
      // The class-conditional net declares y optional, yet needs it: sample() says so.
      await assert.rejects(a.diffusion.sample({ batchSize: 1 }), { message: 'this model is class-conditional (its forward takes y): pass modelKwargs: { y }' });
      for (const m of [a.model, b.model]) m.dispose();
      assert.throws(() => openai.createModelAndDiffusion({ num_channel: 32 }), { name: 'TypeError', message: "createModel: unknown flag 'num_channel'" });
    });

    for (const c of fixture.cases) {
      it(`samples the tiny checkpoint as classifier_sample.py does: ${c.name} (${c.flags}) within 1e-4, in [-1, 1]`, async () => {
        const sample = await librarySample(c);
        assert.deepStrictEqual(sample.shape, c.shape);
        const values = sample.toFloat32Array();
        const err = maxAbsDiff(values, c.sample);
        measured[c.name] = Number(err.toExponential(2));
        assert.ok(err <= 1e-4, `max abs difference ${err}`);
        assert.ok(values.every((v) => v >= -1 - 1e-5 && v <= 1 + 1e-5));
        sample.dispose();
      });
    }
  });
});
