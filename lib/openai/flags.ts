// The flags of openai/guided-diffusion's scripts (script_util.py): parseFlags turns a
// MODEL_FLAGS / CLASSIFIER_FLAGS string of their README into an object, and createModel /
// createClassifier build the networks their create_model / create_classifier would, from
// the same flags and their scripts' defaults.
import { binding, Device } from '../binding';
import { checkOptionKeys } from '../option-keys';
import { camelCase } from './options';
import { EncoderUNetModel, EncoderUNetModelOptions, UNetModel, UNetModelOptions } from './models';

export type FlagValue = string | number | boolean;
export type Flags = Record<string, FlagValue>;

/** model_and_diffusion_defaults(): what their scripts' argparse gives a missing model flag. */
export const MODEL_FLAG_DEFAULTS: Readonly<Flags> = {
  image_size: 64,
  num_channels: 128,
  num_res_blocks: 2,
  num_heads: 4,
  num_heads_upsample: -1,
  num_head_channels: -1,
  attention_resolutions: '16,8',
  channel_mult: '',
  dropout: 0.0,
  class_cond: false,
  use_checkpoint: false,
  use_scale_shift_norm: true,
  resblock_updown: false,
  use_fp16: false,
  use_new_attention_order: false,
  learn_sigma: false,
};

/**
 * classifier_defaults(), and two flags of ours that their create_classifier fixes:
 * classifier_channel_mult ('' = by image size, as theirs) and classifier_num_head_channels
 * (64, theirs), so that small classifiers can be described by flags too.
 */
export const CLASSIFIER_FLAG_DEFAULTS: Readonly<Flags> = {
  image_size: 64,
  classifier_use_fp16: false,
  classifier_width: 128,
  classifier_depth: 2,
  classifier_attention_resolutions: '32,16,8',
  classifier_use_scale_shift_norm: true,
  classifier_resblock_updown: true,
  classifier_pool: 'attention',
  classifier_channel_mult: '',
  classifier_num_head_channels: 64,
};

/**
 * Flags of their scripts that are not the networks' (diffusion, sampling, training): a
 * flag object may carry them, createModel and createClassifier pass over them. Any other
 * name is refused, so that a misspelt flag does not silently fall back to a default.
 */
export const OTHER_SCRIPT_FLAGS: readonly string[] = [
  'diffusion_steps', 'noise_schedule', 'timestep_respacing', 'use_kl', 'predict_xstart',
  'rescale_timesteps', 'rescale_learned_sigmas', 'clip_denoised', 'num_samples', 'batch_size',
  'use_ddim', 'model_path', 'classifier_path', 'classifier_scale', 'data_dir', 'lr',
  'weight_decay', 'lr_anneal_steps', 'microbatch', 'ema_rate', 'log_interval', 'save_interval',
  'resume_checkpoint', 'fp16_scale_growth', 'noised', 'iterations', 'anneal_lr', 'eval_interval',
  'schedule_sampler', 'large_size', 'small_size', 'base_samples',
];

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Splits on whitespace, keeping quoted parts ("" is an empty value) together. */
function words(s: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(s); m; m = re.exec(s)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/**
 * Parses "--attention_resolutions 32,16,8 --class_cond True --image_size 64 ..." (also
 * --name=value) into { attention_resolutions: '32,16,8', class_cond: true, image_size: 64 }:
 * True/False (any case) become booleans, numbers numbers, the rest stays a string. Names
 * keep their spelling; a later flag overrides an earlier one, as with argparse.
 */
export function parseFlags(str: string): Flags {
  if (typeof str !== 'string') throw new TypeError(`parseFlags: expected a string of flags but received ${typeof str}`);
  const out: Flags = {};
  const ws = words(str);
  for (let i = 0; i < ws.length; i++) {
    const w = ws[i];
    if (!w.startsWith('--') || w.length === 2) throw new Error(`parseFlags: expected a flag such as --image_size but found '${w}'`);
    let name = w.slice(2);
    let raw: string;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      raw = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      if (i + 1 >= ws.length || (ws[i + 1].startsWith('--') && !NUMBER.test(ws[i + 1]))) {
        throw new Error(`parseFlags: flag --${name} has no value`);
      }
      raw = ws[++i];
    }
    out[name] = /^(true|false)$/i.test(raw) ? raw.toLowerCase() === 'true' : NUMBER.test(raw) ? Number(raw) : raw;
  }
  return out;
}

