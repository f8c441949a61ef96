// PNG output: a batch of images in [0, 1] as one grid, like torchvision.utils.save_image.
import * as fs from 'fs';
import { PNG } from 'pngjs';
import { binding } from './binding';
import { checkOptionKeys } from './option-keys';
import { Tensor } from './tensor';
import * as torch from './torch';

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

export interface LoadImageOptions {
  /**
   * 1: grayscale (luma 0.299 R + 0.587 G + 0.114 B, as PIL's convert('L')); 3: RGB (a grayscale
   * PNG's gray in all three). Default: 1 for a grayscale PNG, else 3. Alpha is dropped.
   */
  channels?: 1 | 3;
  /**
   * Resize to size x size (or [height, width]) with LibTorch's antialiased bilinear interpolation
   * (F.interpolate(antialias=True), what torchvision's Resize does). Default: the PNG's size.
   */
  size?: number | [number, number];
}

/** A PNG file as a float32 Tensor [1, C, H, W] in [0, 1] (what sample()'s init and mask take). */
export function loadImage(file: string, options: LoadImageOptions = {}): Tensor {
  checkOptionKeys<LoadImageOptions>('loadImage', options, { channels: true, size: true });
  const { channels, size } = options;
  if (channels !== undefined && channels !== 1 && channels !== 3) throw new TypeError(`loadImage: channels must be 1 or 3; got ${String(channels)}`);
  let target: [number, number] | undefined;
  if (size !== undefined) {
    target = typeof size === 'number' ? [size, size] : size;
    if (!Array.isArray(target) || target.length !== 2 || !target.every((n) => Number.isInteger(n) && n >= 1 && n <= 16384)) {
      throw new TypeError(`loadImage: size must be an integer or [height, width] in 1..16384; got ${JSON.stringify(size)}`);
    }
  }
  const bytes = fs.readFileSync(file);
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x89504e47) throw new TypeError(`loadImage: ${file} is not a PNG file (only PNG images are read)`);
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch (err) {
    throw new TypeError(`loadImage: cannot decode ${file}: ${(err as Error).message}`);
  }
  const { width, height, data } = png;
  const gray = !(png as unknown as { color: boolean }).color;
  const c = channels ?? (gray ? 1 : 3);
  // pngjs decodes every PNG to 8-bit RGBA.
  const out = new Float32Array(c * height * width);
  const plane = height * width;
  for (let i = 0; i < plane; i++) {
    const r = data[4 * i], g = data[4 * i + 1], b = data[4 * i + 2];
    if (c === 1) {
      out[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    } else {
      out[i] = r / 255;
      out[plane + i] = g / 255;
      out[2 * plane + i] = b / 255;
    }
  }
  const image = torch.tensor(out, { shape: [1, c, height, width] });
  if (!target || (target[0] === height && target[1] === width)) return image;
  try {
    return torch.nn.functional.interpolate(image, { size: target, mode: 'bilinear', antialias: true }).clamp_(0, 1);
  } finally {
    image.dispose();
  }
}
