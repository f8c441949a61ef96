// The guided-diffusion command: PNGs of the right size, and one clear line + exit 1 on bad input.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { GaussianDiffusion, jit, LinearClassifier, saveImage, torch, Unet } from '../lib';
import { REFERENCE } from './helpers';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
const MODEL = ['--model', path.join(REFERENCE, 'unet_traced.pt'), '--image-size', '16', '--timesteps', '20'];

function cli(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('CLI', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-cli-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('samples with user checkpoints into a PNG grid of the right size', () => {
    const out = path.join(tmp, 'grid.png');
    const r = cli('sample', ...MODEL, '--classifier', path.join(REFERENCE, 'classifier.pt'), '--class', '3', '--n', '5', '--nrow', '3', '--steps', '5', '--seed', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    const png = PNG.sync.read(fs.readFileSync(out));
    // 3 per row, 2 rows of 16x16 with 2 px padding
    assert.strictEqual(png.width, 3 * 18 + 2);
    assert.strictEqual(png.height, 2 * 18 + 2);
    assert.match(r.stderr, /wrote .*grid\.png: 5 images, 5 steps, scale 1/);
  });

  it('the same seed gives the same PNG; the JS condFn gives the same image as the native one', () => {
    const a = path.join(tmp, 'a.png');
    const b = path.join(tmp, 'b.png');
    const common = [...MODEL, '--classifier', path.join(REFERENCE, 'classifier.pt'), '--class', '1', '--n', '2', '--steps', '4', '--seed', '7', '--scale', '2'];
    assert.strictEqual(cli('sample', ...common, '--out', a).status, 0);
    assert.strictEqual(cli('sample', ...common, '--js-cond-fn', '--out', b).status, 0);
    assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)));
  });

  it('fails cleanly on a missing checkpoint, a bad class and a bad flag', () => {
    let r = cli('sample', '--model', path.join(tmp, 'missing.pt'), '--image-size', '16');
    assert.strictEqual(r.status, 1);
    assert.strictEqual(r.stderr.trim(), `guided-diffusion: model checkpoint not found: ${path.join(tmp, 'missing.pt')}`);
    r = cli('sample', ...MODEL, '--classifier', path.join(REFERENCE, 'classifier.pt'), '--class', 'sneaker');
    assert.strictEqual(r.status, 1);
    assert.strictEqual(r.stderr.trim(), "guided-diffusion: unknown class 'sneaker'; this classifier has no class names: give an index");
    r = cli('sample', ...MODEL, '--classifier', path.join(REFERENCE, 'classifier.pt'), '--class', '9');
    assert.strictEqual(r.status, 1);
    r = cli('sample', '--bogus');
    assert.strictEqual(r.status, 1);
    assert.match(r.stderr, /unknown option '--bogus'/);
    r = cli('sample', ...MODEL, '--n', '0');
    assert.strictEqual(r.status, 1);
    assert.match(r.stderr, /--n must be an integer >= 1/);
  });

  it('samples the shipped Fashion-MNIST model by class name into a 32x32-per-image grid, by its default sampler', () => {
    const out = path.join(tmp, 'sneakers.png');
    const r = cli('sample', '--class', 'sneaker', '--n', '4', '--seed', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    const png = PNG.sync.read(fs.readFileSync(out));
    // nrow 8 by default, 4 images: one row of 32x32 with 2 px padding
    assert.strictEqual(png.width, 4 * 34 + 2);
    assert.strictEqual(png.height, 34 + 2);
    // The model's default sampler (model.json): euler-ancestral over 20 sigmas; --steps sets their number.
    assert.match(r.stderr, /wrote .*sneakers\.png: 4 images of Sneaker, 20 euler-ancestral steps, scale 4\n$/);
    const fewer = cli('sample', '--class', 'sneaker', '--n', '1', '--steps', '3', '--out', path.join(tmp, 'fewer.png'));
    assert.match(fewer.stderr, /^step 3\/3\nwrote .*fewer\.png: 1 images of Sneaker, 3 euler-ancestral steps, scale 4\n$/m);
  });

  it('--cfg-scale: classifier-free guidance of a class-conditional --model is sample({ cfgScale }) with the same seed; bad combinations are one line', async () => {
    torch.manualSeed(1);
    const unet = new Unet({ dim: 8, dimMults: [1, 2], channels: 1, numClasses: 3 }).eval();
    const file = path.join(tmp, 'cfg-unet.pt');
    unet.save(file);
    unet.dispose();
    const flags = ['--model', file, '--image-size', '16', '--timesteps', '30', '--beta-schedule', 'cosine', '--steps', '5', '--n', '3', '--seed', '3'];
    const out = path.join(tmp, 'cfg.png');
    const r = cli('sample', ...flags, '--cfg-scale', '2.5', '--class', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /wrote .*cfg\.png: 3 images, 5 steps, cfgScale 2\.5\n$/);
    const d = new GaussianDiffusion(jit.load(file), { imageSize: 16, channels: 1, timesteps: 30, samplingTimesteps: 5, betaSchedule: 'cosine' });
    const y = torch.tensor([1, 1, 1], { dtype: 'int64' });
    const images = await d.sample({ batchSize: 3, seed: 3, modelKwargs: { y }, cfgScale: 2.5 });
    const mine = path.join(tmp, 'cfg-lib.png');
    saveImage(images, mine, { nrow: 8 });
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(mine)), 'the CLI PNG is the library sample');
    torch.dispose([y, images]);
    // Without --class: each class in turn.
    assert.strictEqual(cli('sample', ...flags, '--cfg-scale', '2', '--out', path.join(tmp, 'cfg-all.png')).status, 0);
    let bad = cli('sample', ...flags, '--cfg-scale', '2', '--classifier', path.join(REFERENCE, 'classifier.pt'));
    assert.strictEqual(bad.stderr.trim(), 'guided-diffusion: --cfg-scale (classifier-free guidance) takes no classifier: leave out --classifier, --scale and --js-cond-fn');
    bad = cli('sample', ...MODEL, '--cfg-scale', '2');
    assert.strictEqual(bad.status, 1);
    assert.match(bad.stderr, /--cfg-scale needs a class-conditional --model/);
    bad = cli('sample', ...flags, '--cfg-scale', '2', '--class', '3');
    assert.strictEqual(bad.stderr.trim(), 'guided-diffusion: class index 3 is out of range 0..2');
  });

  it('the shipped model rejects an unknown class name, listing the names', () => {
    const r = cli('sample', '--class', 'hat', '--n', '1', '--steps', '1');
    assert.strictEqual(r.status, 1);
    assert.strictEqual(
      r.stderr.trim(),
      "guided-diffusion: unknown class 'hat'; expected one of: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot, or an index",
    );
  });

  it('bounds --n with one line (1e9 ran out of heap)', () => {
    const r = cli('sample', ...MODEL, '--n', '1000000000');
    assert.strictEqual(r.status, 1);
    assert.match(r.stderr, /option '--n <count>' argument '1000000000' is invalid\. --n must be at most 10000/);
    assert.match(cli('sample', ...MODEL, '--batch-size', '0').stderr, /--batch-size must be an integer >= 1/);
  });

  it('samples --n in batches of --batch-size; with --seed, batch i has seed + i', () => {
    // Images of a grid with one image per row: 16x16 tiles 18 px apart below a 2 px border.
    const tiles = (file: string): Buffer[] => {
      const png = PNG.sync.read(fs.readFileSync(file));
      const rowBytes = png.width * 4;
      return Array.from({ length: (png.height - 2) / 18 }, (_, k) => png.data.subarray((2 + 18 * k) * rowBytes, (18 + 18 * k) * rowBytes));
    };
    const run = (name: string, ...args: string[]): Buffer[] => {
      const out = path.join(tmp, name);
      const r = cli('sample', ...MODEL, '--steps', '3', '--nrow', '1', '--out', out, ...args);
      assert.strictEqual(r.status, 0, r.stderr);
      return tiles(out);
    };
    const batched = run('batched.png', '--n', '3', '--batch-size', '2', '--seed', '5');
    const first = run('first.png', '--n', '2', '--seed', '5');
    const second = run('second.png', '--n', '1', '--seed', '6');
    assert.strictEqual(batched.length, 3);
    assert.ok(batched[0].equals(first[0]) && batched[1].equals(first[1]), 'batch 0 is the sample of seed 5');
    assert.ok(batched[2].equals(second[0]), 'batch 1 is the sample of seed 6');
    assert.ok(!batched[0].equals(batched[1]));
  });

  it('checks that --out can be written before sampling', () => {
    const missing = path.join(tmp, 'no-such-dir', 'x.png');
    let r = cli('sample', ...MODEL, '--steps', '3', '--out', missing);
    assert.strictEqual(r.status, 1);
    // One line and no progress lines: nothing was sampled.
    assert.strictEqual(r.stderr, `guided-diffusion: cannot write --out ${missing}: no directory ${path.dirname(missing)}\n`);
    r = cli('sample', ...MODEL, '--steps', '3', '--out', tmp);
    assert.strictEqual(r.status, 1);
    assert.strictEqual(r.stderr, `guided-diffusion: cannot write --out ${tmp}: it is a directory\n`);
  });

  it('a TorchScript error prints its cause (the shapes), not only that the interpreter failed', () => {
    const cls = path.join(tmp, 'classifier-8px.pt');
    new LinearClassifier({ imageSize: 8, channels: 3, numClasses: 10 }).save(cls); // the model's images are 16x16
    const r = cli('sample', ...MODEL, '--classifier', cls, '--class', '1', '--n', '2', '--steps', '2', '--out', path.join(tmp, 'never.png'));
    assert.strictEqual(r.status, 1);
    assert.strictEqual(r.stderr, 'guided-diffusion: mat1 and mat2 shapes cannot be multiplied (2x768 and 192x10)\n');
  });

  describe('fast samplers (--sampler)', () => {
    // One LibTorch thread: quicker than two on a loaded machine, and the same bits every run.
    const fast = (out: string, ...args: string[]) => cli('sample', '--threads', '1', '--out', path.join(tmp, out), ...args);
    const bytes = (out: string): Buffer => fs.readFileSync(path.join(tmp, out));

    it('dpm-solver++ on the shipped model: --steps is its steps, the progress and the last line say so', () => {
      const t0 = Date.now();
      const r = fast('dpm.png', '--sampler', 'dpm-solver++', '--steps', '10', '--n', '2', '--seed', '1');
      const seconds = (Date.now() - t0) / 1000;
      assert.strictEqual(r.status, 0, r.stderr);
      const png = PNG.sync.read(bytes('dpm.png'));
      assert.deepStrictEqual([png.width, png.height], [2 * 34 + 2, 34 + 2]);
      assert.match(r.stderr, /^step 10\/10$/m);
      assert.doesNotMatch(r.stderr, /\/1000\b/);
      assert.match(r.stderr, /wrote .*dpm\.png: 2 images, 10 dpm-solver\+\+ steps, scale \d/);
      console.log(`      shipped model, dpm-solver++ 10 steps, 2 images: ${seconds.toFixed(1)} s`);
    });

    it('the same seed and flags give the same PNG bytes; another seed another PNG', () => {
      const args = ['--sampler', 'dpm-solver++', '--steps', '10', '--n', '2'];
      assert.strictEqual(fast('dpm-again.png', ...args, '--seed', '1').status, 0);
      assert.strictEqual(fast('dpm-seed2.png', ...args, '--seed', '2').status, 0);
      if (!fs.existsSync(path.join(tmp, 'dpm.png'))) assert.strictEqual(fast('dpm.png', ...args, '--seed', '1').status, 0);
      assert.ok(bytes('dpm-again.png').equals(bytes('dpm.png')));
      assert.ok(!bytes('dpm-seed2.png').equals(bytes('dpm.png')));
    });

    it('--model checkpoints: dpmpp-2m with --karras (the default) or --model-sigmas, heun, respaced ancestral', () => {
      const run = (out: string, ...args: string[]): string => {
        const r = fast(out, ...MODEL, '--n', '3', '--nrow', '3', '--seed', '4', ...args);
        assert.strictEqual(r.status, 0, r.stderr);
        return r.stderr;
      };
      assert.match(run('karras.png', '--sampler', 'dpmpp-2m', '--karras', '--steps', '5'), /^step 5\/5\nwrote .*karras\.png: 3 images, 5 dpmpp-2m steps\n$/m);
      const png = PNG.sync.read(bytes('karras.png'));
      assert.deepStrictEqual([png.width, png.height], [3 * 18 + 2, 18 + 2]);
      run('default-sigmas.png', '--sampler', 'dpmpp-2m', '--steps', '5');
      run('model-sigmas.png', '--sampler', 'dpmpp-2m', '--model-sigmas', '--steps', '5');
      run('rho.png', '--sampler', 'dpmpp-2m', '--rho', '3', '--steps', '5');
      assert.ok(bytes('karras.png').equals(bytes('default-sigmas.png')), '--karras is the default');
      assert.ok(!bytes('karras.png').equals(bytes('model-sigmas.png')), '--model-sigmas reaches the sampler');
      assert.ok(!bytes('karras.png').equals(bytes('rho.png')), '--rho reaches the sampler');
      assert.match(run('heun.png', '--sampler', 'heun', '--steps', '5'), /: 3 images, 5 heun steps \(9 model calls\)\n$/);
      // DPM-Solver's singlestep takes --steps model calls in fewer, mixed-order steps: the bar counts those.
      assert.match(run('single.png', '--sampler', 'dpm-solver++', '--method', 'singlestep', '--steps', '10'), /^step 5\/5\nwrote .*: 3 images, 10 dpm-solver\+\+ steps\n$/m);
      assert.match(run('ancestral.png', '--sampler', 'ancestral', '--steps', '5'), /^step 5\/5\nwrote .*: 3 images, 5 ancestral steps\n$/m);
      assert.match(run('ddim.png', '--sampler', 'ddim', '--steps', '5'), /: 3 images, 5 ddim steps\n$/);
      assert.match(run('unipc.png', '--sampler', 'unipc', '--steps', '4', '--order', '3', '--unipc-variant', 'bh2', '--thresholding', '--thresholding-ratio', '0.9'),
        /: 3 images, 4 unipc steps\n$/);
    });

    it('a sampler flag that does not apply, or a bad value, is one line and exit 1', () => {
      const fails = (message: string | RegExp, ...args: string[]): void => {
        const r = cli('sample', '--n', '1', '--out', path.join(tmp, 'never.png'), ...args);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
        if (typeof message === 'string') assert.strictEqual(r.stderr, `guided-diffusion: ${message}\n`);
        else assert.match(r.stderr, message);
      };
      fails(/^error: option '--order <1\|2\|3>' argument '4' is invalid\. --order must be 1, 2 or 3\n/, '--sampler', 'dpm-solver++', '--order', '4');
      fails(/^error: option '--sampler <name>' argument 'plms' is invalid\. Allowed choices are ancestral, ddim, dpm-solver\+\+, .*dpmpp-2m\.\n/, '--sampler', 'plms');
      fails('--order applies to --sampler dpm-solver++, dpm-solver or unipc, not euler', '--order', '2', '--sampler', 'euler');
      fails('--karras applies to --sampler euler, euler-ancestral, heun or dpmpp-2m, not dpm-solver++', '--sampler', 'dpm-solver++', '--karras');
      fails('--thresholding applies to --sampler dpm-solver++ or unipc, not dpm-solver', '--sampler', 'dpm-solver', '--thresholding');
      fails('--method applies to --sampler dpm-solver++ or dpm-solver, not unipc', '--sampler', 'unipc', '--method', 'singlestep');
      fails('--order needs --sampler (it applies to dpm-solver++, dpm-solver or unipc)', '--order', '2');
      fails('--thresholding-ratio needs --thresholding', '--sampler', 'unipc', '--thresholding-ratio', '0.9');
      fails('--karras and --model-sigmas exclude each other', '--sampler', 'heun', '--karras', '--model-sigmas');
      fails(/--rho must be positive/, '--sampler', 'euler', '--rho', '0');
      fails(/--skip-type <kind>' argument 'logsnr' is invalid/, '--sampler', 'unipc', '--skip-type', 'logsnr');
      fails('--steps 21 is more than the model\'s --timesteps 20', ...MODEL, '--sampler', 'unipc', '--steps', '21');
      fails('--steps 20 is more than the 10 steps of the schedule it samples (unipc takes 20 by default: give --steps)', ...MODEL.slice(0, -1), '10', '--sampler', 'unipc');
    });
  });

  it('--help documents every flag', () => {
    const r = spawnSync(process.execPath, [CLI, 'sample', '--help'], { encoding: 'utf8' });
    for (const flag of ['--class', '--n', '--batch-size', '--scale', '--steps', '--seed', '--out', '--model', '--classifier', '--image-size', '--timesteps',
      '--sampler', '--order', '--method', '--skip-type', '--thresholding', '--thresholding-ratio', '--thresholding-max', '--unipc-variant', '--karras',
      '--model-sigmas', '--rho', 'dpm-solver++', 'euler-ancestral', 'dpmpp-2m', '--init', '--strength', '--mask', '--jump-length', '--jump-count', '--cfg-scale']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
  });
});
