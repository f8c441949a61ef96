// The shipped Fashion-MNIST model (models/fashion-mnist, trained by scripts/train-default.ts).
import * as fs from 'fs';
import * as path from 'path';
import type { BetaSchedule, Objective } from './diffusion';
import { GaussianDiffusion } from './diffusion';
import { jit, Module } from './module';
import { checkOptionKeys, KeysOf } from './option-keys';
import type { SamplerChoice } from './samplers';

export const DEFAULT_MODEL = 'fashion-mnist';

export interface DefaultModelMeta {
  imageSize: number;
  channels: number;
  timesteps: number;
  betaSchedule: BetaSchedule;
  objective: Objective;
  samplingTimesteps: number;
  /**
   * The sampler sample() runs by default (docs/EVAL.md "Fast samplers" chose it); absent in a
   * model.json written before it: ancestral or DDIM by samplingTimesteps.
   */
  sampler?: SamplerChoice;
  /** A classifier-guided model: the guidance scale the evaluation recommends. */
  classifierScale?: number;
  /**
   * A classifier-free guided model (models/fashion-mnist-cfg; its Unet takes labels y): the
   * cfgScale the evaluation recommends, and the label of "no class".
   */
  cfgScale?: number;
  nullClass?: number;
  /** Guided DDIM clamps x0 after condition_score too (GaussianDiffusion's clipAfterGuidance). */
  clipAfterGuidance?: boolean;
  /** DDIM eta the evaluation recommends (0 deterministic, 1 as noisy as ancestral steps). */
  ddimSamplingEta?: number;
  classNames: string[];
}

export interface Pretrained {
  diffusion: GaussianDiffusion;
  classifier: Module;
  classNames: string[];
  meta: DefaultModelMeta;
}

/**
 * A classifier-free guided model ('fashion-mnist-cfg'): no classifier; sample with
 * { modelKwargs: { y }, cfgScale: meta.cfgScale, nullClass: meta.nullClass }.
 */
export interface PretrainedClassifierFree {
  diffusion: GaussianDiffusion;
  classifier?: undefined;
  classNames: string[];
  meta: DefaultModelMeta & { cfgScale: number; nullClass: number };
}

const MODELS_DIR = path.resolve(__dirname, '..', '..', 'models');

/** The shipped models' names: the folders of models/ that hold a model.json. */
export function shippedModels(): string[] {
  return fs.readdirSync(MODELS_DIR).filter((n) => fs.existsSync(path.join(MODELS_DIR, n, 'model.json'))).sort();
}

/**
 * Where a shipped model's files are. A name is a name: a path ('/etc', '../x') is refused, as is a
 * name the package does not ship (a model directory of your own is pretrained()'s dir option).
 */
export function pretrainedDir(name: string = DEFAULT_MODEL): string {
  if (typeof name !== 'string') throw new TypeError(`pretrained: expected a model name such as '${DEFAULT_MODEL}' but received ${typeof name}`);
  const shipped = shippedModels();
  if (shipped.includes(name)) return path.join(MODELS_DIR, name);
  const list = shipped.map((n) => `'${n}'`).join(', ');
  const shown = name.length <= 80 ? name : `${name.slice(0, 60)}...`;
  if (/[/\\]/.test(name) || name.startsWith('.') || path.isAbsolute(name)) {
    throw new Error(`pretrained: '${shown}' is a path, not a model name: the package ships ${list}; load a model directory of your own with pretrained(undefined, { dir: '${shown}' })`);
  }
  throw new Error(`pretrained: no model '${shown}': the package ships ${list} (retrained by npm run train:default)`);
}

export interface PretrainedOptions {
  /** DDIM over this many steps (ancestral at the schedule's 1,000) instead of the model's default sampler. */
  samplingTimesteps?: number;
  ddimSamplingEta?: number;
  /** Sample ancestrally over respaced steps ('250', 'ddim25', ...), as openai's timestep_respacing, instead of the model's default sampler. */
  timestepRespacing?: string;
  /** The Unet's forward under autocast in this dtype (GaussianDiffusionOptions.autocast). */
  autocast?: 'float16' | 'bfloat16';
  /**
   * A model directory of your own (model.json, unet.pt, classifier.pt, as npm run train:default
   * writes them) instead of a shipped model; the name is then not used.
   */
  dir?: string;
}

const PRETRAINED_KEYS: KeysOf<PretrainedOptions> = { samplingTimesteps: true, ddimSamplingEta: true, timestepRespacing: true, autocast: true, dir: true };

/**
 * The shipped guided model: GaussianDiffusion.pretrained('fashion-mnist') gives the diffusion
 * (sampling with the model's default sampler, meta.sampler, unless samplingTimesteps or
 * timestepRespacing asks for ancestral / DDIM steps), the noise-aware classifier and the class
 * names.
 */
export function loadPretrained(name: 'fashion-mnist-cfg', options?: PretrainedOptions): PretrainedClassifierFree;
export function loadPretrained(name?: string, options?: PretrainedOptions): Pretrained;
export function loadPretrained(name: string = DEFAULT_MODEL, options: PretrainedOptions = {}): Pretrained | PretrainedClassifierFree {
  if (options === null || typeof options !== 'object') throw new TypeError('pretrained: expected an options object such as { timestepRespacing: \'100\' }');
  checkOptionKeys<PretrainedOptions>('pretrained', options, PRETRAINED_KEYS);
  if (options.dir !== undefined && typeof options.dir !== 'string') throw new TypeError(`pretrained: expected a directory path for dir but received ${typeof options.dir}`);
  const dir = options.dir !== undefined ? path.resolve(options.dir) : pretrainedDir(name);
  const metaPath = path.join(dir, 'model.json');
  if (!fs.existsSync(metaPath)) throw new Error(`pretrained: ${dir} holds no model.json (a model directory holds model.json, unet.pt and classifier.pt)`);
  const meta: DefaultModelMeta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
  const model = jit.load(path.join(dir, 'unet.pt'));
  // A classifier-free guided model has no classifier.
  const classifier = meta.cfgScale === undefined ? jit.load(path.join(dir, 'classifier.pt')).eval() : undefined;
  const diffusion = new GaussianDiffusion(model, {
    imageSize: meta.imageSize,
    channels: meta.channels,
    timesteps: meta.timesteps,
    betaSchedule: meta.betaSchedule,
    objective: meta.objective,
    // Respaced: the model's own step count would exceed the respaced schedule's.
    samplingTimesteps: options.samplingTimesteps ?? (options.timestepRespacing === undefined ? meta.samplingTimesteps : undefined),
    ...(options.timestepRespacing !== undefined ? { timestepRespacing: options.timestepRespacing } : {}),
    clipAfterGuidance: meta.clipAfterGuidance ?? false,
    ddimSamplingEta: options.ddimSamplingEta ?? meta.ddimSamplingEta ?? 0,
    ...(options.autocast !== undefined ? { autocast: options.autocast } : {}),
    // Asked for steps of the schedule: those, by ancestral or DDIM steps as before.
    ...(meta.sampler !== undefined && options.samplingTimesteps === undefined && options.timestepRespacing === undefined ? { defaultSampler: meta.sampler } : {}),
  });
  if (classifier === undefined) return { diffusion, classNames: meta.classNames, meta: meta as PretrainedClassifierFree['meta'] };
  return { diffusion, classifier, classNames: meta.classNames, meta };
}

GaussianDiffusion.pretrained = loadPretrained;
