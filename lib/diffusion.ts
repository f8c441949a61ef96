// GaussianDiffusion: a model, its noise schedule and sample(), mirroring the reference's
// Python class. One native object holds the schedule and runs the sampling loop.
import { binding, Device, NativeDiffusion, NativeOpenaiClassifierTrainer, NativeOpenaiTrainer, NativeSampleRequest } from './binding';
import { EDIT_KEYS, EditOptions, editRequest } from './editing';
import { x0GuidanceRequest } from './x0-guidance';
import { checkClassifierKwargs, classifierCondFn, classifierGuidance, CondFn, GuidanceContext } from './guidance';
import { Module } from './module';
import { checkKeyList, checkOptionKeys, KeysOf } from './option-keys';
import { checkOptionsApply, checkSamplerChoice, checkSamplerName, FastSamplerOptions, fastSamplerRequest, isFastSampler, SamplerChoice, SamplerName, TAKEN_BY } from './samplers';
import { Tensor } from './tensor';

export type Objective = 'pred_noise' | 'pred_x0' | 'pred_v';
export type BetaSchedule = 'linear' | 'cosine' | 'sigmoid';
/** openai/guided-diffusion's ModelVarType: learned ones read 2 * channels of model output. */
export type ModelVarType = 'fixedSmall' | 'fixedLarge' | 'learned' | 'learnedRange';
const MODEL_VAR_TYPES: readonly string[] = ['fixedSmall', 'fixedLarge', 'learned', 'learnedRange'];
/**
 * openai/guided-diffusion's LossType: 'mse' (plus the vb term when the variance is learned),
 * 'rescaledMse' (that vb term times T/1000), 'kl' (the variational bound), 'rescaledKl' (times T).
 */
export type LossType = 'mse' | 'rescaledMse' | 'kl' | 'rescaledKl';
const LOSS_TYPES: readonly string[] = ['mse', 'rescaledMse', 'kl', 'rescaledKl'];

export interface TrainingLossesOptions {
  /** The noise of x_t = q_sample(x0, t, noise); default randn_like(x0). */
  noise?: Tensor;
  /** y, the class labels (int64 (B,)) of a class-conditional model. */
  modelKwargs?: { y?: Tensor };
}

/** Per-sample terms (B,) of trainingLosses, as openai's dict: loss always; mse for the MSE loss types; vb with a learned variance. */
export interface TrainingLossTerms {
  loss: Tensor;
  mse?: Tensor;
  vb?: Tensor;
}

