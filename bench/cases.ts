// The benchmark cases and the machinery that runs one configuration on both sides: our
// sampler in a node child (worker.js), the Python mirror in a python3 child
// (python_sampler.py), alternating who goes first, one timed sample per child and round.
import * as fs from 'fs';
import * as path from 'path';
import { RECIPE } from '../lib/recipe';
import type { ClassifierOptions, UnetOptions } from '../lib';
import { BENCH_SRC, ChildResult, PYTHON, median, runChild, waitForQuiet } from './common';
import type { FlopCount, GuidanceKind, ModelFiles, SampleResult, SampleSpec } from './spec';
import type { PrepareSpec } from './worker';

export interface BenchOptions {
  quick: boolean;
  /** Rounds per configuration and side (each a fresh child); the median is reported. */
  rounds: number;
  threads: number;
  workDir: string;
  /** Wait for other processes to keep fewer than this many cores busy before each child... */
  quietCores: number;
  /** ...but never longer than this in all (ms). */
  waitBudgetMs: number;
  /** Until this time (Date.now()), a round disturbed by other processes is run again. */
  retryUntil: number;
  /** Where both sides sample; default 'cpu'. */
  device?: 'cpu' | 'cuda';
  log: (line: string) => void;
}

export interface ModelSet {
  name: string;
  unet: UnetOptions;
  classifier?: ClassifierOptions;
  files: ModelFiles;
}

/** One side's measurements of one configuration, over the rounds. */
export interface Measured {
  spec: SampleSpec;
  side: 'ours' | 'python';
  results: SampleResult[];
  /** Per round: cores other processes kept busy while the child ran. */
  externalCores: number[];
  /** Per round: the quiet-wait reading before the child started. */
  busyBefore: number[];
}

export interface Summary {
  /** Rounds the figures are taken from / rounds run (disturbed rounds are left out when others are clean). */
  rounds: string;
  msPerStep: number;
  minMsPerStep: number;
  maxMsPerStep: number;
  msPerSample: number;
  warmupMs: number;
  coresUsed: number;
  rssPeakKiB: number;
  rssStartKiB: number;
  externalCores: number;
  /** Minor page faults per step: memory the allocator handed back to the kernel and touched again. */
  faultsPerStep: number;
  breakdown?: SampleResult['breakdown'];
  split?: SampleResult['split'];
}

/** Rounds where other processes kept more cores busy than this are left out when cleaner ones exist. */
export const QUIET_CORES = 0.3;

export function summarize(m: Measured): Summary {
  const clean = m.results.filter((_, i) => m.externalCores[i] <= QUIET_CORES);
  const used = clean.length ? clean : m.results;
  const perStep = used.flatMap((r) => r.timesMs.map((t) => t / r.steps));
  const perSample = used.flatMap((r) => r.timesMs);
  const pick = <T>(f: (r: SampleResult) => T | undefined): T | undefined => used.map(f).find((v) => v !== undefined && v !== null);
  const medianOf = (f: (r: SampleResult) => number): number => median(used.map(f));
  const splits = used.map((r) => r.split).filter((s): s is NonNullable<SampleResult['split']> => !!s);
  return {
    rounds: `${used.length}/${m.results.length}`,
    msPerStep: median(perStep),
    minMsPerStep: Math.min(...perStep),
    maxMsPerStep: Math.max(...perStep),
    msPerSample: median(perSample),
    warmupMs: medianOf((r) => r.warmupMs),
    coresUsed: medianOf((r) => r.runCpuMs / r.timesMs.reduce((a, b) => a + b, 0)),
    rssPeakKiB: medianOf((r) => r.rssPeakKiB),
    rssStartKiB: medianOf((r) => r.rssStartKiB),
    externalCores: Math.max(...m.externalCores.filter((e) => !clean.length || e <= QUIET_CORES)),
    faultsPerStep: medianOf((r) => r.runMinorFaults / (r.steps * r.timesMs.length)),
    breakdown: pick((r) => r.breakdown),
    split: splits.length
      ? {
          modelMs: median(splits.map((s) => s.modelMs)),
          guidanceMs: median(splits.map((s) => s.guidanceMs)),
          otherMs: median(splits.map((s) => s.otherMs)),
        }
      : undefined,
  };
}

// ---------------------------------------------------------------------------------------
// Models

