// saveImage / toPNG: the grid's geometry, and what is refused (NaN images, nrow < 1).
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { saveImage, toPNG, torch } from '../lib';

describe('saveImage', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-image-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lays out nrow images per row with padding; more per row than images is one row', () => {
    torch.tidy(() => {
      const images = torch.ones([3, 1, 4, 5]);
      const grid = PNG.sync.read(toPNG(images, { nrow: 2, padding: 1 }));
      // 2 per row, 2 rows: width 2*(5+1)+1, height 2*(4+1)+1
      assert.deepStrictEqual([grid.width, grid.height], [13, 11]);
      const wide = PNG.sync.read(toPNG(images, { nrow: 10, padding: 1 }));
      assert.deepStrictEqual([wide.width, wide.height], [3 * 6 + 1, 6]);
    });
  });

  it('refuses nrow below 1 and non-integer nrow', () => {
    torch.tidy(() => {
      const images = torch.ones([2, 3, 4, 4]);
      assert.throws(() => toPNG(images, { nrow: 0 }), { name: 'RangeError', message: 'Expected positive integer for nrow but received 0' });
      assert.throws(() => toPNG(images, { nrow: -1 }), { name: 'RangeError', message: 'Expected positive integer for nrow but received -1' });
      assert.throws(() => toPNG(images, { nrow: 1.5 }), { name: 'RangeError', message: 'Expected integer for nrow but received 1.5' });
      assert.throws(() => toPNG(images, { padValue: NaN }), { name: 'RangeError', message: 'Expected a number for padValue but received NaN' });
    });
  });

  it('refuses images holding NaN and writes no file', () => {
    torch.tidy(() => {
      const images = torch.rand([2, 3, 4, 4]);
      images.select(0, 1).select(0, 2).fill_(NaN);
      const file = path.join(dir, 'nan.png');
      assert.throws(() => saveImage(images, file), {
        name: 'RangeError',
        message: 'saveImage: the images hold 16 NaN values (of 96); nothing was written',
      });
      assert.strictEqual(fs.existsSync(file), false);
      // Infinity is a saturated pixel, as in torchvision: accepted.
      saveImage(torch.full([1, 1, 2, 2], Infinity), file, { padding: 0 });
      assert.deepStrictEqual(Array.from(PNG.sync.read(fs.readFileSync(file)).data.subarray(0, 4)), [255, 255, 255, 255]);
    });
  });
});