export interface GaussianDiffusionOptions {
  /** Side of the square images (required). */
  imageSize: number;
  /** Image channels; default: the model's `channels` attribute, else 3. */
  channels?: number;
  /** Diffusion steps T; default 1000. */
  timesteps?: number;
  /**
   * Sampling steps; equal to the schedule's steps: ancestral (DDPM), fewer: DDIM. Default: all
   * steps of the schedule (the respaced ones with timestepRespacing).
   */
  samplingTimesteps?: number;
  /** What the model predicts; default 'pred_noise'. */
  objective?: Objective;
  /** Default 'sigmoid' (the reference's). */
  betaSchedule?: BetaSchedule;
  /** Schedule parameters: { s } for cosine, { start, end, tau } for sigmoid. */
  scheduleFnKwargs?: { s?: number; start?: number; end?: number; tau?: number };
  /**
   * The variance of each reverse step (openai's model_var_type): 'fixedSmall' (the posterior
   * variance, default), 'fixedLarge' (beta_t), 'learned' or 'learnedRange' (the model outputs
   * 2 * channels: eps or x0, then the log variance or its interpolation value in [-1, 1]).
   */
  modelVarType?: ModelVarType;
  /**
   * Sample over a subset of the timesteps, as openai's space_timesteps: '250' (that many, evenly
   * spaced), '10,15,20' (per equal section), 'ddim25' (an integer stride). The model and the
   * guidance still see the original timesteps.
   */
  timestepRespacing?: string;
  /** The model sees float timesteps scaled to 0..1000 (openai's rescale_timesteps). Default false. */
  rescaleTimesteps?: boolean;
  /**
   * pred_noise: DDIM takes eps from the clipped x0, as openai's p_mean_variance and
   * ddim_sample do; default false (the seed keeps the model's eps).
   */
  epsFromX0?: boolean;
  /** Default for sample()'s condFnInput: 'mean' (the seed's) or 'x' (openai's x_t). */
  condFnInput?: 'mean' | 'x';
  /** DDIM eta; default 0 (deterministic DDIM). */
  ddimSamplingEta?: number;
  /** Data in [0, 1] outside, [-1, 1] inside; default true. */
  autoNormalize?: boolean;
  /** Clamp predicted x0 to [-1, 1]; default true. */
  clipDenoised?: boolean;
  /**
   * Guided DDIM: clamp the x0 that condition_score re-derives as well; default false (the
   * math as specified). Small models, above all on the cosine schedule, need it: without it
   * a zero gradient already undoes clipDenoised. The shipped model turns it on.
   */
  clipAfterGuidance?: boolean;
  /** The loss of trainingLosses() (openai's loss_type); default 'mse'. */
  lossType?: LossType;
  /** Device to sample on; default: where the model's weights are. The model must be there too. */
  device?: Device;
  /** Run the model's forward under autocast in this dtype (guidance stays float32): 'float16' or 'bfloat16' on CUDA, 'bfloat16' on the CPU. */
  autocast?: 'float16' | 'bfloat16';
  /**
   * CUDA only: after a few eager steps, capture the model call into a CUDA graph and replay it
   * (one launch a step instead of hundreds). Checked against an eager call once; a model that
   * cannot be captured runs eagerly. Default: true on CUDA. See torch.cuda.graphStats().
   */
  cudaGraph?: boolean;
  /**
   * The sampler sample() runs when its options name none, with that sampler's options, e.g.
   * { sampler: 'euler-ancestral', steps: 20 } (the shipped model's); sample()'s own options
   * override them. Default: ancestral, or DDIM when samplingTimesteps is below the schedule's.
   */
  defaultSampler?: SamplerChoice;
}

const DIFFUSION_KEYS: KeysOf<GaussianDiffusionOptions> = {
  imageSize: true, channels: true, timesteps: true, samplingTimesteps: true, objective: true, betaSchedule: true, scheduleFnKwargs: true,
  modelVarType: true, timestepRespacing: true, rescaleTimesteps: true, epsFromX0: true, condFnInput: true, ddimSamplingEta: true,
  autoNormalize: true, clipDenoised: true, clipAfterGuidance: true, lossType: true, device: true, autocast: true, cudaGraph: true, defaultSampler: true,
};

export interface SampleProgress {
  /** Steps done, 1..total. */
  step: number;
  total: number;
  /** The timestep just denoised (fast samplers: the fractional model timestep of the step's last model call). */
  t: number;
}

