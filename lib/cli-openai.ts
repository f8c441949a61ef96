// guided-diffusion sample --openai "$MODEL_FLAGS ...": openai/guided-diffusion's checkpoints
// sampled as their classifier_sample.py (image_sample.py without a classifier) does, into a
// PNG grid. The flag strings of their README are taken as they are, sample flags included.
import { classifierCondFn, classifierGuidance } from './guidance';
import { saveImage } from './image';
import { Module } from './module';
import { Flags, FlagValue, parseFlags, MODEL_FLAG_DEFAULTS, CLASSIFIER_FLAG_DEFAULTS, createClassifier, createModel } from './openai/flags';
import { createGaussianDiffusion, toBool } from './openai/diffusion';
import { checkFastSteps, CliError, existing, flagName, MAX_IMAGES, progressReporter, SamplerFlags, samplerOptions, stepsText, writableOut } from './cli-util';
import { isFastSampler, SAMPLERS } from './samplers';
import { Tensor } from './tensor';
import * as torch from './torch';

/** Their NUM_CLASSES (ImageNet): the classes a class-conditional model and a classifier know. */
const NUM_CLASSES = 1000;

const DIFFUSION_FLAGS = ['diffusion_steps', 'noise_schedule', 'timestep_respacing', 'use_kl', 'predict_xstart', 'rescale_timesteps', 'rescale_learned_sigmas'];
// classifier_sample.py's own flags; each but clip_denoised is also an option of ours.
const SAMPLE_FLAGS = ['clip_denoised', 'num_samples', 'batch_size', 'use_ddim', 'model_path', 'classifier_path', 'classifier_scale'];
const KNOWN = new Set([...Object.keys(MODEL_FLAG_DEFAULTS), ...Object.keys(CLASSIFIER_FLAG_DEFAULTS), ...DIFFUSION_FLAGS, ...SAMPLE_FLAGS]);

export interface OpenAISampleOptions extends SamplerFlags {
  openai: string;
  classifierFlags?: string;
  modelPath?: string;
  classifierPath?: string;
  classifierScale?: number;
  timestepRespacing?: string;
  useDdim?: boolean;
  class?: string;
  n: number;
  batchSize: number;
  seed?: number;
  out: string;
  nrow?: number;
  jsCondFn?: boolean;
  threads?: number;
}

/** Options of the sample command that have no meaning for openai's models. */
export const NOT_WITH_OPENAI = ['model', 'classifier', 'imageSize', 'timesteps', 'channels', 'betaSchedule', 'objective', 'scale', 'nprocPerNode', 'chunkSize', 'init', 'strength', 'mask', 'jumpLength', 'jumpCount'];

/** --openai and --classifier-flags as one flags object (names with _ or -), each name checked. */
function scriptFlags(openai: string, classifierFlags: string | undefined): Flags {
  const out: Flags = {};
  for (const [option, str] of [['--openai', openai], ['--classifier-flags', classifierFlags]] as const) {
    if (str === undefined) continue;
    let parsed: Flags;
    try {
      parsed = parseFlags(str);
    } catch (err) {
      throw new CliError(`${option}: ${(err as Error).message.replace(/^parseFlags: /, '')}`);
    }
    for (const [raw, value] of Object.entries(parsed)) {
      const name = raw.replace(/-/g, '_');
      if (!KNOWN.has(name)) throw new CliError(`${option}: unknown flag --${raw} (not a flag of their classifier_sample.py)`);
      if (name in out && out[name] !== value) throw new CliError(`--${name} is given twice, as ${out[name]} and ${value}`);
      out[name] = value;
    }
  }
  return out;
}

/** Our option or their flag of the same meaning; both given must agree. */
function either<T>(ours: T | undefined, option: string, flags: Flags, name: string, read: (v: FlagValue) => T): T | undefined {
  const theirs = flags[name] === undefined ? undefined : read(flags[name]);
  if (ours !== undefined && theirs !== undefined && ours !== theirs) {
    throw new CliError(`${option} ${ours} and --${name} ${theirs} in the flags disagree`);
  }
  return ours ?? theirs;
}

