// GaussianDiffusion: a model, its noise schedule and sample(), mirroring the reference's
// Python class. One native object holds the schedule and runs the sampling loop.
import { binding, Device, NativeDiffusion, NativeSampleRequest } from './binding';
import { checkClassifierKwargs, classifierCondFn, classifierGuidance, CondFn } from './guidance';
import { Module } from './module';
import { Tensor } from './tensor';

export type Objective = 'pred_noise' | 'pred_x0' | 'pred_v';
export type BetaSchedule = 'linear' | 'cosine' | 'sigmoid';

export interface GaussianDiffusionOptions {
  /** Side of the square images (required). */
  imageSize: number;
  /** Image channels; default: the model's `channels` attribute, else 3. */
  channels?: number;
  /** Diffusion steps T; default 1000. */
  timesteps?: number;
  /** Sampling steps; equal to timesteps: ancestral (DDPM), fewer: DDIM. Default timesteps. */
  samplingTimesteps?: number;
  /** What the model predicts; default 'pred_noise'. */
  objective?: Objective;
  /** Default 'sigmoid' (the reference's). */
  betaSchedule?: BetaSchedule;
  /** Schedule parameters: { s } for cosine, { start, end, tau } for sigmoid. */
  scheduleFnKwargs?: { s?: number; start?: number; end?: number; tau?: number };
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
  /** Device to sample on; default: where the model's weights are. The model must be there too. */
  device?: Device;
  /** CUDA only: run the model's forward under autocast in this dtype (guidance stays float32). */
  autocast?: 'float16' | 'bfloat16';
  /**
   * CUDA only: after a few eager steps, capture the model call into a CUDA graph and replay it
   * (one launch a step instead of hundreds). Checked against an eager call once; a model that
   * cannot be captured runs eagerly. Default: true on CUDA. See torch.cuda.graphStats().
   */
  cudaGraph?: boolean;
}

export interface SampleProgress {
  /** Steps done, 1..total. */
  step: number;
  total: number;
  /** The timestep just denoised. */
  t: number;
}

export interface SampleOptions<K = unknown> {
  /** Default 16, as the reference. */
  batchSize?: number;
  /** Return x_T .. x_0 stacked on dim 1. */
  returnAllTimesteps?: boolean;
  /** A guidance gradient: any JS function, classifierCondFn, or the native classifierGuidance. */
  condFn?: CondFn<K>;
  /** Passed to condFn as its third argument. */
  guidanceKwargs?: K;
  /** Where ancestral steps evaluate condFn: 'mean' (the reference) or 'x' (the paper's code). */
  condFnInput?: 'mean' | 'x';
  onProgress?: (progress: SampleProgress) => void;
  /** Aborting stops the sample within one step; sample() rejects with an AbortError. */
  signal?: AbortSignal;
  /** A generator of this sample's own: reproducible whatever runs beside it. */
  seed?: number;
  /** Reject when one condFn call takes longer than this (ms). */
  stepTimeoutMs?: number;
}

function positiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`Expected positive integer for ${name} but received ${String(value)}`);
  }
  return value;
}

function nonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`Expected a finite non-negative number for ${name} but received ${String(value)}`);
  }
  return value;
}

function abortError(message: string): Error {
  const err = new Error(message);
  err.name = 'AbortError';
  return err;
}

export class GaussianDiffusion {
  readonly model: Module;
  readonly options: Required<Omit<GaussianDiffusionOptions, 'device' | 'autocast' | 'cudaGraph'>> &
    Pick<GaussianDiffusionOptions, 'autocast'> & { device: Device; cudaGraph: boolean };
  private readonly native: NativeDiffusion;

