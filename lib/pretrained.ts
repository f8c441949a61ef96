// The shipped Fashion-MNIST model (models/fashion-mnist, trained by scripts/train-default.ts).
import * as fs from 'fs';
import * as path from 'path';
import type { BetaSchedule, Objective } from './diffusion';
import { GaussianDiffusion } from './diffusion';
import { jit, Module } from './module';
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
  /** The guidance scale the evaluation recommends. */
  classifierScale: number;
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

/** Where a shipped model's files are. */
export function pretrainedDir(name: string = DEFAULT_MODEL): string {
  return path.resolve(__dirname, '..', '..', 'models', name);
}

export interface PretrainedOptions {
  /** DDIM over this many steps (ancestral at the schedule's 1,000) instead of the model's default sampler. */
  samplingTimesteps?: number;
  ddimSamplingEta?: number;
  /** Sample ancestrally over respaced steps ('250', 'ddim25', ...), as openai's timestep_respacing, instead of the model's default sampler. */
  timestepRespacing?: string;
  /** The Unet's forward under autocast in this dtype (GaussianDiffusionOptions.autocast). */
  autocast?: 'float16' | 'bfloat16';
}

const PRETRAINED_KEYS = new Set(['samplingTimesteps', 'ddimSamplingEta', 'timestepRespacing', 'autocast']);

/**
 * The shipped guided model: GaussianDiffusion.pretrained('fashion-mnist') gives the diffusion
 * (sampling with the model's default sampler, meta.sampler, unless samplingTimesteps or
 * timestepRespacing asks for ancestral / DDIM steps), the noise-aware classifier and the class
 * names.
 */
export function loadPretrained(name: string = DEFAULT_MODEL, options: PretrainedOptions = {}): Pretrained {
  if (options === null || typeof options !== 'object') throw new TypeError('pretrained: expected an options object such as { timestepRespacing: \'100\' }');
  const unknown = Object.keys(options).filter((k) => !PRETRAINED_KEYS.has(k));
  if (unknown.length) throw new TypeError(`pretrained: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}`);
  const dir = pretrainedDir(name);
  const metaPath = path.join(dir, 'model.json');
  if (!fs.existsSync(metaPath)) {
    throw new Error(`pretrained: no model '${name}' (expected ${metaPath}); the package ships 'fashion-mnist', retrained by npm run train:default`);
  }
  const meta: DefaultModelMeta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
  const model = jit.load(path.join(dir, 'unet.pt'));
  const classifier = jit.load(path.join(dir, 'classifier.pt')).eval();
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
  return { diffusion, classifier, classNames: meta.classNames, meta };
}

GaussianDiffusion.pretrained = loadPretrained;