/** Flags with snake_case names (camelCase accepted), each checked to be known. */
function snakeFlags(where: string, flags: unknown): Flags {
  if (flags === null || typeof flags !== 'object' || Array.isArray(flags)) {
    throw new TypeError(`${where}: expected a flags object (see parseFlags) but received ${flags === null ? 'null' : typeof flags}`);
  }
  const known = new Set([...Object.keys(MODEL_FLAG_DEFAULTS), ...Object.keys(CLASSIFIER_FLAG_DEFAULTS), ...OTHER_SCRIPT_FLAGS]);
  const byCamel = new Map([...known].map((k) => [camelCase(k), k]));
  const out: Flags = {};
  for (const [key, value] of Object.entries(flags as Record<string, unknown>)) {
    if (value === undefined) continue;
    const name = known.has(key) ? key : byCamel.get(key);
    if (!name) throw new TypeError(`${where}: unknown flag '${key}'`);
    if (name in out) throw new TypeError(`${where}: flag ${name} is given twice`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new TypeError(`${where}: expected a string, number or boolean for ${key} but received ${value === null ? 'null' : typeof value}`);
    }
    out[name] = value;
  }
  return out;
}

function flag(where: string, flags: Flags, defaults: Readonly<Flags>, name: string): FlagValue {
  return flags[name] ?? defaults[name];
}

// A flag's value as the user wrote it: numbers as numbers (JSON would print Infinity as null),
// strings quoted and cut short (a flag may be megabytes long).
function shown(v: FlagValue): string {
  if (typeof v !== 'string') return String(v);
  return v.length <= 60 ? `'${v}'` : `'${v.slice(0, 40)}...' (${v.length} characters)`;
}

function intFlag(where: string, flags: Flags, defaults: Readonly<Flags>, name: string): number {
  const v = flag(where, flags, defaults, name);
  const n = typeof v === 'string' && NUMBER.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError(`${where}: expected an integer for ${name} but received ${shown(v)}`);
  return n;
}

/** Their str2bool: yes/true/t/y/1 and no/false/f/n/0, any case; booleans as they are. */
function boolFlag(where: string, flags: Flags, defaults: Readonly<Flags>, name: string): boolean {
  const v = flag(where, flags, defaults, name);
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['yes', 'true', 't', 'y', '1'].includes(s)) return true;
  if (['no', 'false', 'f', 'n', '0'].includes(s)) return false;
  throw new TypeError(`${where}: expected a boolean (True/False) for ${name} but received ${shown(v)}`);
}

/** "1,2,2" (or a single number) -> numbers. */
function listFlag(where: string, name: string, v: FlagValue): number[] {
  const parts = String(v).split(',').map((p) => p.trim());
  if (parts.some((p) => !NUMBER.test(p))) throw new TypeError(`${where}: expected comma-separated numbers for ${name} but received ${shown(v)}`);
  return parts.map(Number);
}

/** Their channel_mult for an image size (create_model / create_classifier). */
function channelMult(where: string, name: string, v: FlagValue, imageSize: number): number[] {
  if (v !== '') return listFlag(where, name, v);
  const bySize: Record<number, number[]> = {
    512: [0.5, 1, 1, 2, 2, 4, 4],
    256: [1, 1, 2, 2, 4, 4],
    128: [1, 1, 2, 3, 4],
    64: [1, 2, 3, 4],
  };
  const mult = bySize[imageSize];
  if (!mult) throw new RangeError(`${where}: unsupported image size: ${imageSize} (64, 128, 256 or 512, or give ${name})`);
  return mult;
}

/** "32,16,8" at image_size 64 -> [2, 4, 8]: image_size // res, as their scripts do. */
function downsampleRates(where: string, name: string, v: FlagValue, imageSize: number): number[] {
  return listFlag(where, name, v).map((res) => {
    if (!Number.isInteger(res) || res <= 0) throw new RangeError(`${where}: ${name} must hold positive integer resolutions, got ${res}`);
    return Math.floor(imageSize / res);
  });
}

/** The UNetModel options that their create_model derives from these flags. */
export function modelOptions(flags: Flags | Record<string, unknown>): Required<Omit<UNetModelOptions, 'convResample' | 'dims'>> {
  const where = 'createModel';
  const f = snakeFlags(where, flags);
  const D = MODEL_FLAG_DEFAULTS;
  const imageSize = intFlag(where, f, D, 'image_size');
  return {
    imageSize,
    inChannels: 3,
    modelChannels: intFlag(where, f, D, 'num_channels'),
    outChannels: boolFlag(where, f, D, 'learn_sigma') ? 6 : 3,
    numResBlocks: intFlag(where, f, D, 'num_res_blocks'),
    attentionResolutions: downsampleRates(where, 'attention_resolutions', flag(where, f, D, 'attention_resolutions'), imageSize),
    dropout: Number(flag(where, f, D, 'dropout')),
    channelMult: channelMult(where, 'channel_mult', flag(where, f, D, 'channel_mult'), imageSize),
    numClasses: boolFlag(where, f, D, 'class_cond') ? 1000 : null,
    useCheckpoint: boolFlag(where, f, D, 'use_checkpoint'),
    useFp16: boolFlag(where, f, D, 'use_fp16'),
    numHeads: intFlag(where, f, D, 'num_heads'),
    numHeadChannels: intFlag(where, f, D, 'num_head_channels'),
    numHeadsUpsample: intFlag(where, f, D, 'num_heads_upsample'),
    useScaleShiftNorm: boolFlag(where, f, D, 'use_scale_shift_norm'),
    resblockUpdown: boolFlag(where, f, D, 'resblock_updown'),
    useNewAttentionOrder: boolFlag(where, f, D, 'use_new_attention_order'),
  };
}

