// guided-diffusion train --openai "$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS" --data-dir imgs/
// --out-dir ckpts/: openai/guided-diffusion's image_train.py, the flag strings of their README
// taken as they are. Their logger's keys go to stderr every log_interval steps; their save()
// writes model/ema/opt files to --out-dir (their OPENAI_LOGDIR); resume_checkpoint resumes.
import { SingleBar } from 'cli-progress';
import { CliError } from './cli-util';
import { loadImageFolder } from './image-folder';
import * as dist from './distributed';
import { createGaussianDiffusion, toBool } from './openai/diffusion';
import { createModel, Flags, MODEL_FLAG_DEFAULTS, parseFlags } from './openai/flags';
import { RunLoopResult } from './openai/run-loop';
import { TrainLoop } from './openai/train';
import * as torch from './torch';

export const DIFFUSION_FLAGS = ['learn_sigma', 'diffusion_steps', 'noise_schedule', 'timestep_respacing', 'use_kl', 'predict_xstart', 'rescale_timesteps', 'rescale_learned_sigmas'];
// image_train.py's create_argparser, less the model and diffusion flags.
const TRAIN_FLAGS = ['data_dir', 'schedule_sampler', 'lr', 'weight_decay', 'lr_anneal_steps', 'batch_size', 'microbatch', 'ema_rate', 'log_interval', 'save_interval', 'resume_checkpoint', 'use_fp16', 'fp16_scale_growth'];
const LOOP_FLAGS = ['schedule_sampler', 'lr', 'weight_decay', 'lr_anneal_steps', 'batch_size', 'microbatch', 'ema_rate', 'log_interval', 'save_interval', 'resume_checkpoint', 'fp16_scale_growth'];
const KNOWN = new Set([...Object.keys(MODEL_FLAG_DEFAULTS), ...DIFFUSION_FLAGS, ...TRAIN_FLAGS]);

export interface OpenAITrainCliOptions {
  openai: string;
  dataDir?: string;
  outDir?: string;
  steps?: number;
  threads?: number;
  skipBadFiles?: boolean;
  /** Seeds the fresh weights (torch.manualSeed) and the loop's draws (rank r: seed + r). */
  seed?: number;
  /**
   * A rank of --nproc-per-node (the default process group is initialized): their image_train.py
   * under DDP, each rank training on its shard of the images (files[rank::world], as their
   * load_data) with batch_size images per step, gradients averaged; rank 0 alone reports and saves.
   */
  distributed?: boolean;
}

/** --openai's flag string, each flag one of `known` (the flags of their `script`). */
export function scriptFlags(str: string, known: ReadonlySet<string>, script: string): Flags {
  let parsed: Flags;
  try {
    parsed = parseFlags(str);
  } catch (err) {
    throw new CliError(`--openai: ${(err as Error).message.replace(/^parseFlags: /, '')}`);
  }
  const out: Flags = {};
  for (const [raw, value] of Object.entries(parsed)) {
    const name = raw.replace(/-/g, '_');
    if (!known.has(name)) throw new CliError(`--openai: unknown flag --${raw} (not a flag of their ${script})`);
    out[name] = value;
  }
  return out;
}

/** What --use_checkpoint True does, told when a run starts with it. */
export const CHECKPOINTING_NOTE = 'use_checkpoint: each ResBlock and attention block keeps only its inputs and runs again in backward';

/** A dumped log as one line: step first, then the keys in order. */
export function logLine(log: Record<string, number>): string {
  const keys = Object.keys(log).filter((k) => k !== 'step').sort();
  return `step ${log.step} | ` + keys.map((k) => `${k} ${Number.isInteger(log[k]) ? log[k] : log[k].toPrecision(4)}`).join(' | ');
}

/**
 * runLoop's report on stderr: on a terminal with a known number of steps a progress bar (the
 * dumped `lossKey`), else each dump as a line and each save; `done` closes with the steps taken
 * and the checkpoints written. firstStep: the step the run's first log will carry.
 */
export function loopReporter(total: number | undefined, lossKey: string, firstStep: number): {
  onLog: (log: Record<string, number>) => void;
  onSave: (s: { files: string[] }) => void;
  done: (run: RunLoopResult, outDir: string) => void;
} {
  const bar = process.stderr.isTTY && total !== undefined ? new SingleBar({ format: 'training [{bar}] {value}/{total} steps | loss {loss} | {duration_formatted}', stream: process.stderr }) : undefined;
  bar?.start(Math.max(total ?? 0, 0), 0, { loss: '' });
  return {
    onLog: (log) => {
      if (bar) bar.update(log.step + 1 - firstStep, { loss: log[lossKey].toPrecision(4) });
      else process.stderr.write(logLine(log) + '\n');
    },
    onSave: (s) => {
      if (!bar) process.stderr.write(`saved ${s.files.join(', ')}\n`);
    },
    done: (run, outDir) => {
      bar?.stop();
      process.stderr.write(`trained ${run.stepsRun} steps, to step ${run.resumeStep + run.step}; checkpoints ${run.saved.map((n) => String(n).padStart(6, '0')).join(', ')} in ${outDir}\n`);
    },
  };
}

