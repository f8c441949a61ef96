#!/usr/bin/env node
// The guided-diffusion command: sample guided images (the shipped model or your TorchScript
// checkpoints) into a PNG, and retrain the shipped model's recipe.
import { Command, InvalidArgumentError, Option } from 'commander';
import * as path from 'path';
import { GaussianDiffusion, SampleProgress } from './diffusion';
import { classifierCondFn, classifierGuidance } from './guidance';
import { loadImage, saveImage } from './image';
import type { EditOptions } from './editing';
import * as dist from './distributed';
import { freePort, launch } from './launch';
import { sampleDistributed } from './sample-distributed';
import { jit, Module } from './module';
import { DEFAULT_MODEL, loadPretrained } from './pretrained';
import { CFG_MODEL, trainRecipePart } from './recipe';
import { checkFastSteps, CliError, existing, flagName, MAX_IMAGES, progressReporter, SamplerFlags, samplerOptions, stepsText, writableOut } from './cli-util';
import { OpenAISampleOptions, sampleOpenAI } from './cli-openai';
import { trainOpenAI } from './cli-train-openai';
import { trainClassifier } from './cli-train-classifier';
import { isFastSampler, SAMPLERS } from './samplers';
import { Tensor } from './tensor';
import * as torch from './torch';

function int(name: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    if (n > max) throw new InvalidArgumentError(`${name} must be at most ${max}`);
    return n;
  };
}

function num(name: string, check?: { test: (n: number) => boolean; what: string }) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    if (check && !check.test(n)) throw new InvalidArgumentError(`${name} must be ${check.what}`);
    return n;
  };
}

const positive = { test: (n: number) => n > 0, what: 'positive' };

/** A class given by name (case-insensitive, any punctuation) or by index. */
export function parseClass(value: string, names: string[] | undefined, numClasses: number | undefined): number {
  const count = names?.length ?? numClasses;
  if (/^\d+$/.test(value)) {
    const i = Number(value);
    if (count !== undefined && i >= count) throw new CliError(`class index ${i} is out of range 0..${count - 1}`);
    return i;
  }
  const key = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  // 'T-shirt/top' answers to 't-shirt', 'top' and 'tshirt/top'.
  const i = names?.findIndex((n) => [n, ...n.split('/')].some((part) => key(part) === key(value))) ?? -1;
  if (i < 0) {
    if (!names) throw new CliError(`unknown class '${value}'; this classifier has no class names: give an index`);
    throw new CliError(`unknown class '${value}'; expected one of: ${names.join(', ')}, or an index`);
  }
  return i;
}

function order(value: string): 1 | 2 | 3 {
  if (!['1', '2', '3'].includes(value)) throw new InvalidArgumentError('--order must be 1, 2 or 3');
  return Number(value) as 1 | 2 | 3;
}

const SAMPLERS_HELP = `
Samplers (--sampler; docs/fast-samplers.md):
  ancestral        DDPM over every step (with --steps n: over the schedule respaced to n)
  ddim             DDIM over --steps steps
  dpm-solver++     --steps model calls; --order, --method, --skip-type, --thresholding
  dpm-solver       --steps model calls; --order, --method, --skip-type
  unipc            --steps model calls; --order, --skip-type, --thresholding, --unipc-variant
  euler, euler-ancestral, dpmpp-2m
                   --steps sigma intervals (one model call each); --karras | --model-sigmas, --rho
  heun             --steps sigma intervals (2 * steps - 1 model calls); --karras | --model-sigmas, --rho
Without --sampler the shipped model samples with its own default, euler-ancestral over --steps
(default 20) Karras sigmas; --model checkpoints with ancestral (DDIM when --steps is below
--timesteps). A flag the chosen sampler does not take is an error. With --openai, a fast sampler samples the
(respaced) schedule of the flags; ancestral and ddim take their steps from --timestep-respacing.
`;

interface SampleFlags extends SamplerFlags {
  class?: string;
  n: number;
  batchSize: number;
  scale?: number;
  cfgScale?: number;
  seed?: number;
  out: string;
  nrow?: number;
  model?: string;
  classifier?: string;
  imageSize?: number;
  timesteps: number;
  channels?: number;
  betaSchedule: 'linear' | 'cosine' | 'sigmoid';
  objective: 'pred_noise' | 'pred_x0' | 'pred_v';
  jsCondFn?: boolean;
  threads?: number;
  nprocPerNode?: number;
  chunkSize: number;
  init?: string;
  strength?: number;
  mask?: string;
  jumpLength?: number;
  jumpCount?: number;
}