// The shipped model's networks (lib/recipe.ts), with seeded random weights.
const SHIPPED_UNET: UnetOptions = RECIPE.unet;
const SHIPPED_CLASSIFIER: ClassifierOptions = RECIPE.classifier;
const SHIPPED_SIZE = RECIPE.imageSize;
const SEED_UNET: UnetOptions = { dim: 64, dimMults: [1, 2, 4, 8], channels: 3 };
const SEED_CLASSIFIER: ClassifierOptions = {
  imageSize: 128,
  channels: 3,
  numClasses: 1000,
  dim: 32,
  dimMults: [1, 2, 4, 8],
  attentionResolutions: [16],
  pool: 'attention',
};

// Issue 13's headline row: guided DDPM on Unet(32, [1, 2, 4]) at 32x32, batch 8, 30 steps.
const DDPM_UNET: UnetOptions = { dim: 32, dimMults: [1, 2, 4], channels: 3 };
const DDPM_CLASSIFIER: ClassifierOptions = { ...RECIPE.classifier, channels: 3 };

/** For timing what surrounds a step (the JS hop), not the step. */
const TINY_UNET: UnetOptions = { dim: 8, dimMults: [1, 2], channels: 1 };

const prepared = new Map<string, ModelSet>();

/** Seeded random weights, saved once per run by a node child: TorchScript + safetensors. */
export async function models(name: 'shipped' | 'seed' | 'tiny' | 'ddpm', opts: BenchOptions): Promise<ModelSet> {
  const done = prepared.get(name);
  if (done) return done;
  const unet = { shipped: SHIPPED_UNET, seed: SEED_UNET, tiny: TINY_UNET, ddpm: DDPM_UNET }[name];
  const classifier = { shipped: SHIPPED_CLASSIFIER, seed: SEED_CLASSIFIER, tiny: undefined, ddpm: DDPM_CLASSIFIER }[name];
  const file = (what: string): string => path.join(opts.workDir, `${name}-${what}`);
  const files: ModelFiles = {
    unetPt: file('unet.pt'),
    unetSafetensors: file('unet.safetensors'),
    ...(classifier ? { classifierPt: file('classifier.pt'), classifierSafetensors: file('classifier.safetensors') } : {}),
  };
  const spec: PrepareSpec = { seed: 1234, unet, classifier, files };
  await runChild(process.execPath, [path.join(__dirname, 'worker.js'), 'prepare', JSON.stringify(spec)]);
  const set = { name, unet, classifier, files };
  prepared.set(name, set);
  return set;
}

// ---------------------------------------------------------------------------------------
// Running one configuration

export interface Config {
  models: ModelSet;
  imageSize: number;
  batch: number;
  timesteps: number;
  samplingTimesteps: number;
  guidance: GuidanceKind;
  breakdown?: boolean;
  /** Environment for both sides' children; default MALLOC_TUNED (undefined values unset a variable). */
  env?: Record<string, string | undefined>;
  /** Python samples on a thread of its own, as ours does. */
  pythonThread?: boolean;
  /**
   * Steps of the untimed first sample; default 2 (profile, then optimize) on the CPU, 20 on
   * CUDA, where the fuser compiles kernels (NVRTC) for the classifier's backward over its first
   * guided calls: with 2 warm-up steps that compiling lands in the timed sample on both sides.
   */
  warmupSteps?: number;
  /** Timed samples per child; default 1. */
  runs?: number;
  /** Python's Unet: the reference's eager ops (default) or our TorchScript file. */
  pythonUnet?: 'eager' | 'script';
  autocast?: 'float16' | 'bfloat16';
  /** Our side on CUDA: false runs every model call eagerly. */
  cudaGraph?: boolean;
}

let waitSpentMs = 0;

export function specFor(cfg: Config, opts: BenchOptions, outPath?: string): SampleSpec {
  const numClasses = cfg.models.classifier?.numClasses ?? 1;
  return {
    unet: cfg.models.unet,
    classifier: cfg.guidance === 'none' ? undefined : cfg.models.classifier,
    files: cfg.models.files,
    imageSize: cfg.imageSize,
    channels: cfg.models.unet.channels ?? 3,
    timesteps: cfg.timesteps,
    samplingTimesteps: cfg.samplingTimesteps,
    batch: cfg.batch,
    seed: 42,
    threads: opts.threads,
    guidance: cfg.guidance,
    classifierScale: 3,
    y: Array.from({ length: cfg.batch }, (_, i) => (i * 7) % numClasses),
    warmupSteps: cfg.warmupSteps ?? Math.min(opts.device === 'cuda' ? 20 : 2, cfg.samplingTimesteps),
    runs: cfg.runs ?? 1,
    outPath,
    breakdown: cfg.breakdown,
    pythonThread: cfg.pythonThread,
    device: opts.device,
    pythonUnet: cfg.pythonUnet,
    autocast: cfg.autocast,
    cudaGraph: cfg.cudaGraph,
  };
}

