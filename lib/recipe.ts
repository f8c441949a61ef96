// The recipe of the shipped Fashion-MNIST model, used by `npm run train:default` and
// `guided-diffusion train`: our own training code on Debian's Fashion-MNIST.
import * as fs from 'fs';
import * as path from 'path';
import * as dist from './distributed';
import { DEFAULT_MODEL, DefaultModelMeta } from './pretrained';
import { Classifier, Unet } from './models';
import { jit } from './module';
import { loadFashionMnist, trainClassifier, trainDiffusion } from './train';

const ROOT = path.resolve(__dirname, '..', '..');

export const RECIPE = {
  imageSize: 32,
  channels: 1,
  timesteps: 1000,
  betaSchedule: 'cosine' as const,
  objective: 'pred_noise' as const,
  unet: { dim: 16, dimMults: [1, 2, 4], channels: 1 },
  classifier: { imageSize: 32, channels: 1, numClasses: 10, dim: 16, dimMults: [1, 2, 2], attentionResolutions: [8], pool: 'avg' as const },
  unetTrain: { steps: 5000, batchSize: 16, lr: 1e-3, emaDecay: 0.995, gradClip: 1, seed: 1 },
  classifierTrain: { steps: 6000, batchSize: 64, lr: 1e-3, emaDecay: 0.99, gradClip: 1, seed: 2 },
  // euler-ancestral over 20 Karras sigmas: judged as accurate as 1,000 ancestral steps, 45x
  // faster (docs/EVAL.md "Fast samplers").
  sampling: { samplingTimesteps: 1000, sampler: { sampler: 'euler-ancestral' as const, steps: 20 }, classifierScale: 4, clipAfterGuidance: true },
};

/**
 * The shipped classifier-free guided model (models/fashion-mnist-cfg): lucidrains'
 * class-conditional Unet (Unet({ numClasses })) on the same data, schedule and batch as the
 * guided one's Unet, its labels dropped to the null class with Ho & Salimans' probability 0.2.
 * Twice the Unet's steps: at 5,000 the conditional model put 40-43% of its samples in the
 * requested class (docs/EVAL.md).
 */
export const CFG_MODEL = 'fashion-mnist-cfg';
export const RECIPE_CFG = {
  unet: { ...RECIPE.unet, numClasses: 10 },
  unetTrain: { ...RECIPE.unetTrain, steps: 10000, condDropProb: 0.2 },
  // The sampler of the guided model; the scale docs/EVAL.md's classifier-free table picked.
  sampling: { sampler: RECIPE.sampling.sampler, cfgScale: 3 },
};

export type RecipePart = 'unet' | 'classifier' | 'cfg';

export interface RecipeRun {
  /** unet and classifier: the guided model's parts; cfg: the classifier-free guided model's Unet. */
  part: RecipePart;
  /** Steps to reach; default the recipe's. */
  steps?: number;
  /** Stop after this long; the last checkpoint is installed. */
  minutes?: number;
  /** Where checkpoints go (and resume from); default .gd-cache/train in the package. */
  cacheDir?: string;
  /** Where the model is installed; default models/fashion-mnist (cfg: models/fashion-mnist-cfg) in the package. */
  outDir?: string;
  /** Use only the first N training images (for quick checks). */
  limit?: number;
  /**
   * Data-parallel over the default process group: the recipe's batch is split over the ranks
   * (so the run is the recipe's), and only rank 0 writes checkpoints and installs the model.
   */
  distributed?: boolean;
  log?: (line: string) => void;
}

/**
 * Installs a checkpoint's EMA weights in a freshly built network: the installed file carries
 * this version's TorchScript code (faster ops, same numbers), whatever version trained it.
 */
export function installPart(part: RecipePart, checkpoint: string, out: string): void {
  const trained = jit.load(checkpoint);
  const fresh = part === 'unet' ? new Unet(RECIPE.unet) : part === 'cfg' ? new Unet(RECIPE_CFG.unet) : new Classifier(RECIPE.classifier);
  fresh.loadStateDict(trained.stateDict()).eval().save(out);
}