/** The editing flags checked against each other before anything loads. */
function checkEditFlags(flags: SampleFlags): void {
  if (flags.init === undefined) {
    for (const f of ['strength', 'mask', 'jumpLength', 'jumpCount'] as const) {
      if (flags[f] !== undefined) throw new CliError(`${flagName(f)} needs --init (the image to edit)`);
    }
    return;
  }
  if (flags.strength === undefined && flags.mask === undefined) throw new CliError('--init needs --strength (img2img) or --mask (inpainting)');
  if ((flags.jumpLength !== undefined || flags.jumpCount !== undefined) && flags.mask === undefined) {
    throw new CliError('--jump-length and --jump-count (RePaint\'s resampling) need --mask');
  }
  if ((flags.jumpLength === undefined) !== (flags.jumpCount === undefined)) throw new CliError('give --jump-length and --jump-count together (e.g. 10 and 10)');
}

/**
 * --init and --mask read as the model's images: PNG (grayscale or RGB) converted to the model's
 * channels and resized to its size (LibTorch's antialiased bilinear); the mask's gray at 50% and
 * above keeps the image (white keeps), below is generated.
 */
function editOptions(flags: SampleFlags, channels: number, size: number): EditOptions {
  if (flags.init === undefined) return {};
  if (channels !== 1 && channels !== 3) throw new CliError(`--init needs a model of 1 or 3 channels; this one has ${channels}`);
  const init = loadImage(existing('--init image', flags.init), { channels, size });
  const o: EditOptions = { init };
  if (flags.strength !== undefined) o.strength = flags.strength;
  if (flags.mask !== undefined) {
    const gray = loadImage(existing('--mask image', flags.mask), { channels: 1, size });
    o.mask = gray.ge(0.5).to('float32');
    gray.dispose();
  }
  if (flags.jumpLength !== undefined) o.jumpLength = flags.jumpLength;
  if (flags.jumpCount !== undefined) o.jumpCount = flags.jumpCount;
  return o;
}

// Set in the ranks that a command's --nproc-per-node starts.
const RANK_MARK = 'GD_CLI_RANK';

/**
 * With --nproc-per-node n, the first process launches n ranks that each run this same
 * command, waits for them and returns true; a rank joins the process group and returns false.
 */
async function relaunched(nprocPerNode: number | undefined): Promise<boolean> {
  if (nprocPerNode === undefined) return false;
  if (process.env[RANK_MARK] !== '1') {
    const r = await launch({ nprocPerNode, masterPort: await freePort(), script: __filename, args: process.argv.slice(2), env: { [RANK_MARK]: '1' } });
    process.exitCode = r.exitCode;
    return true;
  }
  await dist.initProcessGroup({ timeoutMs: 120000 });
  return false;
}