async function runOne(side: 'ours' | 'python', spec: SampleSpec, opts: BenchOptions, env: Record<string, string | undefined> = MALLOC_TUNED): Promise<{ child: ChildResult<SampleResult>; busy: number }> {
  const budget = Math.max(0, opts.waitBudgetMs - waitSpentMs);
  const quiet = await waitForQuiet(opts.quietCores, Math.min(budget, 60_000));
  waitSpentMs += quiet.waitedMs;
  const child =
    side === 'ours'
      ? await runChild<SampleResult>(process.execPath, [path.join(__dirname, 'worker.js'), 'sample', JSON.stringify(spec)], env)
      : await runChild<SampleResult>(PYTHON, [path.join(BENCH_SRC, 'python_sampler.py'), JSON.stringify(spec)], env);
  return { child, busy: quiet.busy };
}

export interface Pair {
  ours?: Measured;
  python?: Measured;
  /** The step's FLOPs and the best matmul peak the Python children measured (see flopBoundMs). */
  flops?: FlopCount;
  /** Largest |ours - python| over the first round's images (same seed, same weights)... */
  maxAbsDiff?: number;
  /** ...and the largest |value| there, to read it against (an unclamped guided x0 can be large). */
  maxAbs?: number;
}

const flopCache = new Map<string, FlopCount>();

/** The count with the highest float32 peak: a bound is the machine at its best, not under load. */
function bestPeak(counts: (FlopCount | undefined)[] = []): FlopCount | undefined {
  const have = counts.filter((c): c is FlopCount => !!c);
  if (!have.length) return undefined;
  const best = { ...have.reduce((a, b) => (b.peakGflops > a.peakGflops ? b : a)) };
  const bf = have.filter((c) => c.unetPeakGflops !== undefined);
  if (bf.length) {
    const top = bf.reduce((a, b) => (b.unetPeakGflops! > a.unetPeakGflops! ? b : a));
    best.unetPeakGflops = top.unetPeakGflops;
    best.unetPeakOp = top.unetPeakOp;
  }
  return best;
}

/** ms one step cannot beat: the Unet's FLOPs at its matmul peak (bf16 under autocast) plus the guidance's at the float32 peak. */
export function flopBoundMs(f: FlopCount): number {
  return f.unetFlops / ((f.unetPeakGflops ?? f.peakGflops) * 1e6) + f.guidanceFlops / (f.peakGflops * 1e6);
}

function readF32(file: string): Float32Array | null {
  if (!fs.existsSync(file)) return null;
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/**
 * Runs cfg on the given sides for opts.rounds rounds, alternating which side goes first so
 * that a drift in the machine's load does not favour one of them.
 */
export async function measure(label: string, cfg: Config, sides: ('ours' | 'python')[], opts: BenchOptions): Promise<Pair> {
  const pair: Pair = {};
  const key = label.replace(/[^a-z0-9]+/gi, '_');
  const outs = { ours: path.join(opts.workDir, `${key}-ours.f32`), python: path.join(opts.workDir, `${key}-python.f32`) };
  for (let round = 0; round < opts.rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      // Python has one guidance, the seed's classifier_cond_fn: any kind but 'none' runs it.
      const spec = specFor(cfg, opts, round === 0 ? outs[side] : undefined);
      let { child, busy } = await runOne(side, spec, opts, cfg.env);
      // A round that other jobs disturbed is measured again while the patience lasts.
      while (child.externalCores > opts.quietCores && Date.now() < opts.retryUntil) {
        opts.log(`  ${label} [${side}] round ${round + 1}: other processes took ${child.externalCores.toFixed(2)} cores; measuring again`);
        ({ child, busy } = await runOne(side, spec, opts, cfg.env));
      }
      const m = (pair[side] ??= { spec, side, results: [], externalCores: [], busyBefore: [] });
      m.results.push(child.result);
      m.externalCores.push(child.externalCores);
      m.busyBefore.push(busy);
      const r = child.result;
      opts.log(
        `  ${label} [${side}] round ${round + 1}/${opts.rounds}: ${(r.timesMs[0] / r.steps).toFixed(1)} ms/step, ` +
          `peak RSS ${(r.rssPeakKiB / 1024).toFixed(0)} MiB, other load ${child.externalCores.toFixed(2)} cores`,
      );
    }
  }
  pair.flops = bestPeak(pair.python?.results.map((r) => r.flops));
  if (!pair.flops) {
    // Our side alone: a Python child counts the same step's FLOPs (nothing sampled), once per configuration.
    const key = JSON.stringify([cfg.models.name, cfg.imageSize, cfg.batch, cfg.guidance === 'js-zero' ? 'none' : cfg.guidance, cfg.autocast]);
    let counted = flopCache.get(key);
    if (!counted) {
      const { child } = await runOne('python', { ...specFor(cfg, opts), flopsOnly: true }, opts, cfg.env);
      counted = child.result.flops;
      if (counted) flopCache.set(key, counted);
    }
    pair.flops = counted;
  }
  const a = readF32(outs.ours);
  const b = readF32(outs.python);
  if (a && b && a.length === b.length) {
    let d = 0;
    let m = 0;
    for (let i = 0; i < a.length; i++) {
      d = Math.max(d, Math.abs(a[i] - b[i]));
      m = Math.max(m, Math.abs(a[i]));
    }
    pair.maxAbsDiff = d;
    pair.maxAbs = m;
  }
  return pair;
}

