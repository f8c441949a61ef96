// The guided-diffusion command: PNGs of the right size, and one clear line + exit 1 on bad input.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { LinearClassifier } from '../lib';
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

  it('samples the shipped Fashion-MNIST model by class name into a 32x32-per-image grid', () => {
    const out = path.join(tmp, 'sneakers.png');
    const r = cli('sample', '--class', 'sneaker', '--n', '4', '--steps', '3', '--seed', '1', '--out', out);
    assert.strictEqual(r.status, 0, r.stderr);
    const png = PNG.sync.read(fs.readFileSync(out));
    // nrow 8 by default, 4 images: one row of 32x32 with 2 px padding
    assert.strictEqual(png.width, 4 * 34 + 2);
    assert.strictEqual(png.height, 34 + 2);
    assert.match(r.stderr, /wrote .*sneakers\.png: 4 images of Sneaker, 3 steps, scale \d/);
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

  it('--help documents every flag', () => {
    const r = spawnSync(process.execPath, [CLI, 'sample', '--help'], { encoding: 'utf8' });
    for (const flag of ['--class', '--n', '--batch-size', '--scale', '--steps', '--seed', '--out', '--model', '--classifier', '--image-size', '--timesteps']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
  });
});
