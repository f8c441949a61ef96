// The shipped Fashion-MNIST model (models/fashion-mnist, trained by scripts/train-default.ts).
import * as fs from 'fs';
import * as path from 'path';
import type { BetaSchedule, Objective } from './diffusion';
import { GaussianDiffusion } from './diffusion';
import { jit, Module } from './module';

export const DEFAULT_MODEL = 'fashion-mnist';

export interface DefaultModelMeta {
  imageSize: number;
  channels: number;
  timesteps: number;
  betaSchedule: BetaSchedule;
  objective: Objective;
  samplingTimesteps: number;
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
  samplingTimesteps?: number;
  ddimSamplingEta?: number;
  /** Sample over respaced steps ('250', 'ddim25', ...), as openai's timestep_respacing. */
  timestepRespacing?: string;
  /** The Unet's forward under autocast in this dtype (GaussianDiffusionOptions.autocast). */
  autocast?: 'float16' | 'bfloat16';
}

/**
 * The shipped guided model: GaussianDiffusion.pretrained('fashion-mnist') gives the diffusion
 * (DDIM with the recommended steps unless samplingTimesteps is given), the noise-aware
 * classifier and the class names.
 */
export function loadPretrained(name: string = DEFAULT_MODEL, options: PretrainedOptions = {}): Pretrained {
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
  });
  return { diffusion, classifier, classNames: meta.classNames, meta };
}

GaussianDiffusion.pretrained = loadPretrained;