// ---------------------------------------------------------------------------------------
// The cases

export interface CaseResult {
  name: string;
  title: string;
  rows: { label: string; pair: Pair; cfg: Config; key?: string }[];
}

/**
 * glibc malloc: serve blocks up to 32 MiB from the heap, return heap memory only past 256 MiB
 * and grow it 256 MiB at a time. Every child runs with it unless its row says otherwise: without
 * it Python's step is mostly page faults (issue 13), and we measure against the tuned reference.
 */
export const MALLOC_TUNED: Record<string, string | undefined> = {
  MALLOC_MMAP_THRESHOLD_: '33554432',
  MALLOC_TRIM_THRESHOLD_: '268435456',
  MALLOC_TOP_PAD_: '268435456',
};
/** glibc's own defaults (the variables unset). */
export const MALLOC_DEFAULT: Record<string, string | undefined> = Object.fromEntries(Object.keys(MALLOC_TUNED).map((k) => [k, undefined]));
export const MALLOC_TUNED_TEXT = Object.entries(MALLOC_TUNED).map(([k, v]) => `${k}=${v}`).join(' ');

/**
 * (0) issue 13's headline: guided DDPM (ancestral steps, condition_mean) over T = 30 on
 * Unet(32, [1, 2, 4]) at 32x32, batch 8, against the seed's own sampling code (the Python
 * mirror, the reference Unet run eagerly), float32 and under bfloat16 autocast.
 */
export async function ddpmConfig(opts: BenchOptions): Promise<Config> {
  const set = await models('ddpm', opts);
  return { models: set, imageSize: 32, batch: 8, timesteps: 30, samplingTimesteps: 30, guidance: 'native', breakdown: !opts.quick };
}

export async function caseDdpm(opts: BenchOptions): Promise<CaseResult> {
  const cfg = await ddpmConfig(opts);
  const rows: CaseResult['rows'] = [{ label: 'guided DDPM 30 steps, float32, vs the seed\'s code (reference Unet, eager)', cfg, pair: await measure('ddpm guided', cfg, ['ours', 'python'], opts) }];
  const bf16: Config = { ...cfg, breakdown: false, autocast: 'bfloat16' };
  rows.push({ label: 'the same, both sides with the Unet under bfloat16 autocast (guidance float32)', cfg: bf16, pair: await measure('ddpm guided bf16', bf16, ['ours', 'python'], opts) });
  if (!opts.quick) {
    const script: Config = { ...cfg, breakdown: false, pythonUnet: 'script' };
    rows.push({ label: 'the same, float32, Python with our TorchScript Unet (torch.jit.load)', cfg: script, pair: await measure('ddpm guided script', script, ['python'], opts) });
    const untuned: Config = { ...cfg, breakdown: false, env: MALLOC_DEFAULT };
    rows.push({ label: "the same, float32, both sides with glibc's malloc defaults (MALLOC_* unset)", cfg: untuned, pair: await measure('ddpm guided malloc default', untuned, ['ours', 'python'], opts) });
  }
  return { name: 'ddpm', title: "(0) Guided DDPM, Unet(32, [1, 2, 4]) 32x32 batch 8, 30 steps, vs the seed's code", rows };
}

