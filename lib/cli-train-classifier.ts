// guided-diffusion train-classifier --openai "$CLASSIFIER_FLAGS $TRAIN_FLAGS" --data-dir imgs/
// --out-dir ckpts/: openai/guided-diffusion's scripts/classifier_train.py, the flag strings of
// their README taken as they are. Training images are read as their load_data(random_crop=True),
// held-out ones (--val-data-dir) center-cropped; their logger's keys go to stderr every
// log_interval steps; save_model writes model/opt files to --out-dir (their OPENAI_LOGDIR);
// resume_checkpoint resumes.
import { CliError } from './cli-util';
import { CHECKPOINTING_NOTE, DIFFUSION_FLAGS, loopReporter, scriptFlags } from './cli-train-openai';
import { ImageFolder, loadImageFolder } from './image-folder';
import { toBool } from './openai/diffusion';
import { CLASSIFIER_FLAG_DEFAULTS, createClassifier, Flags } from './openai/flags';
import { ClassifierTrainLoop } from './openai/classifier-train';
import * as dist from './distributed';
import * as torch from './torch';

// classifier_train.py's create_argparser, less the classifier and diffusion flags.
const TRAIN_FLAGS = ['data_dir', 'val_data_dir', 'noised', 'iterations', 'lr', 'weight_decay', 'anneal_lr', 'batch_size', 'microbatch', 'schedule_sampler', 'resume_checkpoint', 'log_interval', 'eval_interval', 'save_interval'];
// use_checkpoint is ours here (their classifier_train.py has no such flag): the model flag of
// their UNetModel, gradient checkpointing of the classifier's blocks.
const KNOWN = new Set([...Object.keys(CLASSIFIER_FLAG_DEFAULTS), ...DIFFUSION_FLAGS, ...TRAIN_FLAGS, 'use_checkpoint']);
// The classifier's 1000 outputs (their create_classifier): class labels must stay below.
const OUTPUTS = 1000;

export interface ClassifierTrainCliOptions {
  openai: string;
  dataDir?: string;
  valDataDir?: string;
  outDir?: string;
  steps?: number;
  threads?: number;
  skipBadFiles?: boolean;
  /** Seeds the fresh weights (torch.manualSeed), the random crops and the loop's draws (rank r: seed + r). */
  seed?: number;
  /** A rank of --nproc-per-node: the default process group is up. */
  distributed?: boolean;
}

// A folder given both as a CLI option and as their flag must agree.
function folder(cli: string | undefined, flag: unknown, name: string): string | undefined {
  const fromFlag = flag === undefined || flag === '' ? undefined : String(flag);
  if (cli !== undefined && fromFlag !== undefined && cli !== fromFlag) throw new CliError(`--${name.replace(/_/g, '-')} ${cli} and --${name} ${fromFlag} in the flags disagree`);
  return cli ?? fromFlag;
}

