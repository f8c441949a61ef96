// openai/guided-diffusion's create_gaussian_diffusion (script_util.py) as options of our one
// GaussianDiffusion: the same flags, their defaults, samples in [-1, 1] as theirs.
import { binding } from '../binding';
import { GaussianDiffusion, GaussianDiffusionOptions } from '../diffusion';
import { Module } from '../module';
import { createModel } from './flags';
import { UNetModel } from './models';

/** script_util.py's diffusion flags (snake_case as in their README, or camelCase). */
export interface OpenAIDiffusionFlags {
  /** Base diffusion steps T; default 1000. */
  diffusion_steps?: number | string;
  /** The model outputs a variance too (6 channels): learned range. Default false. */
  learn_sigma?: boolean | string;
  /** Without learn_sigma: the posterior variance (fixed small) instead of beta_t. Default false. */
  sigma_small?: boolean | string;
  /** 'linear' (default) or 'cosine'. */
  noise_schedule?: string;
  /** Training loss RESCALED_KL (trainingLosses); no effect on sampling. */
  use_kl?: boolean | string;
  /** The model predicts x0 instead of eps. Default false. */
  predict_xstart?: boolean | string;
  /** The model sees float timesteps scaled to 0..1000. Default false. */
  rescale_timesteps?: boolean | string;
  /** Training loss RESCALED_MSE (trainingLosses); no effect on sampling. */
  rescale_learned_sigmas?: boolean | string;
  /** '250', 'ddim25', '10,15,20'; default '' (every step). */
  timestep_respacing?: string | number;
  /** Side of the images; default: the model's image_size attribute, else 64 (their default). */
  image_size?: number | string;
  [flag: string]: unknown;
}

const DEFAULTS = {
  diffusion_steps: 1000,
  learn_sigma: false,
  sigma_small: false,
  noise_schedule: 'linear',
  use_kl: false,
  predict_xstart: false,
  rescale_timesteps: false,
  rescale_learned_sigmas: false,
  timestep_respacing: '',
  image_size: 64,
};
type Flag = keyof typeof DEFAULTS;

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// Their argparse's str2bool, and plain booleans.
export function toBool(value: unknown, flag: string): boolean {
  if (typeof value === 'boolean') return value;
  const v = String(value).toLowerCase();
  if (['yes', 'true', 't', 'y', '1'].includes(v)) return true;
  if (['no', 'false', 'f', 'n', '0'].includes(v)) return false;
  throw new TypeError(`${flag}: expected a boolean (True/False) but received ${String(value)}`);
}

function toInt(value: unknown, flag: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${flag}: expected a positive integer but received ${String(value)}`);
  return n;
}

/**
 * openai's space_timesteps: the base timesteps a respacing keeps, ascending. '250' (evenly,
 * positions rounded half to even as Python's round), '10,15,20' (per equal section), 'ddim25'
 * (the integer stride that gives exactly 25).
 */
export function spaceTimesteps(timesteps: number, spec: string): number[] {
  if (typeof spec !== 'string') throw new TypeError(`timestepRespacing: expected a string but received ${typeof spec}`);
  return binding.spaceTimesteps(timesteps, spec);
}

/** The diffusion flags with their defaults filled in (keys snake_case, types resolved). */
export function diffusionFlags(flags: OpenAIDiffusionFlags = {}): typeof DEFAULTS {
  if (flags === null || typeof flags !== 'object') throw new TypeError('createGaussianDiffusion: expected a flags object such as { diffusion_steps: 1000 }');
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) raw[snake(key)] = value;
  const get = (flag: Flag): unknown => (flag in raw ? raw[flag] : DEFAULTS[flag]);
  const schedule = String(get('noise_schedule'));
  if (schedule !== 'linear' && schedule !== 'cosine') throw new TypeError(`noise_schedule must be 'linear' or 'cosine'; got '${schedule}'`);
  return {
    diffusion_steps: toInt(get('diffusion_steps'), 'diffusion_steps'),
    learn_sigma: toBool(get('learn_sigma'), 'learn_sigma'),
    sigma_small: toBool(get('sigma_small'), 'sigma_small'),
    noise_schedule: schedule,
    use_kl: toBool(get('use_kl'), 'use_kl'),
    predict_xstart: toBool(get('predict_xstart'), 'predict_xstart'),
    rescale_timesteps: toBool(get('rescale_timesteps'), 'rescale_timesteps'),
    rescale_learned_sigmas: toBool(get('rescale_learned_sigmas'), 'rescale_learned_sigmas'),
    timestep_respacing: String(get('timestep_respacing')),
    image_size: toInt(get('image_size'), 'image_size'),
  };
}

/**
 * A GaussianDiffusion that samples as openai's create_gaussian_diffusion + classifier_sample.py:
 * their ModelVarType and ModelMeanType from the flags, respaced steps with the model and the
 * guidance seeing the original timesteps, x0 clipped, guidance at x_t, samples in [-1, 1].
 * `options` overrides any resulting option (device, autocast, cudaGraph, ...).
 */
export function createGaussianDiffusion(model: Module, flags: OpenAIDiffusionFlags = {}, options: Partial<GaussianDiffusionOptions> = {}): GaussianDiffusion {
  const f = diffusionFlags(flags);
  const attrSize = model instanceof Module ? model.attribute('image_size') : undefined;
  const attrChannels = model instanceof Module ? model.attribute('in_channels') : undefined;
  const imageSize = 'image_size' in flags || 'imageSize' in flags || typeof attrSize !== 'number' ? f.image_size : attrSize;
  return new GaussianDiffusion(model, {
    imageSize,
    channels: typeof attrChannels === 'number' ? attrChannels : 3,
    timesteps: f.diffusion_steps,
    betaSchedule: f.noise_schedule as 'linear' | 'cosine',
    objective: f.predict_xstart ? 'pred_x0' : 'pred_noise',
    modelVarType: f.learn_sigma ? 'learnedRange' : f.sigma_small ? 'fixedSmall' : 'fixedLarge',
    // Their SpacedDiffusion keeps every step for '' : the identity map.
    ...(f.timestep_respacing !== '' ? { timestepRespacing: f.timestep_respacing } : {}),
    rescaleTimesteps: f.rescale_timesteps,
    epsFromX0: true,
    condFnInput: 'x',
    clipDenoised: true,
    // Their create_gaussian_diffusion: use_kl wins over rescale_learned_sigmas.
    lossType: f.use_kl ? 'rescaledKl' : f.rescale_learned_sigmas ? 'rescaledMse' : 'mse',
    autoNormalize: false,
    ...options,
  });
}

/**
 * Their create_model_and_diffusion(**flags): the UNetModel of createModel (fresh weights: load
 * a checkpoint next with model.loadStateDict) and the GaussianDiffusion of
 * createGaussianDiffusion, from one flags object (snake_case as their README, or camelCase;
 * parseFlags reads a MODEL_FLAGS string). Unknown flags are refused by name; flags of their
 * scripts that are neither the model's nor the diffusion's (classifier_*, batch_size, ...) are
 * passed over. `options` overrides options of the GaussianDiffusion (device, ...).
 */
export function createModelAndDiffusion(
  flags: OpenAIDiffusionFlags,
  options: Partial<GaussianDiffusionOptions> = {},
): { model: UNetModel; diffusion: GaussianDiffusion } {
  const model = createModel(flags, options.device !== undefined ? { device: options.device } : {});
  try {
    return { model, diffusion: createGaussianDiffusion(model, flags, options) };
  } catch (err) {
    model.dispose();
    throw err;
  }
}