/** (1) the shipped model's networks at 32x32, classifier-guided DDIM, batch 16. */
export async function caseShipped(opts: BenchOptions): Promise<CaseResult> {
  const set = await models('shipped', opts);
  const cfg: Config = { models: set, imageSize: SHIPPED_SIZE, batch: 16, timesteps: 1000, samplingTimesteps: opts.quick ? 10 : 50, guidance: 'native', breakdown: true };
  const rows: CaseResult['rows'] = [{ label: `DDIM ${cfg.samplingTimesteps} steps: native classifierGuidance vs Python cond_fn (reference Unet, eager)`, cfg, pair: await measure('shipped guided', cfg, ['ours', 'python'], opts) }];
  const js: Config = { ...cfg, guidance: 'js', breakdown: false };
  rows.push({ label: `DDIM ${cfg.samplingTimesteps} steps: JS classifierCondFn vs Python cond_fn (reference Unet, eager)`, cfg: js, pair: await measure('shipped guided js', js, ['ours', 'python'], opts) });
  // Python running our TorchScript Unet (the same graph as ours): what is left is the sampler.
  const script: Config = { ...cfg, samplingTimesteps: 10, breakdown: false, pythonUnet: 'script' };
  rows.push({ label: 'DDIM 10 steps, Python with our TorchScript Unet (torch.jit.load)', cfg: script, pair: await measure('shipped guided script', script, ['python'], opts) });
  if (opts.device === 'cuda') {
    const bf16: Config = { ...cfg, breakdown: false, autocast: 'bfloat16' };
    rows.push({ label: `DDIM ${cfg.samplingTimesteps} steps, both sides with the Unet under bfloat16 autocast`, cfg: bf16, pair: await measure('shipped guided bf16', bf16, ['ours', 'python'], opts) });
    const big: Config = { ...cfg, batch: 256, breakdown: false };
    rows.push({ label: `batch 256, DDIM ${cfg.samplingTimesteps} steps, guided`, cfg: big, pair: await measure('shipped guided b256', big, ['ours', 'python'], opts) });
    // CUDA graphs replay the Unet call; the classifier's gradient stays eager.
    const eager: Config = { ...cfg, breakdown: false, cudaGraph: false };
    rows.push({ label: `DDIM ${cfg.samplingTimesteps} steps, guided, ours without CUDA graphs (cudaGraph: false)`, cfg: eager, pair: await measure('shipped guided nograph', eager, ['ours'], opts) });
    const unguided: Config = { ...cfg, breakdown: false, guidance: 'none' };
    rows.push({ label: `DDIM ${cfg.samplingTimesteps} steps, unguided`, cfg: unguided, pair: await measure('shipped unguided', unguided, ['ours', 'python'], opts) });
    const unguidedEager: Config = { ...unguided, cudaGraph: false };
    rows.push({ label: `DDIM ${cfg.samplingTimesteps} steps, unguided, ours without CUDA graphs (cudaGraph: false)`, cfg: unguidedEager, pair: await measure('shipped unguided nograph', unguidedEager, ['ours'], opts) });
    return { name: 'shipped', title: '(1) Shipped model, classifier-guided DDIM, batch 16', rows };
  }
  // Where the allocator costs: Python sampling on a thread of its own, as ours does, and
  // both sides with glibc's malloc defaults (every other row runs with MALLOC_TUNED). A step
  // costs the same at any number of steps, so these rows take 10.
  const short: Config = { ...cfg, samplingTimesteps: 10, breakdown: false };
  const threaded: Config = { ...short, pythonThread: true, env: MALLOC_DEFAULT };
  rows.push({ label: "DDIM 10 steps, glibc's malloc defaults, Python sampling on a thread of its own (as ours does)", cfg: threaded, pair: await measure('shipped guided pythread', threaded, ['python'], opts) });
  const untuned: Config = { ...short, env: MALLOC_DEFAULT };
  rows.push({ label: "DDIM 10 steps, both sides with glibc's malloc defaults (MALLOC_* unset)", cfg: untuned, pair: await measure('shipped guided malloc default', untuned, ['ours', 'python'], opts) });
  return { name: 'shipped', title: '(1) Shipped model, classifier-guided DDIM, batch 16', rows };
}