export async function trainClassifier(o: ClassifierTrainCliOptions, signal?: AbortSignal): Promise<void> {
  const f = scriptFlags(o.openai, KNOWN, 'classifier_train.py');
  const dataDir = folder(o.dataDir, f.data_dir, 'data_dir');
  if (!dataDir) throw new CliError('train-classifier needs --data-dir: a folder of .png/.jpg images, each class the part of its file name before the first _ (their image_datasets.py)');
  const valDir = folder(o.valDataDir, f.val_data_dir, 'val_data_dir');
  const outDir = o.outDir ?? process.env.OPENAI_LOGDIR;
  if (!outDir) throw new CliError('train-classifier needs --out-dir (or OPENAI_LOGDIR, as their logger): where checkpoints go');
  if (o.threads) torch.setNumThreads(o.threads);
  const rank = o.distributed ? dist.getRank() : 0;
  const world = o.distributed ? dist.getWorldSize() : 1;
  const say = (line: string): void => {
    if (rank === 0) process.stderr.write(line);
  };

  const netFlags: Flags = {};
  const diffusionFlags: Flags = {};
  const loopFlags: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(f)) {
    if (k in CLASSIFIER_FLAG_DEFAULTS || k === 'use_checkpoint') netFlags[k] = v;
    else if (DIFFUSION_FLAGS.includes(k)) diffusionFlags[k] = v;
    else if (k !== 'data_dir' && k !== 'val_data_dir') loopFlags[k] = v;
  }
  if (o.seed !== undefined) {
    torch.manualSeed(o.seed);
    // Each rank its own draws of batches, timesteps and noise, as their ranks' own random states.
    loopFlags.seed = o.seed + rank;
  }
  loopFlags.distributed = world > 1;
  let classifier;
  try {
    classifier = createClassifier(netFlags);
  } catch (err) {
    throw new CliError(`--openai: ${(err as Error).message}`);
  }
  // Loss scaling where the classifier has float16 convolutions: createClassifier builds float32
  // ones on the CPU (saying so), where this trains in float32 as their classifier_use_fp16 False.
  loopFlags.classifier_use_fp16 = classifier.attribute('use_fp16') === true;
  if (netFlags.classifier_use_fp16 !== undefined && toBool(netFlags.classifier_use_fp16, '--classifier_use_fp16') && !loopFlags.classifier_use_fp16) {
    say('--classifier_use_fp16 True: float16 convolutions and loss scaling are for CUDA; on the CPU this trains in float32\n');
  }
  const imageSize = Number(netFlags.image_size ?? CLASSIFIER_FLAG_DEFAULTS.image_size);
  const read = (dir: string, randomCrop: boolean): Promise<ImageFolder> =>
    loadImageFolder(dir, { imageSize, classCond: true, channels: 3, randomCrop, seed: o.seed ?? 0, onBadFile: o.skipBadFiles ? 'skip' : 'error' }).catch((err: Error) => {
      throw new CliError(err.message);
    });
  const owned: ImageFolder[] = [];
  try {
    const data = await read(dataDir, true);
    owned.push(data);
    const val = valDir ? await read(valDir, false) : undefined;
    if (val) owned.push(val);
    for (const d of owned) {
      if (d.skipped.length > 0) say(`skipped ${d.skipped.length} files that do not decode, e.g. ${d.skipped[0].file}: ${d.skipped[0].reason}\n`);
      if (d.classes!.length > OUTPUTS) throw new CliError(`${d.classes!.length} classes in the file names, more than the classifier's ${OUTPUTS} outputs`);
    }
    say(`${data.files.length} images of ${imageSize}x${imageSize}, ${data.classes!.length} classes from ${dataDir}` +
      (val ? `; ${val.files.length} held out from ${valDir}` : '') +
      (world > 1 ? `, rank r training on images r, r + ${world}, ... (of ${world} ranks)` : '') + '\n');
    if (classifier.attribute('use_checkpoint') === true) say(`${CHECKPOINTING_NOTE}\n`);
    const batch = Number(loopFlags.batch_size ?? 4);
    for (const d of owned) {
      if (d.files.length < world * batch) throw new CliError(`${d.files.length} images cannot give each of ${world} ranks a batch of ${batch}`);
    }
    // Their load_data's shard: rank r takes files r, r + world, ... of the sorted list.
    const shard = (t: torch.Tensor | undefined): torch.Tensor | undefined => (t === undefined || world === 1 ? t : t.slice(0, rank, null, world));
    const [images, labels, valImages, valLabels] = [data.images, data.labels, val?.images, val?.labels].map(shard);
    let loop: ClassifierTrainLoop;
    try {
      loop = new ClassifierTrainLoop(classifier, diffusionFlags, loopFlags);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    const report = rank === 0 ? loopReporter(o.steps ?? loop.flags.iterations - loop.resumeStep, 'train_loss', loop.resumeStep + loop.step) : undefined;
    try {
      const run = await loop.runLoop({
        data: images!, labels: labels!, evalData: valImages, evalLabels: valLabels, steps: o.steps, outDir, signal, onLog: report?.onLog, onSave: report?.onSave,
      });
      report?.done(run, outDir);
    } finally {
      if (world > 1) torch.dispose([images, labels, valImages, valLabels].filter((t): t is torch.Tensor => t !== undefined));
    }
  } finally {
    for (const d of owned) torch.dispose([d.images, ...(d.labels ? [d.labels] : [])]);
    classifier.dispose();
  }
}
