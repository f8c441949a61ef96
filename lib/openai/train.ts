// openai/guided-diffusion's TrainLoop (train_util.py) step by step: their train flags, AdamW,
// microbatches, EMA copies per rate, lr annealing, and the keys their logger gets. The step
// runs natively (native/diffusion/openai_train_step.h); this file only reads the flags.
import { NativeOpenaiTrainer } from '../binding';
import { GaussianDiffusion } from '../diffusion';
import { toBool } from './diffusion';
import { checkKeyList, checkOptionKeys } from '../option-keys';
import { ScheduleSamplerName } from '../schedule-sampler';
import { distributedFlag, flagNumber, snakeCase } from './options';
import { abortedError, LoopHandle, LoopOptionsBase, loopSettings, RunLoopResult, settleLoop, TrainBatch } from './run-loop';
export type { RunLoopResult, TrainBatch } from './run-loop';
import { Tensor } from '../tensor';

/** image_train.py's train flags (snake_case as their README, or camelCase). */
export interface OpenAITrainFlags {
  /** Default 1e-4. */
  lr?: number | string;
  /** AdamW's decoupled weight decay; default 0. */
  weight_decay?: number | string;
  /** > 0: the lr falls linearly to 0 over this many steps; default 0 (constant). */
  lr_anneal_steps?: number | string;
  /** Default 1. */
  batch_size?: number | string;
  /** Gradient accumulation over chunks of this size (-1: the whole batch); default -1. */
  microbatch?: number | string;
  /** EMA rates, "0.9999,0.999" or a number; default "0.9999". */
  ema_rate?: string | number;
  /** 'uniform' (default) or 'loss-second-moment'. */
  schedule_sampler?: ScheduleSamplerName;
  /** Seed of the generator that draws timesteps and noise when a step is not given them; default 0. */
  seed?: number | string;
  /**
   * Their resume_checkpoint: a model{N}.pt file; its weights are loaded, N (from the name, as
   * their parse_resume_step_from_filename) continues the step count, and when N is not 0 the
   * optimizer (opt{N}.pt) and each rate's EMA (ema_{rate}_{N}.pt) beside it are loaded when there.
   */
  resume_checkpoint?: string;
  /** runLoop dumps their logger every this many steps; default 10. */
  log_interval?: number | string;
  /** runLoop saves every this many steps (and at its end); default 10000. */
  save_interval?: number | string;
  /**
   * Not theirs (their DDP): train data-parallel over the default process group
   * (distributed.initProcessGroup). Each rank steps on its own batch, gradients are averaged
   * over the ranks before AdamW, the first step starts from rank 0's weights, and only rank 0
   * saves; default false.
   */
  distributed?: boolean;
  /**
   * Their use_fp16 (fp16_util.MixedPrecisionTrainer): float32 master weights stepped by AdamW,
   * the loss times 2**lg_loss_scale (from 20) before backward, and a step whose gradients
   * overflow skipped (no AdamW, no EMA; step, lr annealing and logs go on) with lg_loss_scale
   * lowered by 1, else the gradients unscaled and lg_loss_scale raised by fp16_scale_growth.
   * The model runs as built: give it float16 convolutions with UNetModel's useFp16 (their
   * convert_to_fp16), and start it with resume_checkpoint so that the masters take the file's
   * float32 weights (as theirs), not the float16 model's. Logs lg_loss_scale. Default false.
   */
  use_fp16?: boolean | string;
  /** lg_loss_scale's rise after each step taken with use_fp16; default 1e-3. */
  fp16_scale_growth?: number | string;
}

const FLAGS = ['lr', 'weight_decay', 'lr_anneal_steps', 'batch_size', 'microbatch', 'ema_rate', 'schedule_sampler', 'seed', 'resume_checkpoint', 'log_interval', 'save_interval', 'distributed', 'use_fp16', 'fp16_scale_growth'];
const num = flagNumber;