/** The EncoderUNetModel options that their create_classifier derives from these flags. */
export function classifierOptions(flags: Flags | Record<string, unknown>): Required<Pick<EncoderUNetModelOptions,
  'imageSize' | 'inChannels' | 'modelChannels' | 'outChannels' | 'numResBlocks' | 'attentionResolutions' | 'channelMult' |
  'useFp16' | 'numHeadChannels' | 'useScaleShiftNorm' | 'resblockUpdown' | 'pool'>> {
  const where = 'createClassifier';
  const f = snakeFlags(where, flags);
  const D = CLASSIFIER_FLAG_DEFAULTS;
  const imageSize = intFlag(where, f, D, 'image_size');
  const pool = String(flag(where, f, D, 'classifier_pool'));
  if (!['adaptive', 'attention', 'spatial', 'spatial_v2'].includes(pool)) {
    throw new RangeError(`${where}: expected one of 'adaptive', 'attention', 'spatial', 'spatial_v2' for classifier_pool but received '${pool}'`);
  }
  return {
    imageSize,
    inChannels: 3,
    modelChannels: intFlag(where, f, D, 'classifier_width'),
    outChannels: 1000,
    numResBlocks: intFlag(where, f, D, 'classifier_depth'),
    attentionResolutions: downsampleRates(where, 'classifier_attention_resolutions', flag(where, f, D, 'classifier_attention_resolutions'), imageSize),
    channelMult: channelMult(where, 'classifier_channel_mult', flag(where, f, D, 'classifier_channel_mult'), imageSize),
    useFp16: boolFlag(where, f, D, 'classifier_use_fp16'),
    numHeadChannels: intFlag(where, f, D, 'classifier_num_head_channels'),
    useScaleShiftNorm: boolFlag(where, f, D, 'classifier_use_scale_shift_norm'),
    resblockUpdown: boolFlag(where, f, D, 'classifier_resblock_updown'),
    pool: pool as EncoderUNetModelOptions['pool'] & string,
  };
}

export interface CreateNetOptions {
  /**
   * Where the network will run: default CUDA when this build has it, else the CPU. On the CPU
   * use_fp16 / classifier_use_fp16 build float32 convolutions (see fp16For).
   */
  device?: Device;
}

let fp16NoteShown = false;

/**
 * use_fp16 as their code applies it (float16 convolutions) where it runs on CUDA. On the CPU
 * LibTorch's float16 convolutions are slow enough that one forward of the 64x64 net took
 * minutes; there the net is built in float32 (their use_fp16 False, the numbers their fp32
 * master weights give), said once per process. Autocast 'bfloat16' is the CPU's fast path.
 */
function fp16For(where: string, useFp16: boolean, options: CreateNetOptions): boolean {
  checkOptionKeys<CreateNetOptions>(where, options, { device: true });
  const device = options.device ?? (binding.cudaIsAvailable() ? 'cuda' : 'cpu');
  if (!useFp16 || device !== 'cpu') return useFp16;
  if (!fp16NoteShown) {
    fp16NoteShown = true;
    process.emitWarning(`${where}: use_fp16 on the CPU builds float32 convolutions (float16 ones are slow on CPUs); ` +
      "give the diffusion autocast: 'bfloat16' for reduced precision, or device: 'cuda' for their float16", { code: 'GD_FP16_ON_CPU' });
  }
  return false;
}

/** Their create_model(**flags): the diffusion model, fresh weights (load a checkpoint next). */
export function createModel(flags: Flags | Record<string, unknown>, options: CreateNetOptions = {}): UNetModel {
  const o = modelOptions(flags);
  return new UNetModel({ ...o, useFp16: fp16For('createModel', o.useFp16, options) });
}

/** Their create_classifier(**flags): the noise-aware classifier, fresh weights. */
export function createClassifier(flags: Flags | Record<string, unknown>, options: CreateNetOptions = {}): EncoderUNetModel {
  const o = classifierOptions(flags);
  // Their create_classifier has no use_checkpoint; ours takes the model flag, so that
  // train-classifier can train in less memory (it changes nothing else).
  const useCheckpoint = boolFlag('createClassifier', snakeFlags('createClassifier', flags), { use_checkpoint: false }, 'use_checkpoint');
  return new EncoderUNetModel({ ...o, useCheckpoint, useFp16: fp16For('createClassifier', o.useFp16, options) });
}