export async function trainOpenAI(o: OpenAITrainCliOptions, signal?: AbortSignal): Promise<void> {
  const f = scriptFlags(o.openai, KNOWN, 'image_train.py');
  if (o.dataDir !== undefined && f.data_dir !== undefined && o.dataDir !== String(f.data_dir)) {
    throw new CliError(`--data-dir ${o.dataDir} and --data_dir ${f.data_dir} in the flags disagree`);
  }
  const dataDir = o.dataDir ?? (f.data_dir === undefined ? undefined : String(f.data_dir));
  if (!dataDir) throw new CliError('train --openai needs --data-dir: a folder of .png/.jpg images (classes from the file names, as their image_datasets.py)');
  const outDir = o.outDir ?? process.env.OPENAI_LOGDIR;
  if (!outDir) throw new CliError('train --openai needs --out-dir (or OPENAI_LOGDIR, as their logger): where checkpoints go');
  if (o.threads) torch.setNumThreads(o.threads);
  const rank = o.distributed ? dist.getRank() : 0;
  const world = o.distributed ? dist.getWorldSize() : 1;
  const say = (line: string): void => {
    if (rank === 0) process.stderr.write(line);
  };

  const modelFlags: Flags = {};
  const loopFlags: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(f)) {
    if (LOOP_FLAGS.includes(k)) loopFlags[k] = typeof v === 'boolean' ? String(v) : v;
    else if (k !== 'data_dir') modelFlags[k] = v;
  }
  if (o.seed !== undefined) {
    torch.manualSeed(o.seed);
    // Each rank its own draws of batches, timesteps and noise, as their ranks' own random states.
    loopFlags.seed = o.seed + rank;
  }
  const model = createModel(modelFlags);
  try {
    // Loss scaling where the model has float16 convolutions: createModel builds float32 ones on
    // the CPU (saying so), where this trains in float32 as their use_fp16 False.
    loopFlags.use_fp16 = String(model.attribute('use_fp16') === true);
    if (modelFlags.use_fp16 !== undefined && toBool(modelFlags.use_fp16, '--use_fp16') && loopFlags.use_fp16 === 'false') {
      say('--use_fp16 True: float16 convolutions and loss scaling are for CUDA; on the CPU this trains in float32\n');
    }
    const numClasses = model.attribute('num_classes');
    const classCond = typeof numClasses === 'number' && numClasses > 0;
    const imageSize = Number(modelFlags.image_size ?? MODEL_FLAG_DEFAULTS.image_size);
    const data = await loadImageFolder(dataDir, { imageSize, classCond, channels: 3, onBadFile: o.skipBadFiles ? 'skip' : 'error' }).catch((err: Error) => {
      throw new CliError(err.message);
    });
    try {
      if (data.skipped.length > 0) say(`skipped ${data.skipped.length} files that do not decode, e.g. ${data.skipped[0].file}: ${data.skipped[0].reason}\n`);
      if (classCond && data.classes!.length > (numClasses as number)) {
        throw new CliError(`${data.classes!.length} classes in the file names, more than the model's ${numClasses}`);
      }
      say(`${data.files.length} images of ${imageSize}x${imageSize}${classCond ? `, ${data.classes!.length} classes` : ''} from ${dataDir}` +
        (world > 1 ? `, rank r training on images r, r + ${world}, ... (of ${world} ranks)` : '') + '\n');
      if (model.attribute('use_checkpoint') === true) say(`${CHECKPOINTING_NOTE}\n`);
      if (data.files.length < world * Number(loopFlags.batch_size ?? 1)) {
        throw new CliError(`${data.files.length} images cannot give each of ${world} ranks a batch of ${loopFlags.batch_size ?? 1}`);
      }
      // Their load_data's shard: rank r takes files r, r + world, ... of the sorted list (classes
      // numbered over all the files, so every rank labels alike).
      const images = world > 1 ? data.images.slice(0, rank, null, world) : data.images;
      const labels = world > 1 ? data.labels?.slice(0, rank, null, world) : data.labels;
      let loop: TrainLoop;
      try {
        loop = new TrainLoop(createGaussianDiffusion(model, modelFlags), { ...loopFlags, distributed: world > 1 });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const report = rank === 0 ? loopReporter(o.steps, 'loss', loop.resumeStep + loop.step) : undefined;
      try {
        const run = await loop.runLoop({ data: images, labels, steps: o.steps, outDir, signal, onLog: report?.onLog, onSave: report?.onSave });
        report?.done(run, outDir);
      } finally {
        if (images !== data.images) images.dispose();
        if (labels !== data.labels) labels?.dispose();
      }
    } finally {
      data.images.dispose();
      data.labels?.dispose();
    }
  } finally {
    model.dispose();
  }
}