  constructor(model: Module, options: GaussianDiffusionOptions) {
    if (!(model instanceof Module)) throw new TypeError('GaussianDiffusion: expected a Module (a Unet or jit.load of a checkpoint) as the model');
    if (options === null || typeof options !== 'object') throw new TypeError('GaussianDiffusion: expected an options object such as { imageSize: 32 }');
    const timesteps = positiveInt(options.timesteps ?? 1000, 'timesteps');
    const attrChannels = model.attribute('channels');
    const resolved = {
      imageSize: positiveInt(options.imageSize, 'imageSize'),
      channels: positiveInt(options.channels ?? (typeof attrChannels === 'number' ? attrChannels : 3), 'channels'),
      timesteps,
      samplingTimesteps: positiveInt(options.samplingTimesteps ?? timesteps, 'samplingTimesteps'),
      objective: options.objective ?? 'pred_noise',
      betaSchedule: options.betaSchedule ?? 'sigmoid',
      scheduleFnKwargs: { ...(options.scheduleFnKwargs ?? {}) },
      ddimSamplingEta: nonNegative(options.ddimSamplingEta ?? 0, 'ddimSamplingEta'),
      autoNormalize: options.autoNormalize ?? true,
      clipDenoised: options.clipDenoised ?? true,
      clipAfterGuidance: options.clipAfterGuidance ?? false,
      ...(options.autocast !== undefined ? { autocast: options.autocast } : {}),
    };
    if (resolved.samplingTimesteps > timesteps) {
      throw new RangeError(`samplingTimesteps (${resolved.samplingTimesteps}) cannot exceed timesteps (${timesteps})`);
    }
    this.model = model;
    this.native = binding.createDiffusion(model.native, { ...resolved, device: options.device, cudaGraph: options.cudaGraph });
    // The native side picks the device (the option, else where the model's weights are) and
    // whether to use CUDA graphs there.
    this.options = { ...resolved, device: this.native.device(), cudaGraph: this.native.cudaGraph() };
  }

  /**
   * A shipped model: GaussianDiffusion.pretrained('fashion-mnist') returns { diffusion,
   * classifier, classNames, meta }. Defined in lib/pretrained.ts.
   */
  static pretrained: (name?: string, options?: { samplingTimesteps?: number; ddimSamplingEta?: number }) => import('./pretrained').Pretrained;

  /** True when sample() takes DDIM steps (samplingTimesteps < timesteps). */
  get isDdimSampling(): boolean {
    return this.options.samplingTimesteps < this.options.timesteps;
  }

  /**
   * Draws batchSize images in [0, 1] (with autoNormalize). Runs on a thread of its own; the
   * event loop stays free. With torch.manualSeed(s) first, the noise is the reference's.
   */
  sample<K>(options: SampleOptions<K> = {}): Promise<Tensor> {
    let handle: { promise: Promise<Tensor>; cancel(): void };
    const signal = options.signal;
    try {
      if (signal?.aborted) return Promise.reject(abortError('sample() was aborted before it started'));
      const batchSize = positiveInt(options.batchSize ?? 16, 'batchSize');
      const condInput = options.condFnInput ?? 'mean';
      if (condInput !== 'mean' && condInput !== 'x') throw new TypeError(`condFnInput must be 'mean' or 'x'; got '${String(condInput)}'`);
      const request: NativeSampleRequest = { batchSize, returnAllTimesteps: options.returnAllTimesteps ?? false, condInput };
      if (options.seed !== undefined) request.seed = options.seed;
      if (options.stepTimeoutMs !== undefined) request.stepTimeoutMs = positiveInt(options.stepTimeoutMs, 'stepTimeoutMs');
      const condFn = options.condFn;
      if (condFn !== undefined && typeof condFn !== 'function') throw new TypeError(`Expected a function for condFn but received ${typeof condFn}`);
      if (condFn === classifierGuidance) {
        checkClassifierKwargs(options.guidanceKwargs, batchSize);
        const k = options.guidanceKwargs;
        request.classifierGuidance = { classifier: k.classifier.native, y: k.y, classifierScale: k.classifierScale ?? 1 };
      } else if (condFn) {
        if (condFn === (classifierCondFn as unknown)) checkClassifierKwargs(options.guidanceKwargs, batchSize);
        const kwargs = options.guidanceKwargs as K;
        request.condFn = (x: Tensor, t: Tensor) => condFn(x, t, kwargs);
      }
      const onProgress = options.onProgress;
      if (onProgress) request.onProgress = (step, total, t) => onProgress({ step: step + 1, total, t });
      handle = this.native.sample(request);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!signal) return handle.promise;
    const onAbort = (): void => handle.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    return handle.promise.finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise (x0 in [-1, 1]). */
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.native.qSample(x0, t, noise);
  }

  /** The training loss of the reference's p_losses for x0 in [-1, 1], with this objective. */
  pLosses(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.native.pLosses(x0, t, noise);
  }

  /** One model call as the sampler makes it: predicted noise and (clipped) x0. */
  predict(x: Tensor, t: Tensor): { eps: Tensor; x0: Tensor } {
    return this.native.predict(x, t);
  }

  /** The schedule's buffers (betas, alphasCumprod, posterior coefficients ...), float32 (T,). */
  schedule(): Record<string, Tensor> {
    return this.native.schedule();
  }
}
