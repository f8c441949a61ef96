// The guided-diffusion command: PNGs of the right size, and one clear line + exit 1 on bad input.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
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

  it('--help documents every flag', () => {
    const r = spawnSync(process.execPath, [CLI, 'sample', '--help'], { encoding: 'utf8' });
    for (const flag of ['--class', '--n', '--scale', '--steps', '--seed', '--out', '--model', '--classifier', '--image-size', '--timesteps']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
  });
});