/** The train flags with their defaults (their create_argparser's), keys snake_case. */
export function trainFlags(flags: OpenAITrainFlags = {}): { lr: number; weight_decay: number; lr_anneal_steps: number; batch_size: number; microbatch: number; ema_rate: number[]; schedule_sampler: ScheduleSamplerName; seed: number; resume_checkpoint: string; log_interval: number; save_interval: number; distributed: boolean; use_fp16: boolean; fp16_scale_growth: number } {
  if (flags === null || typeof flags !== 'object') throw new TypeError('TrainLoop: expected a flags object such as { lr: 1e-4 }');
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) raw[snakeCase(key)] = value;
  checkKeyList('TrainLoop', raw, FLAGS);
  const rates = typeof raw.ema_rate === 'number' ? [raw.ema_rate] : String(raw.ema_rate ?? '0.9999').split(',').map((r) => num(r, 'ema_rate', false));
  const sampler = (raw.schedule_sampler ?? 'uniform') as ScheduleSamplerName;
  const resume = raw.resume_checkpoint ?? '';
  if (typeof resume !== 'string') throw new TypeError(`resume_checkpoint must be a path (a string); got ${String(resume)}`);
  if (sampler !== 'uniform' && sampler !== 'loss-second-moment') throw new TypeError(`schedule_sampler must be 'uniform' or 'loss-second-moment'; got '${String(sampler)}'`);
  return {
    lr: num(raw.lr ?? 1e-4, 'lr', false),
    weight_decay: num(raw.weight_decay ?? 0, 'weight_decay', false),
    lr_anneal_steps: num(raw.lr_anneal_steps ?? 0, 'lr_anneal_steps', true),
    batch_size: num(raw.batch_size ?? 1, 'batch_size', true),
    microbatch: num(raw.microbatch ?? -1, 'microbatch', true),
    ema_rate: rates,
    schedule_sampler: sampler,
    seed: num(raw.seed ?? 0, 'seed', true),
    resume_checkpoint: resume,
    log_interval: num(raw.log_interval ?? 10, 'log_interval', true),
    save_interval: num(raw.save_interval ?? 10000, 'save_interval', true),
    distributed: distributedFlag(raw.distributed),
    use_fp16: toBool(raw.use_fp16 ?? false, 'use_fp16'),
    fp16_scale_growth: num(raw.fp16_scale_growth ?? 1e-3, 'fp16_scale_growth', false),
  };
}

export interface RunStepOptions {
  /** Class labels (int64 (B,)) of a class-conditional model. */
  y?: Tensor;
  /** The step's timesteps (int64 (B,)) and loss weights (B,), instead of the schedule sampler's draw. */
  t?: Tensor;
  weights?: Tensor;
  /** The noise of x_t, instead of a draw. */
  noise?: Tensor;
}

export interface RunLoopOptions extends LoopOptionsBase {
  /** Training images, float [N, C, H, W] in [-1, 1]; batches of the flags' batch_size are drawn from them. */
  data?: Tensor;
  /**
   * Instead of data: the batches themselves, from an iterable or async iterable (a generator
   * reading files, say), taken as they come, at most two ahead of the loop; the run ends when it
   * ends. The tensors must stay alive until the loop has taken them.
   */
  batches?: Iterable<TrainBatch> | AsyncIterable<TrainBatch>;
  /** Class labels, int64 [N], of a class-conditional model. */
  labels?: Tensor;
}

/**
 * Their TrainLoop over a GaussianDiffusion of createGaussianDiffusion (its model is trained in
 * place, with the diffusion's lossType). runStep is one synchronous step of their run_step.
 */
export class TrainLoop {
  readonly flags: ReturnType<typeof trainFlags>;
  private readonly native: NativeOpenaiTrainer;

  constructor(diffusion: GaussianDiffusion, flags: OpenAITrainFlags = {}) {
    if (!(diffusion instanceof GaussianDiffusion)) throw new TypeError('TrainLoop: expected a GaussianDiffusion (openai.createGaussianDiffusion)');
    this.flags = trainFlags(flags);
    const f = this.flags;
    this.native = diffusion.openaiTrainer({
      lr: f.lr, weightDecay: f.weight_decay, lrAnnealSteps: f.lr_anneal_steps, microbatch: f.microbatch, emaRate: f.ema_rate,
      scheduleSampler: f.schedule_sampler, lossType: diffusion.options.lossType, seed: f.seed, resumeCheckpoint: f.resume_checkpoint,
      distributed: f.distributed, useFp16: f.use_fp16, fp16ScaleGrowth: f.fp16_scale_growth,
    });
  }

