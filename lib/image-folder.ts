// A folder of images as openai/guided-diffusion's image_datasets.py reads it for image_train.py:
// every .jpg/.jpeg/.png/.gif below the folder (each folder's entries sorted), the class of a file
// the part of its name before the first '_' (classes numbered in sorted order), each image
// resized so its shorter side is image_size and center-cropped to image_size x image_size, in
// [-1, 1], or (randomCrop, their random_crop_arr for classifier_train.py) resized so its shorter
// side is a random size in [image_size, ceil(image_size / 0.8)] and cropped at a random place.
// Decoding and resampling are sharp's (libvips): PIL's BOX halving and BICUBIC are not
// reproduced bit for bit, but the geometry is theirs (the same intermediate size and crop).
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { checkOptionKeys } from './option-keys';
import { seededRandom } from './seeded-random';
import { Tensor } from './tensor';
import * as torch from './torch';

export interface ImageFolderOptions {
  /** Side of the square images returned (their image_size). */
  imageSize: number;
  /** Labels from the file names (their class_cond); default false. */
  classCond?: boolean;
  /** 3 (default): RGB, as their convert("RGB"); 1: grayscale (sharp's luminance), for 1-channel models. */
  channels?: 1 | 3;
  /** What a file that cannot be decoded does: 'error' (default) rejects naming the file; 'skip' leaves it out and lists it in `skipped`. */
  onBadFile?: 'error' | 'skip';
  /**
   * Their random_crop (classifier_train.py's training data): each image's shorter side resized to
   * a size drawn uniformly from [imageSize, ceil(imageSize / 0.8)], then an imageSize square cut at
   * a uniformly drawn place. One crop per image per load (theirs draws anew each time the loader
   * reads an image). Default false: their center crop.
   */
  randomCrop?: boolean;
  /** Seed of randomCrop's draws; default 0. */
  seed?: number;
}

/** Where an image was cut: resized to width x height, then the square at (left, top). */
export interface CropBox {
  width: number;
  height: number;
  left: number;
  top: number;
}

export interface ImageFolder {
  /** float32 [N, C, imageSize, imageSize] in [-1, 1]. */
  images: Tensor;
  /** int64 [N] with classCond. */
  labels?: Tensor;
  /** Class names by label, with classCond. */
  classes?: string[];
  /** The files read, in the order of `images`. */
  files: string[];
  /** Files left out with onBadFile 'skip', and why. */
  skipped: { file: string; reason: string }[];
  /** The crop of each image, in the order of `images`. */
  crops: CropBox[];
}

const EXTENSIONS = new Set(['jpg', 'jpeg', 'png', 'gif']);

/** Their _list_image_files_recursively: sorted entries, recursing into folders. */
export function listImageFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir).sort()) {
    const full = path.join(dir, entry);
    const dot = entry.lastIndexOf('.');
    if (dot >= 0 && EXTENSIONS.has(entry.slice(dot + 1).toLowerCase()) && fs.statSync(full).isFile()) out.push(full);
    else if (fs.statSync(full).isDirectory()) out.push(...listImageFiles(full));
  }
  return out;
}

/** The size their center_crop_arr resizes an image of width x height to before its crop. */
export function centerCropResize(width: number, height: number, imageSize: number): [number, number] {
  return shorterSideResize(width, height, imageSize);
}

