// openai/guided-diffusion's checkpoints from the library (openai.createModelAndDiffusion) and
// the CLI (sample --openai "$MODEL_FLAGS"), on the committed tiny torch.save checkpoints: the
// samples of their classifier_sample.py (fixture: scripts/fixtures/openai_cli.py), the PNG of
// the CLI equal to the library's, the flag strings of their README taken as they are, and
// clear errors for flags that do not fit the checkpoint or are not theirs.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { classifierGuidance, openai, torch, toPNG, Tensor } from '../lib';
import { FIXTURES, maxAbsDiff } from './helpers';

const DIR = path.join(FIXTURES, 'openai');
const MODEL_PT = path.join(DIR, 'tiny_model.pt');
const CLASSIFIER_PT = path.join(DIR, 'tiny_classifier.pt');
const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');

interface Case { name: string; flags: string; seed: number; batch: number; guided: boolean; classes: number[]; shape: number[]; sample: number[] }
const fixture = JSON.parse(fs.readFileSync(path.join(DIR, 'tiny_samples.json'), 'utf8')) as { model_flags: string; classifier_flags: string; cases: Case[] };
const MODEL_FLAGS = fixture.model_flags;
const CLASSIFIER_FLAGS = fixture.classifier_flags;
const byName = (name: string): Case => fixture.cases.find((c) => c.name === name)!;

function cli(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'sample', '--threads', '1', ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

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

const pixels = (file: string): PNG => PNG.sync.read(fs.readFileSync(file));

/** Max difference, in 0..255 levels, of a PNG grid (8 a row, 2 px padding) from samples in [-1, 1]. */
function levelsFrom(png: PNG, sample: number[], [n, ch, h, w]: number[]): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < ch; c++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = sample[((i * ch + c) * h + y) * w + x];
          const want = Math.min(255, Math.max(0, Math.floor(((v + 1) / 2) * 255 + 0.5)));
          const gy = 2 + Math.floor(i / 8) * (h + 2) + y;
          const gx = 2 + (i % 8) * (w + 2) + x;
          worst = Math.max(worst, Math.abs(png.data[(gy * png.width + gx) * 4 + c] - want));
        }
      }
    }
  }
  return worst;
}