export interface SampleOptions<K = unknown> extends FastSamplerOptions, EditOptions {
  /** Default 16, as the reference. */
  batchSize?: number;
  /** Return x_T .. x_0 stacked on dim 1. */
  returnAllTimesteps?: boolean;
  /** A guidance gradient: any JS function, classifierCondFn, or the native classifierGuidance. */
  condFn?: CondFn<K>;
  /** Passed to condFn as its third argument. */
  guidanceKwargs?: K;
  /**
   * Where ancestral steps evaluate condFn: 'mean' (the reference) or 'x' (the paper's code);
   * default: the diffusion's condFnInput.
   */
  condFnInput?: 'mean' | 'x';
  /**
   * 'x0': condFn(x0, t, guidanceKwargs, context) gets the predicted clean image (a tensor that
   * requires grad; grad mode is on during the call) and returns a loss, a scalar or one per
   * image; the sampler takes its gradient with respect to x_t through the model. DDIM and the
   * fast samplers step with eps + guidanceScale * sqrt(1 - alphaBar) * grad (Universal
   * Guidance's forward guidance), the ancestral sampler with x_{t-1} - guidanceScale * grad
   * (DPS); docs/guidance.md. Default: condFn returns the gradient itself.
   */
  guidanceInput?: 'x0';
  /** With guidanceInput 'x0': the scale s of the loss's gradient; default 1. */
  guidanceScale?: number;
  /**
   * With guidanceInput 'x0': divide image i's gradient by sqrt(loss_i), DPS's zeta / ||y - A(x0)||
   * for a loss ||y - A(x0)||^2; condFn must return one (positive) loss per image.
   */
  gradientNorm?: boolean;
  /** With guidanceInput 'x0': guide only the steps with timestep t in [tLo, tHi]; others step unguided. */
  guidanceInterval?: [number, number];
  /**
   * With guidanceInput 'x0' (every sampler): Universal Guidance's self-recurrence, each guided
   * step taken k times, x_{t-1} renoised back to x_t with a fresh draw between them; default 1.
   * A multistep sampler's retakes start from its history as it was before the step (docs/guidance.md).
   */
  recurrence?: number;
  /** Extra inputs of the model's forward: y, the class labels (int64 (B,)) of a class-conditional model. */
  modelKwargs?: { y?: Tensor };
  /**
   * Classifier-free guidance (Ho & Salimans) for a class-conditional model trained with label
   * dropout: one forward of the batch [x, x] with labels [modelKwargs.y, nullClass], and the
   * output cond + (cond - uncond) * (cfgScale - 1) = uncond + cfgScale * (cond - uncond)
   * (lucidrains' forward_with_cond_scale, without their projection of the update). 1: the
   * conditional model alone; 0: the unconditional one. Any sampler; combines with condFn.
   */
  cfgScale?: number;
  /**
   * With cfgScale: mix in the guided output rescaled to the conditional output's std (per
   * image), this share of it (lucidrains' rescaled_phi, Lin et al. 2023); in [0, 1], default 0.
   */
  rescaledPhi?: number;
  /**
   * With cfgScale: the label that stands for "no class" (the unconditional half). openai's
   * UNetModel trained with num_classes + 1 labels: num_classes (the extra index); a model with
   * an int attribute null_class (lucidrains' null_classes_emb behind that label, as
   * scripts/fixtures/lucidrains_cfg.py exports their Unet): that, the default.
   */
  nullClass?: number;
  /**
   * 'ancestral' (DDPM over every step of the schedule) or 'ddim' (over samplingTimesteps
   * steps); default: ancestral when samplingTimesteps covers the schedule, else DDIM. The fast
   * samplers: 'dpm-solver++', 'dpm-solver', 'unipc' (steps model calls) and k-diffusion's
   * 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m' (steps sigma intervals); their options are
   * FastSamplerOptions (docs/fast-samplers.md).
   */
  sampler?: SamplerName;
  /** DDIM eta for this sample; default the diffusion's ddimSamplingEta. */
  eta?: number;
  onProgress?: (progress: SampleProgress) => void;
  /**
   * Aborting stops the sample within one step; sample() rejects with signal.reason, as fetch
   * does (an AbortError DOMException unless abort() was given a reason).
   */
  signal?: AbortSignal;
  /** A generator of this sample's own: reproducible whatever runs beside it. An integer in 0..2^53-1. */
  seed?: number;
  /**
   * One seed per image (batchSize of them), instead of seed: image i's noise comes from a
   * generator of its own, so it is the same whatever batch it is drawn in (sampleDistributed).
   */
  seeds?: number[];
  /** Reject when one condFn call takes longer than this (ms). */
  stepTimeoutMs?: number;
}

const SAMPLE_KEYS = new Set([
  'batchSize', 'returnAllTimesteps', 'condFn', 'guidanceKwargs', 'condFnInput', 'guidanceInput', 'guidanceScale', 'gradientNorm', 'guidanceInterval', 'recurrence', 'modelKwargs', 'cfgScale', 'rescaledPhi', 'nullClass', 'sampler',
  'onProgress', 'signal', 'seed', 'seeds', 'stepTimeoutMs', ...EDIT_KEYS, ...Object.keys(TAKEN_BY),
]);

/** sample()'s options object: a TypeError naming any key it does not know. */
function checkSampleKeys(options: object): void {
  checkKeyList('sample()', options, SAMPLE_KEYS);
}

function positiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`Expected positive integer for ${name} but received ${String(value)}`);
  }
  return value;
}

