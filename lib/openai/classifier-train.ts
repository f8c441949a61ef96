// openai/guided-diffusion's scripts/classifier_train.py step by step: their train flags, the
// noised inputs (t from the schedule sampler, q_sample), cross entropy, AdamW with their
// anneal_lr, microbatches, the keys their logger gets, their main loop (runLoop) and
// resume_checkpoint. The step and the loop run natively (native/diffusion/openai_classifier_step.h,
// openai_classifier_loop.h); this file only reads the flags.
import { binding, NativeOpenaiClassifierTrainer } from '../binding';
import { GaussianDiffusion } from '../diffusion';
import { Module } from '../module';
import { checkKeyList, checkOptionKeys } from '../option-keys';
import { ScheduleSamplerName } from '../schedule-sampler';
import { diffusionFlags, OpenAIDiffusionFlags } from './diffusion';
import { distributedFlag, flagNumber, snakeCase } from './options';
import { abortedError, LoopOptionsBase, loopInt, loopSettings, RunLoopResult, settleLoop } from './run-loop';
import { Tensor } from '../tensor';

/** classifier_train.py's train flags (snake_case as their README, or camelCase). */
export interface ClassifierTrainFlags {
  /** Default 3e-4. */
  lr?: number | string;
  /** AdamW's decoupled weight decay; default 0. */
  weight_decay?: number | string;
  /** Their batch_size (runStep takes any batch; kept for their samples count); default 4. */
  batch_size?: number | string;
  /** Gradient accumulation over chunks of this size (-1: the whole batch); default -1. */
  microbatch?: number | string;
  /** Train on x_t = q_sample(x, t) at t from the schedule sampler (default true); false: on x at t = 0. */
  noised?: boolean | string;
  /** Their iterations: the denominator of anneal_lr; default 150000. */
  iterations?: number | string;
  /** lr * (1 - step / iterations) before each step; default false. */
  anneal_lr?: boolean | string;
  /** 'uniform' (default) or 'loss-second-moment'. */
  schedule_sampler?: ScheduleSamplerName;
  /** Seed of the generator that draws t and noise when a step is not given them, and runLoop's batches; default 0. */
  seed?: number | string;
  /**
   * Their resume_checkpoint: a model{N}.pt file whose weights are loaded, N (from the name, as
   * their parse_resume_step_from_filename) continuing the step count, and opt{N}.pt beside it
   * loaded into AdamW when there (theirs requires it; here a missing one starts AdamW fresh).
   */
  resume_checkpoint?: string;
  /** runLoop dumps their logger every this many steps; default 10. */
  log_interval?: number | string;
  /** runLoop runs a val batch every this many steps (with evalData); default 5. */
  eval_interval?: number | string;
  /** runLoop saves every this many steps (not at step 0) and at its end; default 10000. */
  save_interval?: number | string;
  /**
   * Their classifier_use_fp16: their MixedPrecisionTrainer from lg_loss_scale 16, growth 1e-3
   * (see OpenAITrainFlags.use_fp16); the classifier runs as built (EncoderUNetModel's useFp16
   * gives float16 convolutions). Logs lg_loss_scale. Default false.
   */
  classifier_use_fp16?: boolean | string;
  /**
   * Not theirs (their DDP): train data-parallel over the default process group
   * (distributed.initProcessGroup), as TrainLoop's distributed: each rank steps on its own batch,
   * gradients averaged over the ranks before AdamW, the first step from rank 0's weights, only
   * rank 0 saving; default false.
   */
  distributed?: boolean;
}

const FLAGS = ['lr', 'weight_decay', 'batch_size', 'microbatch', 'noised', 'iterations', 'anneal_lr', 'schedule_sampler', 'seed', 'resume_checkpoint', 'log_interval', 'eval_interval', 'save_interval', 'classifier_use_fp16', 'distributed'];
const num = flagNumber;
// create_classifier_and_diffusion's diffusion flags (image_size is the classifier's, and passes).
const DIFFUSION_FLAGS = ['diffusion_steps', 'learn_sigma', 'sigma_small', 'noise_schedule', 'use_kl', 'predict_xstart', 'rescale_timesteps', 'rescale_learned_sigmas', 'timestep_respacing', 'image_size'];

// Their str2bool: yes/true/t/y/1 and no/false/f/n/0.
function bool(value: unknown, flag: string): boolean {
  if (typeof value === 'boolean') return value;
  const s = String(value).toLowerCase();
  if (['yes', 'true', 't', 'y', '1'].includes(s)) return true;
  if (['no', 'false', 'f', 'n', '0'].includes(s)) return false;
  throw new TypeError(`${flag}: expected a boolean but received ${String(value)}`);
}

