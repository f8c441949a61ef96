// loadImageFolder (lib/image-folder.ts): their image_datasets.py's listing, labels and
// center-crop geometry, decoded by sharp. Values are checked where no resampling happens (the
// crop alone, Fashion-MNIST PNGs at their own size) against the pixels written; the resize
// sizes against their formula worked by hand; random crops' draws against their distribution,
// and the pixels of those that need no resize against the pixels written.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { loadFashionMnist, loadImageFolder, openai, torch } from '../lib';
import { centerCropResize, randomCropBox } from '../lib/image-folder';

async function writeGray(file: string, width: number, height: number, pixels: Uint8Array): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(pixels), { raw: { width, height, channels: 1 } }).toFile(file);
}

// The test's own uniform source (a 32-bit LCG, Numerical Recipes' constants), seeded.
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296;
  };
}

describe('loadImageFolder', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-image-folder-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('resizes as their center_crop_arr: BOX halvings while the short side >= 2 image_size, then short side to image_size, Python rounding', () => {
    // 1000x600 -> 500x300 -> 250x150 -> 125x75; scale 64/75: 106.67 -> 107, 64.
    assert.deepStrictEqual(centerCropResize(1000, 600, 64), [107, 64]);
    // 5x2 to 3: scale 1.5, 7.5 rounds to 8 (half to even), 3.
    assert.deepStrictEqual(centerCropResize(5, 2, 3), [8, 3]);
    // 9x2 to 3: 13.5 rounds to 14.
    assert.deepStrictEqual(centerCropResize(9, 2, 3), [14, 3]);
    assert.deepStrictEqual(centerCropResize(28, 28, 28), [28, 28]);
    assert.deepStrictEqual(centerCropResize(256, 512, 64), [64, 128]);
  });

  it('lists .jpg/.jpeg/.png/.gif recursively in sorted order, classes from the name before the first _; crops the center exactly when no resize is needed', async () => {
    const dir = path.join(tmp, 'listing');
    const tall = Uint8Array.from({ length: 4 * 8 }, (_, i) => i * 7);  // 4 wide, 8 high
    await writeGray(path.join(dir, 'b', 'cat_2.png'), 4, 8, tall);
    await writeGray(path.join(dir, 'a', 'dog_1.png'), 4, 4, new Uint8Array(16).fill(200));
    await writeGray(path.join(dir, 'cat_1.PNG'), 4, 4, new Uint8Array(16).fill(0));
    await writeGray(path.join(dir, 'zebra.png'), 4, 4, new Uint8Array(16).fill(255));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image');
    const before = torch.memory().tensors;
    const r = await loadImageFolder(dir, { imageSize: 4, classCond: true, channels: 1 });
    assert.deepStrictEqual(r.files.map((f) => path.relative(dir, f)), ['a/dog_1.png', 'b/cat_2.png', 'cat_1.PNG', 'zebra.png']);
    assert.deepStrictEqual(r.classes, ['cat', 'dog', 'zebra.png']);
    assert.deepStrictEqual(Array.from(r.labels!.data() as BigInt64Array, Number), [1, 0, 0, 2]);
    assert.deepStrictEqual(r.images.shape, [4, 1, 4, 4]);
    const got = Array.from(r.images.data() as Float32Array);
    // cat_2: 8 rows, crop top (8 - 4) / 2 = 2: rows 2..5.
    const want = Array.from(tall.slice(2 * 4, 6 * 4), (v) => v / 127.5 - 1);
    assert.deepStrictEqual(got.slice(16, 32).map((v) => Math.round(v * 1e5)), want.map((v) => Math.round(v * 1e5)));
    assert.ok(got.slice(0, 16).every((v) => Math.abs(v - (200 / 127.5 - 1)) < 1e-6));
    assert.ok(got.slice(32, 48).every((v) => v === -1) && got.slice(48).every((v) => v === 1));
    r.images.dispose();
    r.labels!.dispose();
    assert.strictEqual(torch.memory().tensors, before);
  });

  it('Fashion-MNIST written as PNGs reads back equal to the IDX images at 28 and, resized to 32 and RGB, in [-1, 1]; feeds TrainLoop.runLoop', async () => {
    const dir = path.join(tmp, 'fashion');
    const fm = loadFashionMnist({ limit: 24 });
    const pixels = fm.images.add(1).mul(127.5).round().to('uint8');
    const bytes = pixels.data() as Uint8Array;
    const labels = Array.from(fm.labels.data() as BigInt64Array, Number);
    for (let i = 0; i < 24; i++) await writeGray(path.join(dir, `${fm.classNames[labels[i]].replace(/[^A-Za-z]/g, '')}_${String(i).padStart(2, '0')}.png`), 28, 28, bytes.slice(i * 784, (i + 1) * 784));
    const r = await loadImageFolder(dir, { imageSize: 28, channels: 1, classCond: true });
    // Files sort by class name, then index: reorder the IDX images the same way.
    const order = r.files.map((f) => Number(path.basename(f, '.png').split('_')[1]));
    const want = fm.images.indexSelect(0, torch.tensor(order.map(BigInt)));
    const err = r.images.sub(want).abs().max().item() as number;
    console.log(`      24 Fashion-MNIST PNGs at 28x28: max |loaded - IDX| ${err.toExponential(2)}; ${r.classes!.length} classes`);
    assert.ok(err < 1e-6, String(err));
    const rgb = await loadImageFolder(dir, { imageSize: 32 });
    assert.deepStrictEqual(rgb.images.shape, [24, 3, 32, 32]);
    assert.ok((rgb.images.min().item() as number) >= -1 && (rgb.images.max().item() as number) <= 1);
    assert.strictEqual(rgb.labels, undefined);

    const net = new openai.UNetModel({ image_size: 28, in_channels: 1, model_channels: 32, out_channels: 1, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1, 2], num_classes: r.classes!.length });
    const loop = new openai.TrainLoop(openai.createGaussianDiffusion(net, { image_size: 28 }), { batch_size: 8, seed: 1 });
    const run = await loop.runLoop({ data: r.images, labels: r.labels, steps: 3, outDir: path.join(tmp, 'ckpt') });
    assert.strictEqual(run.stepsRun, 3);
    for (const t of [fm.images, fm.labels, pixels, want, r.images, r.labels!, rgb.images]) t.dispose();
    net.dispose();
  });

  it('a file that cannot be decoded is named, or skipped and counted with onBadFile: skip; bad options are named', async () => {
    const dir = path.join(tmp, 'bad');
    await writeGray(path.join(dir, 'ok_1.png'), 4, 4, new Uint8Array(16).fill(9));
    fs.writeFileSync(path.join(dir, 'ok_2.png'), Buffer.from('\x89PNG\r\n\x1a\n truncated'));
    await assert.rejects(loadImageFolder(dir, { imageSize: 4 }), (e: Error) => e.message.startsWith(`loadImageFolder: cannot read ${path.join(dir, 'ok_2.png')}: `));
    const r = await loadImageFolder(dir, { imageSize: 4, onBadFile: 'skip' });
    assert.strictEqual(r.images.shape[0], 1);
    assert.deepStrictEqual(r.skipped.map((s) => path.basename(s.file)), ['ok_2.png']);
    r.images.dispose();
    await assert.rejects(loadImageFolder(dir, { imageSize: 4, crop: 'center' } as never), /crop/);
    await assert.rejects(loadImageFolder(dir, { imageSize: 0 }), /imageSize must be an integer in 1\.\.4096; got 0/);
    await assert.rejects(loadImageFolder(path.join(dir, 'ok_1.png'), { imageSize: 4 }), /is not a folder/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await assert.rejects(loadImageFolder(empty, { imageSize: 4 }), /no \.jpg, \.jpeg, \.png or \.gif files under/);
  });

  it('randomCropBox draws as their random_crop_arr: the short side uniform in [S, ceil(S / 0.8)], the crop uniform over the resized image', () => {
    const S = 64, N = 17000;
    const random = lcg(11);
    const sides = new Map<number, number>();
    let leftSum = 0, topMax = 0, leftMax = 0;
    for (let i = 0; i < N; i++) {
      const b = randomCropBox(100, 100, S, random);
      // A square stays square: round(100 * s / 100) = s.
      assert.strictEqual(b.width, b.height);
      assert.ok(b.left >= 0 && b.top >= 0 && b.left + S <= b.width && b.top + S <= b.height, JSON.stringify(b));
      sides.set(b.width, (sides.get(b.width) ?? 0) + 1);
      leftSum += b.left;
      leftMax = Math.max(leftMax, b.left);
      topMax = Math.max(topMax, b.top);
    }
    // Their randrange(ceil(64 / 1.0), ceil(64 / 0.8) + 1): 64..80, 17 sizes of N / 17 = 1000 each.
    assert.deepStrictEqual([...sides.keys()].sort((a, b) => a - b), Array.from({ length: 17 }, (_, i) => 64 + i));
    const counts = [...sides.values()];
    // E[left] = E[(s - 64) / 2] over s uniform in 64..80 = 4.
    const meanLeft = leftSum / N;
    console.log(`      ${N} draws at 100x100 -> 64: sizes 64..80 counted ${Math.min(...counts)}..${Math.max(...counts)} (1000 expected each), mean left ${meanLeft.toFixed(3)} (4 expected), max left/top ${leftMax}/${topMax} (16)`);
    for (const c of counts) assert.ok(Math.abs(c - 1000) < 130, String(c));  // > 4 sigma of a binomial(17000, 1/17)
    assert.ok(Math.abs(meanLeft - 4) < 0.1, String(meanLeft));
    assert.strictEqual(leftMax, 16);
    assert.strictEqual(topMax, 16);
    // A 1000x600 image: BOX halvings while the short side >= 2 s (s <= 80: 600 -> 300 -> 150), then to s.
    const b = randomCropBox(1000, 600, 64, () => 0.99);
    assert.deepStrictEqual([b.width, b.height], [133, 80]);  // s = 80, 250 * 80 / 150 = 133.3
  });

  it('randomCrop: seeded crops of the shape asked; those that need no resize are the pixels written at their place', async () => {
    const dir = path.join(tmp, 'random-crop');
    const W = 10, H = 16, S = 8;
    const written: Uint8Array[] = [];
    for (let i = 0; i < 12; i++) {
      const px = Uint8Array.from({ length: W * H }, (_, k) => (k * 13 + i * 29) % 256);
      written.push(px);
      await writeGray(path.join(dir, `c${i % 3}_${String(i).padStart(2, '0')}.png`), W, H, px);
    }
    const a = await loadImageFolder(dir, { imageSize: S, channels: 1, randomCrop: true, seed: 5 });
    const again = await loadImageFolder(dir, { imageSize: S, channels: 1, randomCrop: true, seed: 5 });
    const other = await loadImageFolder(dir, { imageSize: S, channels: 1, randomCrop: true, seed: 6 });
    assert.deepStrictEqual(a.images.shape, [12, 1, S, S]);
    assert.deepStrictEqual(again.crops, a.crops);
    assert.notDeepStrictEqual(other.crops, a.crops);
    const got = a.images.data() as Float32Array;
    let exact = 0;
    a.crops.forEach((box, i) => {
      // Short side 10 drawn from {8, 9, 10}: sizes 8x13, 9x14 (rounded) or 10x16 as written.
      const side = box.width;
      assert.ok([8, 9, 10].includes(side), JSON.stringify(box));
      assert.strictEqual(box.height, Math.round((H * side) / W));
      if (side !== W) return;
      exact++;
      const px = written[Number(path.basename(a.files[i]).slice(3, 5))];  // files are in sorted order, c0_00, c0_03, ...
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const want = px[(box.top + y) * W + box.left + x] / 127.5 - 1;
          assert.ok(Math.abs(got[i * S * S + y * S + x] - want) < 1e-6, `image ${i} (${x}, ${y})`);
        }
      }
    });
    console.log(`      seed 5: short sides ${a.crops.map((c) => c.width).join(',')}; ${exact} uncropped-size images equal the written pixels at their crop; seed 6 differs`);
    assert.ok(exact > 0);
    await assert.rejects(loadImageFolder(dir, { imageSize: S, randomCrop: 'yes' as never }), /randomCrop must be a boolean; got yes/);
    await assert.rejects(loadImageFolder(dir, { imageSize: S, seed: -1 }), /seed must be an integer in 0\.\.2\^32-1; got -1/);
    torch.dispose([a.images, again.images, other.images]);
  });
});