/** The most diffusion steps a schedule may have: its buffers and its loops grow with T. */
export const MAX_TIMESTEPS = 100_000;

/** timesteps as GaussianDiffusion and the trainers take it: an integer in [1, MAX_TIMESTEPS]. */
export function checkTimesteps(value: unknown): number {
  const t = positiveInt(value, 'timesteps');
  if (t > MAX_TIMESTEPS) throw new RangeError(`timesteps must be at most ${MAX_TIMESTEPS}; got ${t}`);
  return t;
}

// DDIM's eta scales sigma between 0 (deterministic) and 1 (the ancestral step's variance);
// above 1 sigma^2 exceeds 1 - alpha_bar_prev and the direction term takes the root of a
// negative number (NaN images).
function ddimEta(value: unknown, name = 'ddimSamplingEta'): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`Expected a number for ${name} but received ${String(value)}`);
  }
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`${name} must be in [0, 1] (0: deterministic DDIM, 1: as noisy as ancestral steps); got ${value}`);
  }
  return value;
}

// Checked before anything starts: a signal that is not one would otherwise fail only after the
// native sample has begun, and leave it running.
function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function' || typeof s.removeEventListener !== 'function') {
    throw new TypeError(`Expected an AbortSignal for signal but received ${s === null ? 'null' : typeof s}`);
  }
  return signal as AbortSignal;
}