async function sample(flags: SampleFlags): Promise<void> {
  writableOut(flags.out);
  checkEditFlags(flags);
  let chosen = samplerOptions(flags);
  const sampler = chosen?.sampler;
  const fast = sampler !== undefined && isFastSampler(sampler);
  // The shipped model without --sampler: its own default sampler (model.json's), --steps its steps.
  const shippedDefault = !flags.model && sampler === undefined;
  // --steps: a fast sampler's steps over the whole schedule; ancestral steps over the schedule
  // respaced to --steps (as openai's timestep_respacing); else DDIM's steps when fewer than --timesteps.
  const respaced = sampler === 'ancestral' && flags.steps !== undefined ? String(flags.steps) : undefined;
  const distributed = flags.nprocPerNode !== undefined;
  if (await relaunched(flags.nprocPerNode)) return;
  const lead = !distributed || dist.getRank() === 0;
  if (flags.threads) torch.setNumThreads(flags.threads);
  let diffusion: GaussianDiffusion;
  let classifier: Module | undefined;
  let names: string[] | undefined;
  let scale = flags.scale;
  // Classifier-free guidance (--cfg-scale): labels go to the model, no classifier.
  const cfg = flags.cfgScale !== undefined;
  if (cfg && (flags.classifier !== undefined || flags.scale !== undefined || flags.jsCondFn)) {
    throw new CliError('--cfg-scale (classifier-free guidance) takes no classifier: leave out --classifier, --scale and --js-cond-fn');
  }
  let numClasses: unknown;
  if (flags.model) {
    if (!flags.imageSize) throw new CliError('--image-size is required with --model');
    if (flags.steps !== undefined && flags.steps > flags.timesteps) throw new CliError(`--steps ${flags.steps} is more than the model's --timesteps ${flags.timesteps}`);
    const model = jit.load(existing('model checkpoint', flags.model));
    diffusion = new GaussianDiffusion(model, {
      imageSize: flags.imageSize,
      channels: flags.channels,
      timesteps: flags.timesteps,
      ...(respaced !== undefined ? { timestepRespacing: respaced } : { samplingTimesteps: fast ? flags.timesteps : flags.steps ?? flags.timesteps }),
      betaSchedule: flags.betaSchedule,
      objective: flags.objective,
    });
    if (flags.classifier) classifier = jit.load(existing('classifier checkpoint', flags.classifier)).eval();
    numClasses = (cfg ? model : classifier)?.attribute('num_classes');
    if (cfg && typeof numClasses !== 'number') throw new CliError('--cfg-scale needs a class-conditional --model (forward(x, t, y) with a num_classes attribute, such as a Unet built with numClasses)');
  } else {
    if (flags.classifier) throw new CliError('--classifier needs --model (the shipped model has its own classifier)');
    const options = respaced !== undefined ? { timestepRespacing: respaced } : { samplingTimesteps: fast || shippedDefault ? undefined : flags.steps };
    if (cfg) {
      const p = loadPretrained(CFG_MODEL, options);
      diffusion = p.diffusion;
      names = p.classNames;
    } else {
      const p = loadPretrained(DEFAULT_MODEL, options);
      diffusion = p.diffusion;
      classifier = p.classifier;
      names = p.classNames;
      scale = scale ?? p.meta.classifierScale;
    }
    numClasses = classifier?.attribute('num_classes');
  }
  const count = names?.length ?? (typeof numClasses === 'number' ? numClasses : undefined);
  let labels: number[] | undefined;
  if (flags.class !== undefined) {
    if (!classifier && !cfg) throw new CliError('--class needs a classifier (--classifier) or --cfg-scale');
    const c = parseClass(flags.class, names, typeof numClasses === 'number' ? numClasses : undefined);
    labels = Array.from({ length: flags.n }, () => c);
  } else if ((cfg || (classifier && (scale ?? 1) > 0)) && count !== undefined) {
    labels = Array.from({ length: flags.n }, (_, i) => i % count);
  }
  // The shipped model's own sampler, named as if given, so that it is checked and reported alike.
  const own = diffusion.options.defaultSampler;
  if (shippedDefault && own) chosen = { ...own, ...(flags.steps !== undefined ? { steps: flags.steps } : {}) };
  checkFastSteps(chosen, flags, diffusion.numTimesteps);
  const jumpSampler = chosen?.sampler ?? (diffusion.isDdimSampling ? 'ddim' : 'ancestral');
  if (flags.jumpLength !== undefined && jumpSampler !== 'ancestral' && jumpSampler !== 'ddim') {
    throw new CliError(`--jump-length and --jump-count apply to --sampler ancestral or ddim, not ${jumpSampler}`);
  }
  const edit = editOptions(flags, diffusion.options.channels, diffusion.options.imageSize);
  const steps = chosen?.steps ?? (sampler === 'ancestral' ? diffusion.numTimesteps : diffusion.options.samplingTimesteps);
  const guided = classifier && labels;
  const condFn = guided ? (flags.jsCondFn ? classifierCondFn : classifierGuidance) : undefined;
  const kwargs = (start: number, size: number) =>
    guided ? { classifier: classifier!, y: torch.tensor(labels!.slice(start, start + size)), classifierScale: scale ?? 1 } : undefined;
  const cfgOptions = (start: number, size: number) =>
    cfg ? { modelKwargs: { y: torch.tensor(labels!.slice(start, start + size), { dtype: 'int64' }) }, cfgScale: flags.cfgScale } : {};
  let images: Tensor;
  let reporter: { update(p: SampleProgress, batch?: number): void; stop(): void };
  if (distributed) {
    // With --nproc-per-node, image i has a generator of its own (seed + i) and the batch is
    // sampled in chunks of --chunk-size: the PNG is the same for every rank count.
    reporter = lead ? progressReporter() : { update: () => undefined, stop: () => undefined };
    images = await sampleDistributed(diffusion, {
      ...chosen, ...edit, ...cfgOptions(0, flags.n), batchSize: flags.n, onProgress: (p: SampleProgress) => reporter.update(p), condFn,
      guidanceKwargs: kwargs(0, flags.n), seed: flags.seed ?? 0, chunkSize: flags.chunkSize,
    });
  } else {
    // Batches of --batch-size; with --seed, batch i has seed + i (one batch: the seed itself).
    const batches = Math.ceil(flags.n / flags.batchSize);
    reporter = progressReporter(batches);
    const parts: Tensor[] = [];
    for (let i = 0; i < batches; i++) {
      const start = i * flags.batchSize;
      const size = Math.min(flags.batchSize, flags.n - start);
      parts.push(
        await diffusion.sample({
          ...chosen,
          ...edit,
          ...cfgOptions(start, size),
          batchSize: size,
          seed: flags.seed === undefined ? undefined : flags.seed + i,
          onProgress: (p) => reporter.update(p, i),
          condFn,
          guidanceKwargs: kwargs(start, size),
        }),
      );
    }
    images = parts.length === 1 ? parts[0] : torch.cat(parts);
    if (parts.length > 1) torch.dispose(parts);
  }
  reporter.stop();
  torch.dispose([edit.init, edit.mask].filter((t): t is Tensor => t !== undefined));
  if (distributed) dist.destroyProcessGroup();
  if (!lead) return;
  saveImage(images, flags.out, { nrow: flags.nrow ?? (flags.class === undefined && count ? count : 8) });
  const what = flags.class !== undefined && names ? ` of ${names[labels![0]]}` : '';
  const edited = flags.init === undefined ? '' : `, ${flags.mask !== undefined ? 'inpainting' : 'img2img'} of ${path.basename(flags.init)}` +
    (flags.strength !== undefined ? ` at strength ${flags.strength}` : '') + (flags.jumpLength !== undefined ? ` (jumps of ${flags.jumpLength}, ${flags.jumpCount} times)` : '');
  process.stderr.write(`wrote ${flags.out}: ${flags.n} images${what}, ${stepsText(steps, chosen?.sampler)}${guided ? `, scale ${scale ?? 1}` : ''}${cfg ? `, cfgScale ${flags.cfgScale}` : ''}${edited}\n`);
}

