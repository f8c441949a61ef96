// Training from TypeScript: the native loops (Adam/AdamW, gradient clipping, EMA, periodic
// checkpoints, resume) on a worker thread, and the Fashion-MNIST loader.
import { binding } from './binding';
import { BetaSchedule, checkSeed, checkTimesteps, Objective } from './diffusion';
import { Module } from './module';
import { checkOptionKeys, KeysOf } from './option-keys';
import { Tensor } from './tensor';

export interface TrainProgress {
  /** Optimizer steps done so far (counting a resumed run's earlier steps). */
  step: number;
  total: number;
  loss: number;
}

export interface TrainOptions {
  /** Training images, float [N, C, H, W] in [-1, 1]. */
  data: Tensor;
  /** The step count to reach (a resumed run continues from its saved step). */
  steps: number;
  /** Default 64. */
  batchSize?: number;
  /** Adam learning rate; default 2e-4. */
  lr?: number;
  /** > 0: AdamW with this decoupled weight decay; default 0 (Adam). */
  weightDecay?: number;
  /** Max global gradient norm; <= 0 turns clipping off; default 1. */
  gradClip?: number;
  /** EMA decay of the weights; default 0.995. */
  emaDecay?: number;
  emaEvery?: number;
  /** With checkpointPath: write the EMA model (TorchScript) and the training state every N steps. */
  checkpointEvery?: number;
  checkpointPath?: string;
  /**
   * Continue from a checkpoint written by checkpointPath (its .state file beside it): its
   * weights, EMA, optimizer, step and generator go into the model passed, which must have the
   * checkpoint's parameter names and shapes (the first that differs is named).
   */
  resumeFrom?: string;
  /** The trainer's own generator: batches, timesteps and noise. Default 0. */
  seed?: number;
  /** meanLoss is over the last lossWindow steps; default 100. */
  lossWindow?: number;
  /** Draw t from [0, maxTimestep] only; 0 trains on (nearly) clean images. Default: all timesteps. */
  maxTimestep?: number;
  /** Diffusion schedule, as GaussianDiffusion's options. */
  timesteps?: number;
  betaSchedule?: BetaSchedule;
  scheduleFnKwargs?: { s?: number; start?: number; end?: number; tau?: number };
  /**
   * Data-parallel over the default process group (torch.distributed.initProcessGroup):
   * batchSize is per rank; every rank draws the global batch from the shared seed and keeps
   * its slice, gradients are averaged, rank 0's weights are copied to all at the start, and
   * only rank 0 writes checkpoints. N ranks of batch b train as one process of batch N*b.
   */
  distributed?: boolean;
  /**
   * Run each step's forward (model and loss) under autocast in this dtype, on the CPU as on
   * CUDA; backward follows it, and the weights, gradients, Adam moments and EMA stay float32.
   * Default: float32 throughout.
   */
  autocast?: 'bfloat16' | 'float16';
  onProgress?: (progress: TrainProgress) => void;
  /** Aborting ends the run after the current step; the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface DiffusionTrainOptions extends TrainOptions {
  objective?: Objective;
  /**
   * Class of each image (int64 [N]) for a class-conditional model (forward(x, t, y): a Unet
   * built with numClasses, openai's UNetModel with numClasses).
   */
  labels?: Tensor;
  /**
   * Classifier-free guidance's label dropout (Ho & Salimans; lucidrains' cond_drop_prob): each
   * image's label is replaced by the null class with this probability, in [0, 1). Needs labels.
   */
  condDropProb?: number;
  /** The label of "no class"; default the model's null_class (a Unet built with numClasses has one). */
  nullClass?: number;
  /** Min-SNR loss weighting (gamma 5 by default). */
  minSnrLossWeight?: boolean;
  minSnrGamma?: number;
}

export interface ClassifierTrainOptions extends TrainOptions {
  /** Class of each image: int64 [N]. */
  labels: Tensor;
  /**
   * A plain classifier of clean images: t = 0 and the images as they are, without the noise
   * that q_sample adds even at t = 0 (maxTimestep 0). Default false (noise-aware).
   */
  clean?: boolean;
}