/** The flags with their create_argparser's defaults, keys snake_case. */
export function classifierTrainFlags(flags: ClassifierTrainFlags = {}): {
  lr: number; weight_decay: number; batch_size: number; microbatch: number; noised: boolean; iterations: number; anneal_lr: boolean;
  schedule_sampler: ScheduleSamplerName; seed: number; resume_checkpoint: string; log_interval: number; eval_interval: number; save_interval: number;
  classifier_use_fp16: boolean; distributed: boolean;
} {
  if (flags === null || typeof flags !== 'object') throw new TypeError('ClassifierTrainLoop: expected a flags object such as { lr: 3e-4 }');
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) raw[snakeCase(key)] = value;
  checkKeyList('ClassifierTrainLoop', raw, FLAGS);
  const sampler = (raw.schedule_sampler ?? 'uniform') as ScheduleSamplerName;
  if (sampler !== 'uniform' && sampler !== 'loss-second-moment') throw new TypeError(`schedule_sampler must be 'uniform' or 'loss-second-moment'; got '${String(sampler)}'`);
  const resume = raw.resume_checkpoint ?? '';
  if (typeof resume !== 'string') throw new TypeError(`resume_checkpoint must be a path (a string); got ${String(resume)}`);
  const positive = (value: unknown, flag: string): number => {
    const n = num(value, flag, true);
    if (n < 1) throw new RangeError(`${flag} must be >= 1; got ${n}`);
    return n;
  };
  return {
    lr: num(raw.lr ?? 3e-4, 'lr', false),
    weight_decay: num(raw.weight_decay ?? 0, 'weight_decay', false),
    batch_size: num(raw.batch_size ?? 4, 'batch_size', true),
    microbatch: num(raw.microbatch ?? -1, 'microbatch', true),
    noised: bool(raw.noised ?? true, 'noised'),
    iterations: num(raw.iterations ?? 150000, 'iterations', true),
    anneal_lr: bool(raw.anneal_lr ?? false, 'anneal_lr'),
    schedule_sampler: sampler,
    seed: num(raw.seed ?? 0, 'seed', true),
    resume_checkpoint: resume,
    log_interval: positive(raw.log_interval ?? 10, 'log_interval'),
    eval_interval: positive(raw.eval_interval ?? 5, 'eval_interval'),
    save_interval: positive(raw.save_interval ?? 10000, 'save_interval'),
    classifier_use_fp16: bool(raw.classifier_use_fp16 ?? false, 'classifier_use_fp16'),
    distributed: distributedFlag(raw.distributed),
  };
}

export interface ClassifierStepOptions {
  /** The step's timesteps (int64 (B,)) instead of the schedule sampler's draw (noised only). */
  t?: Tensor;
  /** The noise of x_t instead of a draw (noised only). */
  noise?: Tensor;
}

export interface ClassifierRunLoopOptions extends LoopOptionsBase {
  /** Training images, float [N, C, H, W] in [-1, 1]; batches of the flags' batch_size are drawn from them. */
  data: Tensor;
  /** Their class labels, int64 [N]. */
  labels: Tensor;
  /** Held-out images and labels (their val_data_dir): a val batch every evalInterval steps. */
  evalData?: Tensor;
  evalLabels?: Tensor;
  /** Default: the flags' eval_interval. */
  evalInterval?: number;
}

/**
 * classifier_train.py's loop over an openai EncoderUNetModel (trained in place) with the
 * schedule of a GaussianDiffusion (openai.createGaussianDiffusion), or of their diffusion flags
 * ({ diffusion_steps, noise_schedule, timestep_respacing, ... }) given instead. runStep is one
 * synchronous step (their forward_backward_log on the train batch and mp_trainer.optimize);
 * evaluate is their val pass; runLoop their main loop.
 */
export class ClassifierTrainLoop {
  readonly flags: ReturnType<typeof classifierTrainFlags>;
  private readonly native: NativeOpenaiClassifierTrainer;