describe('openai checkpoints: createModelAndDiffusion and sample --openai', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-cli-openai-'));
  let threads: number;
  before(() => {
    threads = torch.getNumThreads();
    torch.setNumThreads(1);
  });
  after(() => {
    torch.setNumThreads(threads);
    fs.rmSync(tmp, { recursive: true, force: true });
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

  describe('guided-diffusion sample --openai', () => {
    it('writes the PNG of the library\'s samples, and of classifier_sample.py\'s (within one level of 255)', async () => {
      const c = byName('ancestral_guided');
      const out = path.join(tmp, 'guided.png');
      const r = cli('--openai', MODEL_FLAGS, '--classifier-flags', CLASSIFIER_FLAGS, '--model-path', MODEL_PT, '--classifier-path', CLASSIFIER_PT,
        '--classifier-scale', '1.0', '--timestep-respacing', '4', '--n', '2', '--seed', '0', '--out', out);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /wrote .*guided\.png: 2 images of random classes, 4 ancestral steps, classifier scale 1\n$/);
      const png = pixels(out);
      assert.deepStrictEqual([png.width, png.height], [2 * 18 + 2, 18 + 2]);
      const sample = await librarySample(c);
      const ours = PNG.sync.read(toPNG(torch.tidy(() => sample.add(1).div(2).clamp(0, 1)), { nrow: 8 }));
      sample.dispose();
      assert.ok(png.data.equals(ours.data), 'the CLI\'s PNG differs from the library\'s');
      assert.ok(levelsFrom(png, c.sample, c.shape) <= 1);
    });

    it('takes their README\'s flag strings as they are: model, classifier and sample flags in one --openai string', () => {
      const c = byName('ddim_guided');
      const mixed = path.join(tmp, 'mixed.png');
      const theirs = `${MODEL_FLAGS} ${CLASSIFIER_FLAGS} --classifier_scale 2.0 --classifier_path ${CLASSIFIER_PT} --model_path ${MODEL_PT} ` +
        '--batch_size 2 --num_samples 2 --timestep_respacing ddim4 --use_ddim True';
      let r = cli('--openai', theirs, '--seed', '3', '--out', mixed);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /: 2 images of random classes, 4 DDIM steps, classifier scale 2\n$/);
      assert.ok(levelsFrom(pixels(mixed), c.sample, c.shape) <= 1);
      // The same run with our options.
      const ours = path.join(tmp, 'ours.png');
      r = cli('--openai', MODEL_FLAGS, '--classifier-flags', CLASSIFIER_FLAGS, '--model-path', MODEL_PT, '--classifier-path', CLASSIFIER_PT,
        '--classifier-scale', '2', '--timestep-respacing', 'ddim4', '--use-ddim', '--n', '2', '--seed', '3', '--out', ours);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.ok(fs.readFileSync(mixed).equals(fs.readFileSync(ours)));
    });

    it('a class-conditional model samples without a classifier (their image_sample.py), and --class gives every image that class', () => {
      const c = byName('ancestral_unguided');
      const out = path.join(tmp, 'unguided.png');
      let r = cli('--openai', `${MODEL_FLAGS} --timestep_respacing 4`, '--model-path', MODEL_PT, '--n', '2', '--seed', '5', '--out', out);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /: 2 images of random classes, 4 ancestral steps\n$/);
      assert.ok(levelsFrom(pixels(out), c.sample, c.shape) <= 1);
      const dogs = path.join(tmp, 'dogs.png');
      r = cli('--openai', MODEL_FLAGS, '--classifier-flags', CLASSIFIER_FLAGS, '--model-path', MODEL_PT, '--classifier-path', CLASSIFIER_PT,
        '--classifier-scale', '1.0', '--timestep-respacing', '3', '--class', '207', '--n', '3', '--batch-size', '2', '--out', dogs);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /: 3 images of class 207, 3 ancestral steps, classifier scale 1\n$/);
      const png = pixels(dogs);
      assert.deepStrictEqual([png.width, png.height], [3 * 18 + 2, 18 + 2]);
    });

    it('--sampler unipc --steps 5 samples the whole 1000-step schedule in 5 model calls: the PNG of the library\'s unipc', async () => {
      const out = path.join(tmp, 'unipc.png');
      const r = cli('--openai', MODEL_FLAGS, '--model-path', MODEL_PT, '--sampler', 'unipc', '--steps', '5', '--n', '2', '--seed', '5', '--out', out);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /^step 5\/5\nwrote .*unipc\.png: 2 images of random classes, 5 unipc steps\n$/m);
      const png = pixels(out);
      assert.deepStrictEqual([png.width, png.height], [2 * 18 + 2, 18 + 2]);
      const { model, diffusion } = openai.createModelAndDiffusion(openai.parseFlags(MODEL_FLAGS));
      model.eval().loadStateDict(MODEL_PT);
      assert.strictEqual(diffusion.numTimesteps, 1000);
      torch.manualSeed(5);
      const y = torch.randint(0, 1000, [2]);
      const sample = await diffusion.sample({ batchSize: 2, sampler: 'unipc', steps: 5, modelKwargs: { y } });
      const ours = PNG.sync.read(toPNG(torch.tidy(() => sample.add(1).div(2).clamp(0, 1)), { nrow: 8 }));
      torch.dispose([y, sample]);
      model.dispose();
      assert.ok(png.data.equals(ours.data), 'the CLI\'s PNG differs from the library\'s');
    });

    it('a guided fast sampler over a respaced schedule, with its flags; DDIM/ancestral steps stay --timestep-respacing', () => {
      const out = path.join(tmp, 'euler-a.png');
      const guided = ['--classifier-flags', CLASSIFIER_FLAGS, '--model-path', MODEL_PT, '--classifier-path', CLASSIFIER_PT, '--n', '2', '--seed', '1'];
      let r = cli('--openai', MODEL_FLAGS, ...guided, '--timestep-respacing', '25', '--sampler', 'euler-ancestral', '--model-sigmas', '--steps', '5', '--out', out);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /: 2 images of random classes, 5 euler-ancestral steps, classifier scale 1\n$/);
      r = cli('--openai', MODEL_FLAGS, ...guided, '--timestep-respacing', 'ddim4', '--sampler', 'ddim', '--out', out);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /: 2 images of random classes, 4 DDIM steps, classifier scale 1\n$/);
      const base = ['--model-path', MODEL_PT, '--out', path.join(tmp, 'x.png')];
      const fails = (args: string[], message: string): void => {
        r = cli('--openai', MODEL_FLAGS, ...base, ...args);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.strictEqual(r.stderr, `guided-diffusion: ${message}\n`);
      };
      fails(['--sampler', 'unipc', '--use-ddim'], '--sampler unipc and --use-ddim disagree (DDIM is --sampler ddim)');
      fails(['--steps', '5'], '--steps with --openai needs a fast --sampler (dpm-solver++, dpm-solver, unipc, euler, euler-ancestral, heun, dpmpp-2m); ' +
        'the ancestral and DDIM steps are --timestep-respacing');
      fails(['--sampler', 'unipc', '--timestep-respacing', '4'], '--steps 20 is more than the 4 steps of the schedule it samples (unipc takes 20 by default: give --steps)');
      fails(['--sampler', 'euler', '--order', '2'], '--order applies to --sampler dpm-solver++, dpm-solver or unipc, not euler');
    });

    it('flags that do not fit the checkpoint name the first parameter that differs', () => {
      const run = (model: string, classifier = CLASSIFIER_FLAGS) => cli('--openai', `${model} --timestep_respacing 2`, '--classifier-flags', classifier,
        '--model-path', MODEL_PT, '--classifier-path', CLASSIFIER_PT, '--n', '1', '--out', path.join(tmp, 'x.png'));
      let r = run(MODEL_FLAGS.replace('--num_channels 32', '--num_channels 64'));
      assert.strictEqual(r.status, 1);
      assert.strictEqual(r.stderr.trim(), `guided-diffusion: ${MODEL_PT} does not fit the model of these flags: shape of 'time_embed.0.weight' is [128, 32] in the source but [256, 64] in the model. ` +
        'Other differences: 159 more shapes differ. The MODEL_FLAGS do not match the checkpoint: give the flags it was released with (README, "The paper\'s models").');
      r = run(MODEL_FLAGS.replace('--class_cond True', '--class_cond False'));
      assert.strictEqual(r.status, 1);
      assert.match(r.stderr, /^guided-diffusion: .*tiny_model\.pt does not fit the model of these flags: names do not match the model's\. Unexpected: label_emb\.weight \[1000, 128\]\. The MODEL_FLAGS do not match/);
      r = run(MODEL_FLAGS, CLASSIFIER_FLAGS.replace('--classifier_depth 1', '--classifier_depth 2'));
      assert.strictEqual(r.status, 1);
      assert.match(r.stderr, /^guided-diffusion: .*tiny_classifier\.pt does not fit the classifier of these flags: names do not match the model's\. Missing: .* The CLASSIFIER_FLAGS do not match the checkpoint/);
    });

    it('refuses flags that are not theirs, conflicting values and options that do not apply, by name', () => {
      const base = ['--model-path', MODEL_PT, '--out', path.join(tmp, 'x.png')];
      const fails = (args: string[], message: string): void => {
        const r = cli(...args);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.strictEqual(r.stderr.trim(), `guided-diffusion: ${message}`);
      };
      fails(['--openai', `${MODEL_FLAGS} --num_channel 32`, ...base], '--openai: unknown flag --num_channel (not a flag of their classifier_sample.py)');
      fails(['--openai', MODEL_FLAGS, '--classifier-flags', '--classifier_width', ...base], '--classifier-flags: flag --classifier_width has no value');
      fails(['--openai', `${MODEL_FLAGS} --classifier_scale 1.0`, '--classifier-scale', '2', ...base], '--classifier-scale 2 and --classifier_scale 1 in the flags disagree');
      fails(['--openai', `${MODEL_FLAGS} --image_size 32`, '--classifier-flags', '--image_size 16', ...base], '--image_size is given twice, as 32 and 16');
      fails(['--openai', MODEL_FLAGS, '--out', path.join(tmp, 'x.png')], '--openai needs --model-path: the checkpoint these MODEL_FLAGS describe');
      fails(['--openai', MODEL_FLAGS, '--scale', '2', ...base], '--scale does not apply with --openai (use --classifier-scale)');
      fails(['--openai', MODEL_FLAGS, '--image-size', '16', ...base], '--image-size does not apply with --openai');
      fails(['--openai', MODEL_FLAGS, '--class', '1000', ...base], "--class must be an ImageNet class index from 0 to 999; got '1000'");
      fails(['--openai', MODEL_FLAGS, '--class', 'dog', ...base], "--class must be an ImageNet class index from 0 to 999; got 'dog'");
      fails(['--openai', MODEL_FLAGS.replace('--class_cond True', ''), '--class', '1', ...base],
        '--class needs a class-conditional model (--class_cond True) or a classifier (--classifier-path)');
      fails(['--openai', `${MODEL_FLAGS} --use_ddim maybe`, ...base], '--use_ddim: expected a boolean (True/False) but received maybe');
      fails(['--openai', `${MODEL_FLAGS} --num_samples 50000`, ...base], '--num_samples must be at most 10000 (the images are held for one PNG grid); got 50000');
      fails(['--model-path', MODEL_PT], '--model-path needs --openai "$MODEL_FLAGS" (an openai/guided-diffusion checkpoint)');
      fails(['--openai', MODEL_FLAGS, '--model-path', path.join(tmp, 'missing.pt')], `model checkpoint not found: ${path.join(tmp, 'missing.pt')}`);
    });
  });
});