/** (2) the seed's configuration scaled to a CPU: Unet(64, [1,2,4,8]) at 128x128, batch 4, guided. */
export async function caseSeed(opts: BenchOptions): Promise<CaseResult> {
  const set = await models('seed', opts);
  // One warm-up step here (a step is seconds): the first timed step also pays the executor's optimization.
  const ddim: Config = { models: set, imageSize: 128, batch: 4, timesteps: 1000, samplingTimesteps: opts.quick ? 2 : 3, guidance: 'native', warmupSteps: 1 };
  const rows = [{ label: `DDIM ${ddim.samplingTimesteps} steps (condition_score)`, cfg: ddim, pair: await measure('seed ddim', ddim, ['ours', 'python'], opts) }];
  if (!opts.quick) {
    // Ancestral steps need a schedule of that many timesteps; a step costs the same at any T.
    const ancestral: Config = { ...ddim, timesteps: 3, samplingTimesteps: 3 };
    rows.push({ label: 'ancestral 3 steps, T=3 (condition_mean at the mean)', cfg: ancestral, pair: await measure('seed ancestral', ancestral, ['ours', 'python'], opts) });
  }
  return { name: 'seed', title: "(2) The seed's configuration on a CPU: Unet(dim 64, [1,2,4,8]), 128x128, batch 4, guided", rows };
}

/** (3) the JS hop: the same guided sample with the guidance native, in JS, or a JS no-op. */
export async function caseJsCondFn(opts: BenchOptions): Promise<CaseResult> {
  const set = await models('shipped', opts);
  const base: Config = { models: set, imageSize: SHIPPED_SIZE, batch: 16, timesteps: 1000, samplingTimesteps: opts.quick ? 10 : 20, guidance: 'none' };
  const variants: [string, GuidanceKind][] = [
    ['no guidance', 'none'],
    ['native classifierGuidance', 'native'],
    ['JS classifierCondFn', 'js'],
    ['JS condFn returning zeros (the hop alone)', 'js-zero'],
  ];
  const rows: CaseResult['rows'] = [];
  for (const [label, guidance] of variants) {
    const cfg: Config = { ...base, guidance, breakdown: guidance === 'js' };
    rows.push({ label, cfg, key: guidance, pair: await measure(`jscondfn ${guidance}`, cfg, ['ours'], opts) });
  }
  // The hop is small against a batch-16 step and its noise: measure it again where a step is
  // short and steady, on a tiny Unet (the hop does not depend on the model).
  const tiny = await models('tiny', opts);
  const small: Config = { models: tiny, imageSize: 8, batch: 1, timesteps: 1000, samplingTimesteps: opts.quick ? 50 : 200, guidance: 'none', runs: 3 };
  for (const [label, guidance] of [['no guidance', 'none'], ['JS condFn returning zeros', 'js-zero']] as [string, GuidanceKind][]) {
    const cfg: Config = { ...small, guidance };
    rows.push({ label: `tiny Unet(dim 8, [1,2]) 8x8, batch 1, ${label} (DDIM ${small.samplingTimesteps} steps)`, cfg, key: `small-${guidance}`, pair: await measure(`jscondfn tiny ${guidance}`, cfg, ['ours'], opts) });
  }
  return { name: 'js-condfn', title: `(3) JS condFn vs native classifierGuidance (ours only, case 1 configuration, DDIM ${base.samplingTimesteps} steps)`, rows };
}

/** (4) scaling, unguided: per-step time vs batch at 32x32, and vs image size at batch 4. */
export async function caseScaling(opts: BenchOptions): Promise<CaseResult> {
  const set = await models('shipped', opts);
  const steps = opts.quick ? 2 : 3;
  const configs: [string, number, number][] = [];
  for (const batch of opts.quick ? [1, 16] : [1, 4, 16, 64]) configs.push([`batch ${batch} @ 32x32`, batch, 32]);
  for (const size of opts.quick ? [64] : [64, 128]) configs.push([`batch 4 @ ${size}x${size}`, 4, size]);
  const rows: CaseResult['rows'] = [];
  for (const [label, batch, imageSize] of configs) {
    const cfg: Config = { models: set, imageSize, batch, timesteps: 1000, samplingTimesteps: steps, guidance: 'none' };
    rows.push({ label, cfg, pair: await measure(`scaling ${label}`, cfg, ['ours', 'python'], opts) });
  }
  return { name: 'scaling', title: `(4) Scaling, unguided DDIM (${steps} steps), case 1 Unet`, rows };
}

export const CASES: Record<string, (opts: BenchOptions) => Promise<CaseResult>> = {
  ddpm: caseDdpm,
  shipped: caseShipped,
  seed: caseSeed,
  'js-condfn': caseJsCondFn,
  scaling: caseScaling,
};