  /** One step on a batch in [-1, 1]; returns what their logger gets (loss, mse, vb, their _q0.._q3, grad_norm, param_norm, step, samples). */
  runStep(batch: Tensor, options: RunStepOptions = {}): Record<string, number> {
    if (options === null || typeof options !== 'object') throw new TypeError('runStep: expected an options object such as { y }');
    checkOptionKeys<RunStepOptions>('runStep', options, { y: true, t: true, weights: true, noise: true });
    return this.native.runStep(batch, options.y, options.t, options.weights, options.noise);
  }

  /** The EMA weights of the i-th rate of ema_rate, by parameter name (new tensors: dispose them). */
  emaParameters(index: number): Record<string, Tensor> {
    return this.native.emaParameters(index);
  }

  /**
   * Their run_loop, natively on a thread of its own: batches drawn from data (reshuffled each
   * pass, the last partial batch dropped, random flips), a step each, their logger dumped every
   * logInterval steps (their self.step % log_interval == 0, so after the first step too) and
   * their save() every saveInterval steps and at the end unless the last step saved; the run
   * ends at lr_anneal_steps (counting resumed steps), after `steps`, or on abort (no end save).
   * Checkpoints are numbered as theirs: a save during the run after step k (from 0) is N = k,
   * the save at the end N = the steps taken.
   */
  runLoop(options: RunLoopOptions): Promise<RunLoopResult> {
    if (options === null || typeof options !== 'object') return Promise.reject(new TypeError('runLoop: expected an options object such as { data, steps }'));
    if (options.signal?.aborted) return Promise.reject(abortedError());
    let handle: LoopHandle;
    try {
      checkOptionKeys<RunLoopOptions>('runLoop', options, {
        data: true, batches: true, labels: true, steps: true, logInterval: true, saveInterval: true, outDir: true, randomFlip: true, onLog: true, onSave: true, signal: true,
      });
      if ((options.data === undefined) === (options.batches === undefined)) throw new TypeError('runLoop: give either data (a Tensor of images) or batches (an iterable of { batch, y })');
      if (options.data !== undefined && !(options.data instanceof Tensor)) throw new TypeError('runLoop: options.data must be a Tensor of images [N, C, H, W]');
      if (options.labels !== undefined && !(options.labels instanceof Tensor)) throw new TypeError('runLoop: options.labels must be an int64 Tensor [N]');
      if (options.batches !== undefined && options.labels !== undefined) throw new TypeError('runLoop: with batches, labels come in each batch as y');
      handle = this.native.runLoop(options.data, options.labels, loopSettings(options, this.flags), (log) => options.onLog?.(log), (s) => options.onSave?.(s));
    } catch (err) {
      return Promise.reject(err);
    }
    return settleLoop(handle, options.signal, options.batches);
  }

  /** Steps taken by this loop (their self.step; a resumed run starts again at 0). */
  get step(): number {
    return this.native.step();
  }

  /** Their mp_trainer.lg_loss_scale: the next step's loss scale, log2 (with use_fp16). */
  get lgLossScale(): number {
    return this.native.lgLossScale();
  }

  /** The step a resumed run started from (their resume_step, from the checkpoint's name; else 0). */
  get resumeStep(): number {
    return this.native.resumeStep();
  }

  /**
   * Their save() into dir: model{N}.pt, ema_{rate}_{N}.pt per rate and opt{N}.pt (torch.save files
   * their TrainLoop resumes from), N = step + resumeStep as six digits. Returns the paths written.
   */
  save(dir: string): string[] {
    if (typeof dir !== 'string' || dir === '') throw new TypeError(`TrainLoop.save: expected a folder path but received ${JSON.stringify(dir)}`);
    return this.native.save(dir);
  }
}
