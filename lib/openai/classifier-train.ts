// openai/guided-diffusion's scripts/classifier_train.py step by step: their train flags, the
// noised inputs (t from the schedule sampler, q_sample), cross entropy, AdamW with their
// anneal_lr, microbatches, and the keys their logger gets. The step runs natively
// (native/diffusion/openai_classifier_step.h); this file only reads the flags.
import { NativeOpenaiClassifierTrainer } from '../binding';
import { GaussianDiffusion } from '../diffusion';
import { Module } from '../module';
import { checkKeyList, checkOptionKeys } from '../option-keys';
import { ScheduleSamplerName } from '../schedule-sampler';
import { flagNumber, snakeCase } from './options';
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
  /** Seed of the generator that draws t and noise when a step is not given them; default 0. */
  seed?: number | string;
}

const FLAGS = ['lr', 'weight_decay', 'batch_size', 'microbatch', 'noised', 'iterations', 'anneal_lr', 'schedule_sampler', 'seed'];
const num = flagNumber;

// Their str2bool: yes/true/t/y/1 and no/false/f/n/0.
function bool(value: unknown, flag: string): boolean {
  if (typeof value === 'boolean') return value;
  const s = String(value).toLowerCase();
  if (['yes', 'true', 't', 'y', '1'].includes(s)) return true;
  if (['no', 'false', 'f', 'n', '0'].includes(s)) return false;
  throw new TypeError(`${flag}: expected a boolean but received ${String(value)}`);
}

/** The flags with their create_argparser's defaults, keys snake_case. */
export function classifierTrainFlags(flags: ClassifierTrainFlags = {}): { lr: number; weight_decay: number; batch_size: number; microbatch: number; noised: boolean; iterations: number; anneal_lr: boolean; schedule_sampler: ScheduleSamplerName; seed: number } {
  if (flags === null || typeof flags !== 'object') throw new TypeError('ClassifierTrainLoop: expected a flags object such as { lr: 3e-4 }');
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) raw[snakeCase(key)] = value;
  checkKeyList('ClassifierTrainLoop', raw, FLAGS);
  const sampler = (raw.schedule_sampler ?? 'uniform') as ScheduleSamplerName;
  if (sampler !== 'uniform' && sampler !== 'loss-second-moment') throw new TypeError(`schedule_sampler must be 'uniform' or 'loss-second-moment'; got '${String(sampler)}'`);
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
  };
}

export interface ClassifierStepOptions {
  /** The step's timesteps (int64 (B,)) instead of the schedule sampler's draw (noised only). */
  t?: Tensor;
  /** The noise of x_t instead of a draw (noised only). */
  noise?: Tensor;
}

/**
 * classifier_train.py's loop over an openai EncoderUNetModel (trained in place) with the
 * schedule of a GaussianDiffusion (openai.createGaussianDiffusion). runStep is one synchronous
 * step (their forward_backward_log on the train batch and mp_trainer.optimize); evaluate is
 * their val pass.
 */
export class ClassifierTrainLoop {
  readonly flags: ReturnType<typeof classifierTrainFlags>;
  private readonly native: NativeOpenaiClassifierTrainer;

  constructor(classifier: Module, diffusion: GaussianDiffusion, flags: ClassifierTrainFlags = {}) {
    if (!(classifier instanceof Module)) throw new TypeError('ClassifierTrainLoop: expected a classifier Module (openai.EncoderUNetModel) first');
    if (!(diffusion instanceof GaussianDiffusion)) throw new TypeError('ClassifierTrainLoop: expected a GaussianDiffusion (openai.createGaussianDiffusion) second');
    this.flags = classifierTrainFlags(flags);
    const f = this.flags;
    this.native = diffusion.openaiClassifierTrainer(classifier, {
      lr: f.lr, weightDecay: f.weight_decay, microbatch: f.microbatch, noised: f.noised, iterations: f.iterations,
      annealLr: f.anneal_lr, scheduleSampler: f.schedule_sampler, seed: f.seed,
    });
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

  /** Steps taken (their step). */
  get step(): number {
    return this.native.step();
  }

  /**
   * Their save_model into dir after the steps taken: model{N}.pt (the classifier's state dict)
   * and opt{N}.pt (AdamW's state_dict), N = the last step's index as six digits (their loop
   * variable: 000001 after two steps). Returns the paths written.
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