// Their BOX halvings while the shorter side is at least twice `side`, then the scale to `side`.
function shorterSideResize(width: number, height: number, side: number): [number, number] {
  while (Math.min(width, height) >= 2 * side) {
    width = Math.floor(width / 2);
    height = Math.floor(height / 2);
  }
  const scale = side / Math.min(width, height);
  // Python's round() rounds halves to even.
  const round = (v: number): number => {
    const f = Math.floor(v);
    const d = v - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  return [round(width * scale), round(height * scale)];
}

/**
 * Their random_crop_arr's geometry for an image of width x height: the shorter side's size drawn
 * by randrange(ceil(S / 1.0), ceil(S / 0.8) + 1), the resize to it, then the crop's top and left
 * by randrange(h - S + 1) and randrange(w - S + 1). `random` gives uniform numbers in [0, 1).
 */
export function randomCropBox(width: number, height: number, imageSize: number, random: () => number): CropBox {
  const randrange = (n: number): number => Math.floor(random() * n);
  const lo = Math.ceil(imageSize / 1.0), hi = Math.ceil(imageSize / 0.8);
  const side = lo + randrange(hi - lo + 1);
  const [w, h] = shorterSideResize(width, height, side);
  const top = randrange(h - imageSize + 1);
  const left = randrange(w - imageSize + 1);
  return { width: w, height: h, left, top };
}

function centerCropBox(width: number, height: number, imageSize: number): CropBox {
  const [w, h] = centerCropResize(width, height, imageSize);
  return { width: w, height: h, left: Math.floor((w - imageSize) / 2), top: Math.floor((h - imageSize) / 2) };
}

async function readOne(file: string, imageSize: number, channels: 1 | 3, random: (() => number) | undefined): Promise<{ data: Buffer; box: CropBox }> {
  const meta = await sharp(file).metadata();
  if (!meta.width || !meta.height) throw new Error('no image size in the file');
  const box = random ? randomCropBox(meta.width, meta.height, imageSize, random) : centerCropBox(meta.width, meta.height, imageSize);
  const { width: w, height: h } = box;
  let img = sharp(file, { failOn: 'error' }).removeAlpha();
  if (w !== meta.width || h !== meta.height) img = img.resize(w, h, { fit: 'fill', kernel: 'cubic' });
  img = img.extract({ left: box.left, top: box.top, width: imageSize, height: imageSize });
  img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels || info.width !== imageSize || info.height !== imageSize) {
    throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, not ${imageSize}x${imageSize}x${channels}`);
  }
  return { data, box };
}

/** Reads a folder of images as their load_data does (without random flips: runLoop's randomFlip flips). */
export async function loadImageFolder(dir: string, options: ImageFolderOptions): Promise<ImageFolder> {
  if (options === null || typeof options !== 'object') throw new TypeError('loadImageFolder: expected options such as { imageSize: 64 }');
  checkOptionKeys<ImageFolderOptions>('loadImageFolder', options, { imageSize: true, classCond: true, channels: true, onBadFile: true, randomCrop: true, seed: true });
  const { imageSize, classCond = false, channels = 3, onBadFile = 'error', randomCrop = false, seed = 0 } = options;
  if (typeof randomCrop !== 'boolean') throw new TypeError(`loadImageFolder: randomCrop must be a boolean; got ${String(randomCrop)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`loadImageFolder: seed must be an integer in 0..2^32-1; got ${String(seed)}`);
  if (!Number.isInteger(imageSize) || imageSize < 1 || imageSize > 4096) throw new RangeError(`loadImageFolder: imageSize must be an integer in 1..4096; got ${String(imageSize)}`);
  if (channels !== 1 && channels !== 3) throw new TypeError(`loadImageFolder: channels must be 1 or 3; got ${String(channels)}`);
  if (onBadFile !== 'error' && onBadFile !== 'skip') throw new TypeError(`loadImageFolder: onBadFile must be 'error' or 'skip'; got ${String(onBadFile)}`);
  if (typeof classCond !== 'boolean') throw new TypeError(`loadImageFolder: classCond must be a boolean; got ${String(classCond)}`);
  if (typeof dir !== 'string' || !fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new TypeError(`loadImageFolder: ${String(dir)} is not a folder`);
  const listed = listImageFiles(dir);
  if (listed.length === 0) throw new Error(`loadImageFolder: no .jpg, .jpeg, .png or .gif files under ${dir}`);

  const pixels: Buffer[] = [];
  const crops: CropBox[] = [];
  const files: string[] = [];
  // Their Python random's sequence is not reproduced; the draws' distribution is.
  const random = randomCrop ? seededRandom(seed) : undefined;
  const skipped: { file: string; reason: string }[] = [];
  const CONCURRENT = 8;  // sharp decodes on libuv's pool; a few at a time keeps it busy
  for (let i = 0; i < listed.length; i += CONCURRENT) {
    const chunk = listed.slice(i, i + CONCURRENT);
    // randomCropBox takes three draws; each image's are taken here, in file order.
    const draws = chunk.map(() => (random ? [random(), random(), random()] : []));
    const results = await Promise.allSettled(chunk.map((f, k) => readOne(f, imageSize, channels, random ? () => draws[k].shift()! : undefined)));
    results.forEach((r, k) => {
      if (r.status === 'fulfilled') {
        pixels.push(r.value.data);
        crops.push(r.value.box);
        files.push(chunk[k]);
        return;
      }
      const reason = (r.reason as Error)?.message ?? String(r.reason);
      if (onBadFile === 'error') throw new Error(`loadImageFolder: cannot read ${chunk[k]}: ${reason}`);
      skipped.push({ file: chunk[k], reason });
    });
  }
  if (files.length === 0) throw new Error(`loadImageFolder: none of the ${listed.length} image files under ${dir} could be read`);

  const hwc = torch.tensor(new Uint8Array(Buffer.concat(pixels)), { shape: [files.length, imageSize, imageSize, channels] });
  const images = torch.tidy(() => hwc.permute(0, 3, 1, 2).to('float32').div(127.5).sub(1).contiguous());
  hwc.dispose();
  const result: ImageFolder = { images, files, skipped, crops };
  if (classCond) {
    const names = files.map((f) => path.basename(f).split('_')[0]);
    const classes = [...new Set(names)].sort();
    const index = new Map(classes.map((c, i) => [c, i]));
    result.classes = classes;
    result.labels = torch.tensor(names.map((n) => BigInt(index.get(n)!)), { dtype: 'int64' });
  }
  return result;
}
