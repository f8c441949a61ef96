// PNG output: a batch of images in [0, 1] as one grid, like torchvision.utils.save_image.
import * as fs from 'fs';
import { PNG } from 'pngjs';
import { binding } from './binding';
import { checkOptionKeys } from './option-keys';
import { Tensor } from './tensor';

export interface ImageGridOptions {
  /** Images per row; default 8. */
  nrow?: number;
  /** Pixels between images; default 2. */
  padding?: number;
  /** Value of the padding, in [0, 1]; default 0. */
  padValue?: number;
}

/** Encodes images ([B, C, H, W] or [C, H, W], C = 1 or 3, values in [0, 1]) as a PNG grid. */
export function toPNG(images: Tensor, options: ImageGridOptions = {}): Buffer {
  checkOptionKeys<ImageGridOptions>('image grid', options, { nrow: true, padding: true, padValue: true });
  const grid = binding.imageGrid(images, options.nrow ?? 8, options.padding ?? 2, options.padValue ?? 0);
  try {
    const [height, width, channels] = grid.shape;
    const pixels = grid.data() as Uint8Array;
    const png = new PNG({ width, height, colorType: channels === 1 ? 0 : 2, inputColorType: channels === 1 ? 0 : 2, inputHasAlpha: false });
    png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    return PNG.sync.write(png, { colorType: channels === 1 ? 0 : 2, inputColorType: channels === 1 ? 0 : 2, inputHasAlpha: false });
  } finally {
    grid.dispose();
  }
}

/** Writes toPNG(images, options) to path. */
export function saveImage(images: Tensor, path: string, options: ImageGridOptions = {}): void {
  fs.writeFileSync(path, toPNG(images, options));
}