export function buildProgram(): Command {
  const program = new Command()
    .name('guided-diffusion')
    .description('Classifier-guided diffusion sampling on LibTorch')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  program
    .command('sample')
    .description('sample guided images into a PNG grid (the shipped Fashion-MNIST model unless --model is given)')
    .option('--class <name|index>', 'class to guide towards, by name (e.g. sneaker) or index; default: every class in turn')
    .option('--n <count>', `number of images (at most ${MAX_IMAGES})`, int('--n', 1, MAX_IMAGES), 16)
    .option('--batch-size <n>', 'images sampled at once (memory grows with it)', int('--batch-size', 1, MAX_IMAGES), 16)
    .option('--scale <s>', 'classifier guidance scale (0: unguided); default: the model\'s recommended scale, or 1', num('--scale'))
    .option('--cfg-scale <s>', `classifier-free guidance (0: unconditional, 1: conditional): the shipped ${CFG_MODEL} model, or a class-conditional --model`, num('--cfg-scale'))
    .option('--steps <n>', 'sampling steps: of a fast --sampler (default 20) or, without --sampler, of the shipped model\'s euler-ancestral; with --model and no --sampler, fewer than --timesteps is DDIM', int('--steps'))
    .addOption(new Option('--sampler <name>', 'ancestral, ddim, or a fast sampler (see below); default: euler-ancestral for the shipped model; with --model, ddim when --steps is below the schedule\'s steps, else ancestral').choices(SAMPLERS))
    .option('--order <1|2|3>', 'solver order (dpm-solver++, dpm-solver, unipc; default 2)', order)
    .addOption(new Option('--method <kind>', 'dpm-solver++, dpm-solver: multistep (default) or singlestep').choices(['multistep', 'singlestep']))
    .addOption(new Option('--skip-type <kind>', 'time spacing of dpm-solver++, dpm-solver, unipc (default time_uniform)').choices(['time_uniform', 'logSNR', 'time_quadratic']))
    .option('--thresholding', 'dpm-solver++, unipc: dynamic thresholding of x0 (ratio 0.995, max 1)')
    .option('--thresholding-ratio <r>', 'with --thresholding: the quantile, in (0, 1]', num('--thresholding-ratio', { test: (n) => n > 0 && n <= 1, what: 'in (0, 1]' }))
    .option('--thresholding-max <v>', 'with --thresholding: the largest threshold', num('--thresholding-max', positive))
    .addOption(new Option('--unipc-variant <v>', 'unipc: bh1 (default) or bh2').choices(['bh1', 'bh2']))
    .option('--karras', 'euler, euler-ancestral, heun, dpmpp-2m: Karras et al.\'s sigmas (the default)')
    .option('--model-sigmas', 'euler, euler-ancestral, heun, dpmpp-2m: the model\'s own sigmas instead of Karras\'')
    .option('--rho <r>', 'euler, euler-ancestral, heun, dpmpp-2m: rho of the Karras sigmas (default 7)', num('--rho', positive))
    .option('--seed <n>', 'seed of this sample\'s generator (reproducible)', int('--seed', 0))
    .option('--out <file.png>', 'output PNG', 'samples.png')
    .option('--nrow <n>', 'images per row of the grid', int('--nrow'))
    .option('--model <unet.pt>', 'your TorchScript diffusion model: forward(x, t) -> x-shaped output')
    .option('--classifier <cls.pt>', 'your TorchScript noise-aware classifier: forward(x, t) -> logits')
    .option('--image-size <n>', 'image side for --model', int('--image-size'))
    .option('--timesteps <n>', 'diffusion steps the model was trained with (--model)', int('--timesteps'), 1000)
    .option('--channels <n>', 'image channels for --model (default: the model\'s channels attribute, else 3)', int('--channels'))
    .option('--beta-schedule <kind>', 'linear, cosine or sigmoid (--model)', 'sigmoid')
    .option('--objective <kind>', 'pred_noise, pred_x0 or pred_v (--model)', 'pred_noise')
    .option('--init <in.png>', 'edit this image (PNG, grayscale or RGB; resized to the model\'s size): with --strength (img2img) and/or --mask (inpainting)')
    .option('--strength <s>', 'with --init: share of the sampler\'s steps to run from the noised image, in [0, 1] (0: the image, 1: from noise)', num('--strength', { test: (n) => n >= 0 && n <= 1, what: 'in [0, 1]' }))
    .option('--mask <mask.png>', 'with --init: inpainting (RePaint); white (gray >= 50%) keeps the image, black is generated')
    .option('--jump-length <n>', 'with --mask, --sampler ancestral or ddim: RePaint\'s resampling, steps gone back per jump', int('--jump-length'))
    .option('--jump-count <n>', 'with --jump-length: times each stretch is sampled (RePaint\'s jump_n_sample; 1: no jumps)', int('--jump-count'))
    .option('--js-cond-fn', 'compute guidance in JS (classifierCondFn) instead of natively')
    .option('--threads <n>', 'LibTorch intra-op threads', int('--threads'))
    .option('--nproc-per-node <n>', 'split the batch over n processes (image i seeded --seed + i; the same PNG for any n)', int('--nproc-per-node'))
    .option('--chunk-size <n>', 'with --nproc-per-node: images per model batch (the PNG depends on it, not on n)', int('--chunk-size'), 8)
    .option('--openai <flags>', 'an openai/guided-diffusion checkpoint: the MODEL_FLAGS of their README (classifier and sample flags may follow)')
    .option('--model-path <file.pt>', 'with --openai: the diffusion checkpoint (torch.save state dict)')
    .option('--classifier-flags <flags>', 'with --openai: the CLASSIFIER_FLAGS of their README')
    .option('--classifier-path <file.pt>', 'with --openai: the classifier checkpoint (guided sampling)')
    .option('--classifier-scale <s>', 'with --openai: guidance scale (default 1.0)', num('--classifier-scale'))
    .option('--timestep-respacing <spec>', "with --openai: sampling steps, e.g. 250, ddim25 or '10,15,20'")
    .option('--use-ddim', 'with --openai: DDIM instead of ancestral steps')
    .addHelpText('after', SAMPLERS_HELP)
    .action((flags: SampleFlags & OpenAISampleOptions, cmd: Command) => {
      const given = (option: string): boolean => cmd.getOptionValueSource(option) === 'cli';
      if (flags.openai !== undefined) return sampleOpenAI(flags, given);
      const onlyOpenAI = ['modelPath', 'classifierFlags', 'classifierPath', 'classifierScale', 'timestepRespacing', 'useDdim'].find(given);
      if (onlyOpenAI) throw new CliError(`${flagName(onlyOpenAI)} needs --openai "$MODEL_FLAGS" (an openai/guided-diffusion checkpoint)`);
      return sample(flags);
    });
  program
    .command('train')
    .description('retrain the shipped Fashion-MNIST model with its recipe (needs apt-get install dataset-fashion-mnist), ' +
      'or with --openai train an openai/guided-diffusion model on a folder of images as their image_train.py')
    .argument('[part]', 'unet, classifier or all (the shipped model\'s recipe; not with --openai)')
    .option('--openai <flags>', 'their README\'s "$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS" as one string: train as image_train.py')
    .option('--data-dir <dir>', 'with --openai: the images (.png/.jpg/.jpeg/.gif, recursively; class from the name before the first _)')
    .option('--skip-bad-files', 'with --openai: leave out images that do not decode (default: stop, naming the file)')
    .option('--seed <n>', 'with --openai: seed of the fresh weights and of the draws of batches, timesteps and noise (reproducible runs)', int('--seed', 0))
    .option('--steps <n>', 'steps to reach (default: the recipe); with --openai: steps to take (default: until lr_anneal_steps, or Ctrl-C)', int('--steps'))
    .option('--minutes <m>', 'stop each part after this long', num('--minutes'))
    .option('--limit <n>', 'train on the first N images only', int('--limit'))
    .option('--out-dir <dir>', 'where to install the model (default: the package\'s models/fashion-mnist); with --openai: where checkpoints go (their OPENAI_LOGDIR)')
    .option('--cache-dir <dir>', 'where checkpoints go and resume from (default: .gd-cache/train)')
    .option('--threads <n>', 'LibTorch intra-op threads', int('--threads'), 1)
    .option('--nproc-per-node <n>', 'data-parallel over n processes (the recipe\'s batch split over them: the same training); with --openai: their DDP, batch_size per rank, the images sharded over the ranks', int('--nproc-per-node'))
    .action(async (part: string | undefined, flags: { steps?: number; minutes?: number; limit?: number; outDir?: string; cacheDir?: string; threads: number; nprocPerNode?: number;
      openai?: string; dataDir?: string; skipBadFiles?: boolean; seed?: number }, cmd: Command) => {
      if (flags.openai !== undefined) {
        if (part !== undefined) throw new CliError(`train --openai takes no part ('${part}'): the model is the one the flags describe`);
        const given = (option: string): boolean => cmd.getOptionValueSource(option) === 'cli';
        const notWith = ['minutes', 'limit', 'cacheDir'].find(given);
        if (notWith) throw new CliError(`${flagName(notWith)} does not apply with --openai`);
        if (await relaunched(flags.nprocPerNode)) return;
        const distributed = flags.nprocPerNode !== undefined;
        // Ctrl-C ends the run after its current step, as an abort: the last save stays the newest checkpoint.
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        try {
          return await trainOpenAI({ openai: flags.openai, dataDir: flags.dataDir, outDir: flags.outDir, steps: flags.steps, threads: given('threads') ? flags.threads : undefined,
            skipBadFiles: flags.skipBadFiles, seed: flags.seed, distributed }, stop.signal);
        } finally {
          if (distributed) dist.destroyProcessGroup();
        }
      }
      const onlyOpenAI = (['dataDir', 'skipBadFiles', 'seed'] as const).find((k) => flags[k] !== undefined);
      if (onlyOpenAI) throw new CliError(`${flagName(onlyOpenAI)} needs --openai "$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS"`);
      if (part === undefined) throw new CliError("train needs a part (unet, classifier or all), or --openai \"$MODEL_FLAGS $DIFFUSION_FLAGS $TRAIN_FLAGS\" --data-dir DIR");
      if (!['unet', 'classifier', 'all'].includes(part)) throw new CliError(`unknown part '${part}'; expected unet, classifier or all`);
      // A time limit would stop each rank at its own step, and the others would then wait for it.
      if (flags.nprocPerNode !== undefined && flags.minutes !== undefined) throw new CliError('--minutes cannot be combined with --nproc-per-node; use --steps');
      if (await relaunched(flags.nprocPerNode)) return;
      const distributed = flags.nprocPerNode !== undefined;
      torch.setNumThreads(flags.threads);
      const parts = part === 'all' ? (['classifier', 'unet'] as const) : [part as 'unet' | 'classifier'];
      const lead = !distributed || dist.getRank() === 0;
      for (const p of parts) {
        await trainRecipePart({ part: p, steps: flags.steps, minutes: flags.minutes, limit: flags.limit, outDir: flags.outDir, cacheDir: flags.cacheDir, distributed,
          log: (l) => lead && process.stderr.write(l + '\n') });
      }
      if (distributed) dist.destroyProcessGroup();
    });
  program
    .command('train-classifier')
    .description('train a noise-aware openai/guided-diffusion classifier on a folder of images as their classifier_train.py')
    .requiredOption('--openai <flags>', 'their README\'s "$CLASSIFIER_FLAGS $TRAIN_FLAGS" (and diffusion flags) as one string; --resume_checkpoint resumes')
    .option('--data-dir <dir>', 'training images (.png/.jpg/.jpeg/.gif, recursively; class from the name before the first _), randomly cropped as theirs')
    .option('--val-data-dir <dir>', 'held-out images: a val batch every eval_interval steps (val_loss, val_acc@1, val_acc@5)')
    .option('--out-dir <dir>', 'where checkpoints go (their OPENAI_LOGDIR): model{N}.pt, opt{N}.pt')
    .option('--steps <n>', 'steps to take (default: until their iterations, or Ctrl-C)', int('--steps'))
    .option('--seed <n>', 'seed of the fresh weights, the random crops and the draws of batches, timesteps and noise', int('--seed', 0))
    .option('--threads <n>', 'LibTorch intra-op threads', int('--threads'))
    .option('--skip-bad-files', 'leave out images that do not decode (default: stop, naming the file)')
    .option('--nproc-per-node <n>', 'their DDP over n processes: batch_size per rank, the images sharded over the ranks, rank 0 logging and saving', int('--nproc-per-node'))
    .action(async (flags: { openai: string; dataDir?: string; valDataDir?: string; outDir?: string; steps?: number; seed?: number; threads?: number; skipBadFiles?: boolean; nprocPerNode?: number }) => {
      if (await relaunched(flags.nprocPerNode)) return;
      const distributed = flags.nprocPerNode !== undefined;
      // Ctrl-C ends the run after its current step, as an abort: the last save stays the newest checkpoint.
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      try {
        return await trainClassifier({ ...flags, distributed }, stop.signal);
      } finally {
        if (distributed) dist.destroyProcessGroup();
      }
    });
  program
    .command('launch')
    .description('run a script as the ranks of a data-parallel job (like torchrun): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set for torch.distributed.initProcessGroup()')
    .requiredOption('--nproc-per-node <n>', 'ranks (processes) on this node', int('--nproc-per-node'))
    .option('--nnodes <n>', 'nodes in the job', int('--nnodes'), 1)
    .option('--node-rank <r>', 'this node\'s index', int('--node-rank', 0), 0)
    .option('--master-addr <host>', 'address of node 0', '127.0.0.1')
    .option('--master-port <port>', 'rendezvous port on node 0', int('--master-port'), 29500)
    .argument('<script>', 'the Node script each rank runs')
    .argument('[args...]', 'its arguments')
    .passThroughOptions()
    .action(async (script: string, args: string[], flags: { nprocPerNode: number; nnodes: number; nodeRank: number; masterAddr: string; masterPort: number }) => {
      if (flags.nodeRank >= flags.nnodes) throw new CliError(`--node-rank must be below --nnodes (${flags.nnodes})`);
      const r = await launch({ ...flags, script: existing('script', script), args });
      process.exitCode = r.exitCode;
    });
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: Error) => {
      process.stderr.write(`guided-diffusion: ${err.message.split('\n')[0]}\n`);
      process.exit(1);
    });
}