const count = (name: string) => (v: FlagValue): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new CliError(`--${name} must be an integer >= 1; got ${v}`);
  if (v > MAX_IMAGES) throw new CliError(`--${name} must be at most ${MAX_IMAGES} (the images are held for one PNG grid); got ${v}`);
  return v;
};
const scaleValue = (v: FlagValue): number => {
  if (typeof v !== 'number') throw new CliError(`--classifier_scale must be a number; got ${v}`);
  return v;
};
const bool = (name: string) => (v: FlagValue): boolean => {
  try {
    return toBool(v, `--${name}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
};

/** Loads a checkpoint whose names and shapes must be those these flags build. */
function load(module: Module, file: string, what: string, flagsName: string): void {
  try {
    module.loadStateDict(existing(`${what} checkpoint`, file));
  } catch (err) {
    const m = /^load_named_tensors: (.*)$/s.exec((err as Error).message);
    if (!m) throw err;
    throw new CliError(`${file} does not fit the ${what} of these flags: ${m[1].replace(/\.?\s*$/, '')}. ` +
      `The ${flagsName} do not match the checkpoint: give the flags it was released with (README, "The paper's models").`);
  }
}

/**
 * Samples --n images: with --seed s, torch.manualSeed(s), then per batch of --batch-size
 * (the last one smaller) the classes as their script draws them (randint over the 1000
 * classes, unless --class), then x_T and one noise draw per step.
 */
export async function sampleOpenAI(o: OpenAISampleOptions, given: (option: string) => boolean): Promise<void> {
  for (const option of NOT_WITH_OPENAI) {
    if (given(option)) throw new CliError(`${flagName(option)} does not apply with --openai${option === 'scale' ? ' (use --classifier-scale)' : ''}`);
  }
  const f = scriptFlags(o.openai, o.classifierFlags);
  const modelPath = either(o.modelPath, '--model-path', f, 'model_path', String);
  if (!modelPath) throw new CliError('--openai needs --model-path: the checkpoint these MODEL_FLAGS describe');
  const classifierPath = either(o.classifierPath, '--classifier-path', f, 'classifier_path', String) || undefined;
  const scale = either(o.classifierScale, '--classifier-scale', f, 'classifier_scale', scaleValue) ?? 1;
  const respacing = either(o.timestepRespacing, '--timestep-respacing', f, 'timestep_respacing', String);
  const useDdim = either(o.useDdim, '--use-ddim', f, 'use_ddim', bool('use_ddim'));
  const samplerOpts = samplerOptions(o);
  const fast = o.sampler !== undefined && isFastSampler(o.sampler);
  if (o.sampler !== undefined && useDdim !== undefined && useDdim !== (o.sampler === 'ddim')) {
    throw new CliError(useDdim ? `--sampler ${o.sampler} and --use-ddim disagree (DDIM is --sampler ddim)` : `--sampler ddim and --use_ddim False in the flags disagree`);
  }
  if (o.steps !== undefined && !fast) {
    throw new CliError(`--steps with --openai needs a fast --sampler (${SAMPLERS.filter(isFastSampler).join(', ')}); the ancestral and DDIM steps are --timestep-respacing`);
  }
  const ddim = o.sampler === 'ddim' || (o.sampler === undefined && (useDdim ?? false));
  const sampler = o.sampler ?? (ddim ? 'ddim' : 'ancestral');
  const n = either(given('n') ? o.n : undefined, '--n', f, 'num_samples', count('num_samples')) ?? o.n;
  const batchSize = either(given('batchSize') ? o.batchSize : undefined, '--batch-size', f, 'batch_size', count('batch_size')) ?? o.batchSize;
  const clip = f.clip_denoised === undefined ? true : bool('clip_denoised')(f.clip_denoised);
  writableOut(o.out);
  if (o.threads) torch.setNumThreads(o.threads);

  existing('model checkpoint', modelPath);
  if (classifierPath) existing('classifier checkpoint', classifierPath);

  // The weights are loaded before the diffusion is made (its probe runs the net once, 25 s
  // for the 64x64 net on 2 cores): a mismatch is found first.
  const flags = { ...f, ...(respacing !== undefined ? { timestep_respacing: respacing } : {}) };
  const model = createModel(flags);
  const numClasses = model.attribute('num_classes');
  const classCond = typeof numClasses === 'number' && numClasses > 0;
  let cls: number | undefined;
  if (o.class !== undefined) {
    if (!classCond && !classifierPath) throw new CliError('--class needs a class-conditional model (--class_cond True) or a classifier (--classifier-path)');
    cls = Number(o.class);
    if (!/^\d+$/.test(o.class) || cls >= NUM_CLASSES) throw new CliError(`--class must be an ImageNet class index from 0 to ${NUM_CLASSES - 1}; got '${o.class}'`);
  }
  load(model.eval(), modelPath, 'model', 'MODEL_FLAGS');
  let classifier: Module | undefined;
  if (classifierPath) {
    classifier = createClassifier(flags).eval();
    load(classifier, classifierPath, 'classifier', 'CLASSIFIER_FLAGS');
  }
  const diffusion = createGaussianDiffusion(model, flags, { clipDenoised: clip });
  checkFastSteps(samplerOpts, o, diffusion.numTimesteps);

  if (o.seed !== undefined) torch.manualSeed(o.seed);
  // A fast sampler takes --steps over the (respaced) schedule; ancestral and DDIM every step of it.
  const steps = samplerOpts?.steps ?? diffusion.numTimesteps;
  const batches = Math.ceil(n / batchSize);
  const reporter = progressReporter(batches);
  const parts: Tensor[] = [];
  try {
    for (let i = 0; i < batches; i++) {
      const size = Math.min(batchSize, n - i * batchSize);
      const y = classCond || classifier ? (cls === undefined ? torch.randint(0, NUM_CLASSES, [size]) : torch.tensor(new Array<number>(size).fill(cls))) : undefined;
      parts.push(await diffusion.sample({
        ...samplerOpts,
        batchSize: size,
        sampler,
        ...(classCond ? { modelKwargs: { y } } : {}),
        ...(classifier ? { condFn: o.jsCondFn ? classifierCondFn : classifierGuidance, guidanceKwargs: { classifier, y: y!, classifierScale: scale } } : {}),
        onProgress: (p) => reporter.update(p, i),
      }));
      y?.dispose();
    }
    reporter.stop();
    // Their samples are in [-1, 1]; the grid takes [0, 1].
    const images = torch.tidy(() => (parts.length === 1 ? parts[0] : torch.cat(parts)).add(1).div(2).clamp(0, 1));
    saveImage(images, o.out, { nrow: o.nrow ?? 8 });
    images.dispose();
  } finally {
    torch.dispose(parts);
    model.dispose();
    classifier?.dispose();
  }
  const what = cls !== undefined ? ` of class ${cls}` : classCond || classifier ? ' of random classes' : '';
  process.stderr.write(`wrote ${o.out}: ${n} images${what}, ${stepsText(steps, ddim ? 'DDIM' : sampler)}${classifier ? `, classifier scale ${scale}` : ''}\n`);
}