/** Trains one part of the shipped model with the recipe, resuming from its checkpoint. */
export async function trainRecipePart(run: RecipeRun): Promise<void> {
  const { part, steps, minutes } = run;
  const CACHE = run.cacheDir ?? path.join(ROOT, '.gd-cache', 'train');
  const OUT = run.outDir ?? path.join(ROOT, 'models', part === 'cfg' ? CFG_MODEL : DEFAULT_MODEL);
  const print = run.log ?? console.log;
  fs.mkdirSync(CACHE, { recursive: true });
  const ds = loadFashionMnist({ train: true, padTo: RECIPE.imageSize, limit: run.limit });
  const ckpt = path.join(CACHE, `${part}.pt`);
  const resumeFrom = fs.existsSync(ckpt) && fs.existsSync(`${ckpt}.state`) ? ckpt : undefined;
  const signal = minutes ? AbortSignal.timeout(minutes * 60_000) : undefined;
  const schedule = { timesteps: RECIPE.timesteps, betaSchedule: RECIPE.betaSchedule };
  const started = Date.now();
  const log = (p: { step: number; total: number; loss: number }): void => {
    if (p.step % 50 === 0 || p.step === p.total) print(`${part} step ${p.step}/${p.total} loss ${p.loss.toFixed(4)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  };
  const common = { ...schedule, data: ds.images, checkpointPath: ckpt, checkpointEvery: 200, resumeFrom, signal, onProgress: log, distributed: run.distributed };
  const world = run.distributed ? dist.getWorldSize() : 1;
  const perRank = (batchSize: number): number => {
    if (batchSize % world !== 0) throw new RangeError(`the recipe's ${part} batch (${batchSize}) does not split over ${world} processes`);
    return batchSize / world;
  };
  try {
    if (part === 'unet') {
      const o = RECIPE.unetTrain;
      await trainDiffusion(new Unet(RECIPE.unet), { ...common, ...o, batchSize: perRank(o.batchSize), steps: steps ?? o.steps, objective: RECIPE.objective });
    } else if (part === 'cfg') {
      const o = RECIPE_CFG.unetTrain;
      await trainDiffusion(new Unet(RECIPE_CFG.unet), { ...common, ...o, batchSize: perRank(o.batchSize), steps: steps ?? o.steps, objective: RECIPE.objective, labels: ds.labels });
    } else {
      const o = RECIPE.classifierTrain;
      await trainClassifier(new Classifier(RECIPE.classifier), { ...common, ...o, batchSize: perRank(o.batchSize), steps: steps ?? o.steps, labels: ds.labels });
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
    print(`${part}: stopped after ${minutes} minutes; installing the last checkpoint`);
  }
  if (run.distributed && dist.getRank() !== 0) return;
  fs.mkdirSync(OUT, { recursive: true });
  const file = part === 'cfg' ? 'unet.pt' : `${part}.pt`;
  installPart(part, ckpt, path.join(OUT, file));
  const meta: DefaultModelMeta = {
    imageSize: RECIPE.imageSize,
    channels: RECIPE.channels,
    timesteps: RECIPE.timesteps,
    betaSchedule: RECIPE.betaSchedule,
    objective: RECIPE.objective,
    samplingTimesteps: RECIPE.sampling.samplingTimesteps,
    sampler: RECIPE.sampling.sampler,
    ...(part === 'cfg'
      ? { cfgScale: RECIPE_CFG.sampling.cfgScale, nullClass: RECIPE_CFG.unet.numClasses }
      : { classifierScale: RECIPE.sampling.classifierScale, clipAfterGuidance: RECIPE.sampling.clipAfterGuidance }),
    classNames: ds.classNames,
  };
  fs.writeFileSync(path.join(OUT, 'model.json'), JSON.stringify(meta, null, 2) + '\n');
  print(`${part}: wrote ${path.relative(ROOT, path.join(OUT, file))}`);
}