export function checkSeed(seed: unknown): number {
  if (typeof seed !== 'number') throw new TypeError(`Expected integer for seed but received ${typeof seed}`);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Expected seed to be an integer in 0..${Number.MAX_SAFE_INTEGER} but received ${seed}`);
  }
  return seed;
}

export class GaussianDiffusion {
  readonly model: Module;
  readonly options: Required<Omit<GaussianDiffusionOptions, 'device' | 'autocast' | 'cudaGraph' | 'timestepRespacing' | 'defaultSampler'>> &
    Pick<GaussianDiffusionOptions, 'autocast' | 'timestepRespacing' | 'defaultSampler'> & { device: Device; cudaGraph: boolean };
  private readonly native: NativeDiffusion;

  constructor(model: Module, options: GaussianDiffusionOptions) {
    if (!(model instanceof Module)) throw new TypeError('GaussianDiffusion: expected a Module (a Unet or jit.load of a checkpoint) as the model');
    if (options === null || typeof options !== 'object') throw new TypeError('GaussianDiffusion: expected an options object such as { imageSize: 32 }');
    checkOptionKeys<GaussianDiffusionOptions>('GaussianDiffusion', options, DIFFUSION_KEYS);
    const timesteps = checkTimesteps(options.timesteps ?? 1000);
    const attrChannels = model.attribute('channels');
    const respacing = options.timestepRespacing;
    if (respacing !== undefined && (typeof respacing !== 'string' || respacing === '')) {
      throw new TypeError(`timestepRespacing: expected a string such as '250', '10,15,20' or 'ddim25' but received ${String(respacing)}`);
    }
    const varType = options.modelVarType ?? 'fixedSmall';
    if (!MODEL_VAR_TYPES.includes(varType)) throw new TypeError(`modelVarType must be one of ${MODEL_VAR_TYPES.join(', ')}; got '${String(varType)}'`);
    const condFnInput = options.condFnInput ?? 'mean';
    const lossType = options.lossType ?? 'mse';
    if (!LOSS_TYPES.includes(lossType)) throw new TypeError(`lossType must be one of ${LOSS_TYPES.join(', ')}; got '${String(lossType)}'`);
    if (condFnInput !== 'mean' && condFnInput !== 'x') throw new TypeError(`condFnInput must be 'mean' or 'x'; got '${String(condFnInput)}'`);
    const resolved = {
      imageSize: positiveInt(options.imageSize, 'imageSize'),
      channels: positiveInt(options.channels ?? (typeof attrChannels === 'number' ? attrChannels : 3), 'channels'),
      timesteps,
      samplingTimesteps: options.samplingTimesteps === undefined ? undefined : positiveInt(options.samplingTimesteps, 'samplingTimesteps'),
      objective: options.objective ?? 'pred_noise',
      betaSchedule: options.betaSchedule ?? 'sigmoid',
      scheduleFnKwargs: { ...(options.scheduleFnKwargs ?? {}) },
      ddimSamplingEta: ddimEta(options.ddimSamplingEta ?? 0),
      autoNormalize: options.autoNormalize ?? true,
      clipDenoised: options.clipDenoised ?? true,
      clipAfterGuidance: options.clipAfterGuidance ?? false,
      modelVarType: varType,
      rescaleTimesteps: options.rescaleTimesteps ?? false,
      epsFromX0: options.epsFromX0 ?? false,
      condFnInput,
      lossType,
      ...(respacing !== undefined ? { timestepRespacing: respacing } : {}),
      ...(options.autocast !== undefined ? { autocast: options.autocast } : {}),
    };
    if (respacing === undefined && resolved.samplingTimesteps !== undefined && resolved.samplingTimesteps > timesteps) {
      throw new RangeError(`samplingTimesteps (${resolved.samplingTimesteps}) cannot exceed timesteps (${timesteps})`);
    }
    this.model = model;
    this.native = binding.createDiffusion(model.native, { ...resolved, device: options.device, cudaGraph: options.cudaGraph });
    const defaultSampler = options.defaultSampler === undefined ? undefined : checkSamplerChoice(options.defaultSampler, this.native.timesteps().timesteps);
    // The native side picks the device (the option, else where the model's weights are),
    // whether to use CUDA graphs there, and the sampling steps of a respaced schedule.
    this.options = {
      ...resolved,
      samplingTimesteps: this.native.timesteps().samplingTimesteps,
      device: this.native.device(),
      cudaGraph: this.native.cudaGraph(),
      ...(defaultSampler !== undefined ? { defaultSampler } : {}),
    };
  }

  /**
   * A shipped model: GaussianDiffusion.pretrained('fashion-mnist') returns { diffusion,
   * classifier, classNames, meta }; 'fashion-mnist-cfg' (classifier-free guided) the same without
   * a classifier, meta.cfgScale and meta.nullClass telling how to guide. Defined in lib/pretrained.ts.
   */
  static pretrained: typeof import('./pretrained').loadPretrained;

  /** True when sample() takes DDIM steps by default (samplingTimesteps < the schedule's steps). */
  get isDdimSampling(): boolean {
    return this.options.samplingTimesteps < this.native.timesteps().timesteps;
  }

  /** Steps of the schedule sample() runs: timesteps, or the respaced count. */
  get numTimesteps(): number {
    return this.native.timesteps().timesteps;
  }

  /** sample()'s options with the default sampler's filled in when they name no sampler. */
  private withDefaultSampler<K>(options: SampleOptions<K>): SampleOptions<K> {
    const d = this.options.defaultSampler;
    if (d === undefined || options.sampler !== undefined) return options;
    const own = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    return { ...d, ...own } as SampleOptions<K>;
  }

  /**
   * Draws batchSize images in [0, 1] (with autoNormalize). Runs on a thread of its own; the
   * event loop stays free. With torch.manualSeed(s) first, the noise is the reference's.
   */
  sample<K>(given: SampleOptions<K> = {}): Promise<Tensor> {
    let handle: { promise: Promise<Tensor>; cancel(): void };
    let signal: AbortSignal | undefined;
    try {
      if (given === null || typeof given !== 'object') throw new TypeError('sample(): expected an options object such as { batchSize: 16 }');
      checkSampleKeys(given);
      const options = this.withDefaultSampler(given);
      signal = checkSignal(options.signal);
      if (signal?.aborted) return Promise.reject(signal.reason);
      const batchSize = positiveInt(options.batchSize ?? 16, 'batchSize');
      const condInput = options.condFnInput ?? this.options.condFnInput;
      if (condInput !== 'mean' && condInput !== 'x') throw new TypeError(`condFnInput must be 'mean' or 'x'; got '${String(condInput)}'`);
      const request: NativeSampleRequest = { batchSize, returnAllTimesteps: options.returnAllTimesteps ?? false, condInput };
      if (options.seed !== undefined) request.seed = checkSeed(options.seed);
      if (options.sampler !== undefined) {
        const sampler = checkSamplerName(options.sampler);
        request.sampler = sampler;
        if (isFastSampler(sampler)) Object.assign(request, fastSamplerRequest(sampler, options, this.numTimesteps));
        else checkOptionsApply(sampler, options as Record<string, unknown>);
      } else {
        // The default sampler takes eta (DDIM) or condFnInput (ancestral) as before.
        checkOptionsApply(this.isDdimSampling ? 'ddim' : 'ancestral', { ...options, condFnInput: undefined, eta: undefined });
      }
      if (options.eta !== undefined) request.eta = ddimEta(options.eta, 'eta');
      if (options.modelKwargs !== undefined) {
        const mk = options.modelKwargs;
        if (mk === null || typeof mk !== 'object') throw new TypeError('modelKwargs: expected an object such as { y }');
        for (const key of Object.keys(mk)) if (key !== 'y') throw new TypeError(`modelKwargs.${key}: only y (class labels) is passed to the model`);
        if (mk.y !== undefined) {
          if (!(mk.y instanceof Tensor)) throw new TypeError('modelKwargs.y: expected an int64 Tensor of class labels');
          request.modelKwargs = { y: mk.y };
        }
      }
      const cfg = this.cfgRequest(options, request.modelKwargs?.y);
      if (cfg) request.cfg = cfg;
      Object.assign(request, editRequest(options, [batchSize, this.options.channels, this.options.imageSize, this.options.imageSize], this.options.autoNormalize));
      if (options.seeds !== undefined) request.seeds = Array.isArray(options.seeds) ? options.seeds.map(checkSeed) : options.seeds;
      if (options.stepTimeoutMs !== undefined) request.stepTimeoutMs = positiveInt(options.stepTimeoutMs, 'stepTimeoutMs');
      const condFn = options.condFn;
      if (condFn !== undefined && typeof condFn !== 'function') throw new TypeError(`Expected a function for condFn but received ${typeof condFn}`);
      const x0 = x0GuidanceRequest(options, condFn);
      if (x0) Object.assign(request, x0);
      if (condFn === classifierGuidance) {
        checkClassifierKwargs(options.guidanceKwargs, batchSize);
        const k = options.guidanceKwargs;
        request.classifierGuidance = { classifier: k.classifier.native, y: k.y, classifierScale: k.classifierScale ?? 1 };
      } else if (condFn) {
        if (condFn === (classifierCondFn as unknown)) checkClassifierKwargs(options.guidanceKwargs, batchSize);
        const kwargs = options.guidanceKwargs as K;
        request.condFn = (x: Tensor, t: Tensor, context: GuidanceContext) => condFn(x, t, kwargs, context);
      }
      const onProgress = options.onProgress;
      if (onProgress) request.onProgress = (step, total, t) => onProgress({ step: step + 1, total, t });
      handle = this.native.sample(request);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!signal) return handle.promise;
    const s = signal;
    const onAbort = (): void => handle.cancel();
    s.addEventListener('abort', onAbort, { once: true });
    return handle.promise.then(
      (images) => {
        s.removeEventListener('abort', onAbort);
        // Aborted while the last steps' progress was still queued: rejected all the same, as
        // fetch does once its signal aborts.
        if (s.aborted) {
          images.dispose();
          throw s.reason;
        }
        return images;
      },
      (err) => {
        s.removeEventListener('abort', onAbort);
        // The native AbortError of a cancelled sample stands for the signal's reason.
        throw s.aborted && (err as Error)?.name === 'AbortError' ? s.reason : err;
      },
    );
  }

  /** sample()'s classifier-free guidance options, checked (undefined without cfgScale). */
  private cfgRequest(options: Pick<SampleOptions, 'cfgScale' | 'rescaledPhi' | 'nullClass'>, y: Tensor | undefined): { scale: number; rescaledPhi: number; nullClass: number } | undefined {
    const { cfgScale, rescaledPhi, nullClass } = options;
    if (cfgScale === undefined) {
      if (rescaledPhi !== undefined) throw new TypeError('rescaledPhi needs cfgScale (classifier-free guidance)');
      if (nullClass !== undefined) throw new TypeError('nullClass needs cfgScale (classifier-free guidance)');
      return undefined;
    }
    if (typeof cfgScale !== 'number' || !Number.isFinite(cfgScale)) throw new TypeError(`cfgScale must be a finite number; got ${String(cfgScale)}`);
    if (rescaledPhi !== undefined && (typeof rescaledPhi !== 'number' || !(rescaledPhi >= 0 && rescaledPhi <= 1))) {
      throw new RangeError(`rescaledPhi must be a number in [0, 1]; got ${String(rescaledPhi)}`);
    }
    if (y === undefined) throw new TypeError('cfgScale needs the class labels: modelKwargs: { y } (a class-conditional model)');
    const own = this.model.attribute('null_class');
    const numClasses = this.model.attribute('num_classes');
    const label = nullClass ?? (typeof own === 'number' ? own : undefined);
    if (label === undefined) {
      throw new TypeError('cfgScale needs the label of the unconditional half: give nullClass (for openai\'s UNetModel trained with num_classes + 1 labels, ' +
        'num_classes: the extra index), or a model with an int attribute null_class');
    }
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0) throw new TypeError(`nullClass must be a non-negative integer label; got ${String(label)}`);
    // Where the null class is one of the model's label indices (openai's extra index), it must be one.
    if (typeof own !== 'number' && typeof numClasses === 'number' && label >= numClasses) {
      throw new RangeError(`nullClass ${label} is outside the model's labels 0..${numClasses - 1} (openai's UNetModel for CFG is built with num_classes + 1 labels, the last the null class)`);
    }
    return { scale: cfgScale, rescaledPhi: rescaledPhi ?? 0, nullClass: label };
  }

  /** x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise (x0 in [-1, 1]). */
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.native.qSample(x0, t, noise);
  }

  /** The training loss of the reference's p_losses for x0 in [-1, 1], with this objective. */
  pLosses(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.native.pLosses(x0, t, noise);
  }

  /**
   * openai's training_losses: one model call at x_t = q_sample(x0, t, noise) for x0 in [-1, 1]
   * and t the (respaced) schedule's step indices, giving per-sample terms with the options'
   * lossType. A learned variance adds the vb term through the model output with its mean half
   * detached (their hybrid loss). The terms keep the graph: backward() their weighted mean.
   */
  trainingLosses(x0: Tensor, t: Tensor, options: TrainingLossesOptions = {}): TrainingLossTerms {
    if (options === null || typeof options !== 'object') throw new TypeError('trainingLosses: expected an options object such as { noise }');
    checkOptionKeys<TrainingLossesOptions>('trainingLosses', options, { noise: true, modelKwargs: true });
    const kwargs = options.modelKwargs ?? {};
    checkOptionKeys<{ y?: Tensor }>('trainingLosses modelKwargs', kwargs, { y: true });
    return this.native.trainingLosses(x0, t, this.options.lossType, options.noise, kwargs.y);
  }

  /**
   * One model call at step t of the (respaced) schedule, as the sampler makes it (openai's
   * p_mean_variance): predicted noise, (clipped) x0, the posterior mean and the variance.
   */
  predict(x: Tensor, t: Tensor, modelKwargs?: { y?: Tensor }): { eps: Tensor; x0: Tensor; mean: Tensor; variance: Tensor; logVariance: Tensor } {
    return modelKwargs?.y !== undefined ? this.native.predict(x, t, modelKwargs.y) : this.native.predict(x, t);
  }

  /** @internal openai's TrainLoop step over this diffusion (lib/openai/train.ts builds the options). */
  openaiTrainer(options: object): NativeOpenaiTrainer {
    return this.native.openaiTrainer(options);
  }

  /** @internal classifier_train.py's step over this diffusion's schedule (lib/openai/classifier-train.ts). */
  openaiClassifierTrainer(classifier: Module, options: object): NativeOpenaiClassifierTrainer {
    return this.native.openaiClassifierTrainer(classifier.native, options);
  }

  /** The schedule's buffers (betas, alphasCumprod, posterior coefficients ...), float32 (T,). */
  schedule(): Record<string, Tensor> {
    return this.native.schedule();
  }
}