export interface TrainResult {
  /** The module passed, trained in place. */
  model: Module;
  /** The EMA copy, in eval mode: use it for sampling. */
  ema: Module;
  steps: number;
  stepsRun: number;
  finalLoss: number;
  meanLoss: number;
  losses: Float64Array;
  /** Classifier runs: accuracy on the noisy training batches. */
  finalAccuracy: number;
  meanAccuracy: number;
}

interface NativeTrainResult extends Omit<TrainResult, 'model' | 'ema'> {
  model: Module['native'];
  ema: Module['native'];
}

type Start = (model: Module['native'], options: object, onProgress: (step: number, total: number, loss: number) => void) => {
  promise: Promise<NativeTrainResult>;
  cancel(): void;
};

const TRAIN_KEYS: KeysOf<TrainOptions> = {
  data: true, steps: true, batchSize: true, lr: true, weightDecay: true, gradClip: true, emaDecay: true, emaEvery: true,
  checkpointEvery: true, checkpointPath: true, resumeFrom: true, seed: true, lossWindow: true, maxTimestep: true, timesteps: true,
  betaSchedule: true, scheduleFnKwargs: true, distributed: true, autocast: true, onProgress: true, signal: true,
};
const DIFFUSION_TRAIN_KEYS: KeysOf<DiffusionTrainOptions> = {
  ...TRAIN_KEYS, objective: true, minSnrLossWeight: true, minSnrGamma: true, labels: true, condDropProb: true, nullClass: true,
};
const CLASSIFIER_TRAIN_KEYS: KeysOf<ClassifierTrainOptions> = { ...TRAIN_KEYS, labels: true, clean: true };

function run<O extends TrainOptions>(start: Start, model: Module, options: O, who: string, keys: KeysOf<O>): Promise<TrainResult> {
  if (!(model instanceof Module)) return Promise.reject(new TypeError('train: expected a Module to train'));
  if (!(options?.data instanceof Tensor)) return Promise.reject(new TypeError('train: options.data must be a Tensor of images'));
  if (options.signal?.aborted) return Promise.reject(Object.assign(new Error('training was aborted'), { name: 'AbortError' }));
  const { onProgress, signal, ...rest } = options;
  let handle: ReturnType<Start>;
  try {
    checkOptionKeys<O>(who, options, keys);
    if (rest.timesteps !== undefined) checkTimesteps(rest.timesteps);
    if (rest.seed !== undefined) checkSeed(rest.seed);  // the same rule and message as sample()
    handle = start(model.native, rest, (step, total, loss) => onProgress?.({ step, total, loss }));
  } catch (err) {
    return Promise.reject(err);
  }
  const onAbort = (): void => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  return handle.promise
    .then((r) => ({ ...r, model, ema: new Module(r.ema) }))
    .finally(() => signal?.removeEventListener('abort', onAbort));
}

/** Trains a diffusion model (forward(x, t)) with the reference's p_losses. */
export function trainDiffusion(model: Module, options: DiffusionTrainOptions): Promise<TrainResult> {
  return run(binding.trainDiffusion as unknown as Start, model, options, 'trainDiffusion', DIFFUSION_TRAIN_KEYS);
}

/** Trains a noise-aware classifier: cross-entropy on q_sample(x0, t) at random t (clean: on x0 at t = 0). */
export function trainClassifier(classifier: Module, options: ClassifierTrainOptions): Promise<TrainResult> {
  if (!(options?.labels instanceof Tensor)) return Promise.reject(new TypeError('trainClassifier: options.labels must be an int64 Tensor'));
  return run(binding.trainClassifier as unknown as Start, classifier, options, 'trainClassifier', CLASSIFIER_TRAIN_KEYS);
}

export interface FashionMnist {
  /** float32 [N, 1, S, S] in [-1, 1] (S = 28, or padTo). */
  images: Tensor;
  /** int64 [N] */
  labels: Tensor;
  classNames: string[];
}

/**
 * Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist
 * (/usr/share/datasets/fashion-mnist by default; apt-get install dataset-fashion-mnist).
 */
export function loadFashionMnist(options: { dir?: string; train?: boolean; limit?: number; padTo?: number } = {}): FashionMnist {
  return binding.loadFashionMnist(options);
}