  constructor(classifier: Module, diffusion: GaussianDiffusion | OpenAIDiffusionFlags, flags: ClassifierTrainFlags = {}) {
    if (!(classifier instanceof Module)) throw new TypeError('ClassifierTrainLoop: expected a classifier Module (openai.EncoderUNetModel) first');
    if (diffusion === null || typeof diffusion !== 'object') {
      throw new TypeError('ClassifierTrainLoop: expected a GaussianDiffusion (openai.createGaussianDiffusion) or their diffusion flags ({ diffusion_steps, noise_schedule }) second');
    }
    this.flags = classifierTrainFlags(flags);
    const f = this.flags;
    const options = {
      lr: f.lr, weightDecay: f.weight_decay, microbatch: f.microbatch, noised: f.noised, iterations: f.iterations,
      annealLr: f.anneal_lr, scheduleSampler: f.schedule_sampler, seed: f.seed, resumeCheckpoint: f.resume_checkpoint,
      useFp16: f.classifier_use_fp16, distributed: f.distributed,
    };
    if (diffusion instanceof GaussianDiffusion) {
      this.native = diffusion.openaiClassifierTrainer(classifier, options);
    } else {
      // Only the schedule is used (their q_sample and the sampler's range): no diffusion model needed.
      const raw: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(diffusion)) raw[snakeCase(key)] = value;
      checkKeyList('ClassifierTrainLoop: diffusion flags', raw, DIFFUSION_FLAGS);
      const d = diffusionFlags(diffusion);
      this.native = binding.openaiClassifierTrainer(classifier.native, {
        timesteps: d.diffusion_steps, betaSchedule: d.noise_schedule, rescaleTimesteps: d.rescale_timesteps,
        ...(d.timestep_respacing !== '' ? { timestepRespacing: d.timestep_respacing } : {}),
      }, options);
    }
  }

  /**
   * One step on images [B, C, H, W] in [-1, 1] and labels y (int64 (B,)); returns what their
   * logger gets: train_loss, train_acc@1, train_acc@5 (5 classes or more) and their _q0.._q3,
   * grad_norm, param_norm, step, samples.
   */
  runStep(batch: Tensor, y: Tensor, options: ClassifierStepOptions = {}): Record<string, number> {
    return this.native.runStep(batch, y, ...this.draws('runStep', options));
  }

  /** Their val pass (eval mode, no gradient, no step): val_loss, val_acc@1, val_acc@5 and their _q0.._q3. */
  evaluate(batch: Tensor, y: Tensor, options: ClassifierStepOptions = {}): Record<string, number> {
    return this.native.evaluate(batch, y, ...this.draws('evaluate', options));
  }

  /**
   * Their main loop, natively on a thread of its own: a batch drawn from data for each step
   * (reshuffled each pass, the last partial batch dropped, random flips), a val batch from
   * evalData every evalInterval steps (their step % eval_interval == 0, so after the first step
   * too), their logger dumped every logInterval steps, save_model every saveInterval steps
   * (N = step + resumeStep, not at step 0) and after the last step (N = its index); the run ends
   * at the flags' iterations, after `steps`, or on abort (no end save).
   */
  runLoop(options: ClassifierRunLoopOptions): Promise<RunLoopResult> {
    if (options === null || typeof options !== 'object') return Promise.reject(new TypeError('runLoop: expected an options object such as { data, labels, steps }'));
    if (options.signal?.aborted) return Promise.reject(abortedError());
    let handle: ReturnType<NativeOpenaiClassifierTrainer['runLoop']>;
    try {
      checkOptionKeys<ClassifierRunLoopOptions>('runLoop', options, {
        data: true, labels: true, evalData: true, evalLabels: true, steps: true, logInterval: true, evalInterval: true, saveInterval: true,
        outDir: true, randomFlip: true, onLog: true, onSave: true, signal: true,
      });
      const tensors: [unknown, string, boolean][] = [[options.data, 'data', true], [options.labels, 'labels', true], [options.evalData, 'evalData', false], [options.evalLabels, 'evalLabels', false]];
      for (const [v, name, required] of tensors) {
        if ((required || v !== undefined) && !(v instanceof Tensor)) throw new TypeError(`runLoop: options.${name} must be a Tensor (${name.endsWith('abels') ? 'int64 class labels [N]' : 'images [N, C, H, W]'})`);
      }
      if ((options.evalData === undefined) !== (options.evalLabels === undefined)) throw new TypeError('runLoop: evalData and evalLabels go together');
      handle = this.native.runLoop(options.data, options.labels, options.evalData, options.evalLabels, {
        ...loopSettings(options, this.flags),
        evalInterval: loopInt(options.evalInterval ?? this.flags.eval_interval, 'evalInterval', 1),
      }, (log) => options.onLog?.(log), (s) => options.onSave?.(s));
    } catch (err) {
      return Promise.reject(err);
    }
    return settleLoop(handle, options.signal);
  }

  /** Steps taken by this loop (their loop variable; a resumed run starts again at 0). */
  get step(): number {
    return this.native.step();
  }

  /** Their mp_trainer.lg_loss_scale: the next step's loss scale, log2 (with classifier_use_fp16). */
  get lgLossScale(): number {
    return this.native.lgLossScale();
  }

  /** The step a resumed run started from (their resume_step, from the checkpoint's name; else 0). */
  get resumeStep(): number {
    return this.native.resumeStep();
  }

  /**
   * Their save_model into dir after the steps taken: model{N}.pt (the classifier's state dict)
   * and opt{N}.pt (AdamW's state_dict), N = the last step's index plus resumeStep as six digits
   * (their step + resume_step: 000001 after two steps). Returns the paths written.
   */
  save(dir: string): string[] {
    if (typeof dir !== 'string' || dir === '') throw new TypeError(`ClassifierTrainLoop.save: expected a folder path but received ${JSON.stringify(dir)}`);
    return this.native.save(dir);
  }

  private draws(who: string, options: ClassifierStepOptions): [Tensor | undefined, Tensor | undefined] {
    if (options === null || typeof options !== 'object') throw new TypeError(`${who}: expected an options object such as { t, noise }`);
    checkOptionKeys<ClassifierStepOptions>(who, options, { t: true, noise: true });
    return [options.t, options.noise];
  }
}
