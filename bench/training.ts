// The training case of `npm run bench` (`-- --case training`): one step of our trainDiffusion
// against the reference's step in Python (p_losses + Adam + gradient clipping + EMA), on the
// shipped recipe's Unet (lib/recipe.ts) with the same initial weights, data, draws, batch,
// hyper-parameters and threads. Each configuration and side runs in a child process of its
// own (ours: train_worker.js, Python: python_trainer.py), rounds alternating the order.
import * as path from 'path';
import { RECIPE } from '../lib/recipe';
import type { UnetOptions } from '../lib';
import { BenchOptions, MALLOC_TUNED, models } from './cases';
import { BENCH_SRC, ChildResult, fmt, median, mib, PYTHON, runChild, table, waitForQuiet } from './common';
import type { ModelFiles } from './spec';

/** What bench/training.ts asks of a training child; both sides read the same JSON. */
export interface TrainSpec {
  unet: UnetOptions;
  files: ModelFiles;
  imageSize: number;
  channels: number;
  timesteps: number;
  betaSchedule: 'cosine' | 'linear';
  objective: 'pred_noise' | 'pred_x0' | 'pred_v';
  batch: number;
  threads: number;
  lr: number;
  /** Adam's betas and eps: ours are trainDiffusion's defaults, given to Python explicitly. */
  betas: [number, number];
  eps: number;
  weightDecay: number;
  gradClip: number;
  emaDecay: number;
  /** The trainer's generator (batch indices, timesteps, noise). */
  seed: number;
  /** Training images: manual_seed(dataSeed), rand([dataCount, C, S, S]) * 2 - 1. */
  dataSeed: number;
  dataCount: number;
  /** Untimed steps first (the TorchScript executor profiles, then optimizes), then timed ones. */
  warmupSteps: number;
  steps: number;
  /** Python only: the reference Unet as eager ops, or our TorchScript file (torch.jit.load). */
  pythonUnet?: 'eager' | 'script';
  /** Python only: torch.optim.Adam's implementation. */
  adam?: 'fused' | 'foreach' | 'for-loop';
  /** Python only: count one step's FLOPs (torch.utils.flop_counter) and time a 2048^3 sgemm. */
  flops?: boolean;
  /** Python only: the autograd profiler's top ops over 3 steps. */
  profile?: boolean;
  /** Both sides: the forward (model and loss) under bfloat16 autocast. */
  autocast?: 'bfloat16';
}

export interface TrainBenchResult {
  side: 'ours' | 'python';
  /** Wall time of each timed step. */
  timesMs: number[];
  warmupMs: number;
  /** Every step's loss (warm-up steps first). */
  losses: number[];
  runCpuMs: number;
  runMinorFaults: number;
  cpuMs: number;
  rssStartKiB: number;
  rssPeakKiB: number;
  threads: number;
  flopsPerStep?: number;
  sgemmGflops?: number;
  /** With autocast: the same matmul in bfloat16. */
  bf16GemmGflops?: number;
  profile?: { name: string; selfMs: number; calls: number }[];
}

type SideKey = 'ours' | 'eager' | 'script' | 'oursBf16' | 'eagerBf16';
const SIDES: SideKey[] = ['ours', 'eager', 'script', 'oursBf16', 'eagerBf16'];
const SIDE_NAMES: Record<SideKey, string> = {
  ours: 'ours',
  eager: 'Python, eager Unet',
  script: 'Python, TorchScript Unet',
  oursBf16: 'ours, bfloat16 autocast',
  eagerBf16: 'Python, eager Unet, bfloat16 autocast',
};

/** glibc malloc tuned as the issue measures Python (both sides get it). */
const MALLOC_ENV = { ...MALLOC_TUNED, MALLOC_TOP_PAD_: '268435456' };

interface Runs {
  results: TrainBenchResult[];
  external: number[];
}

function specFor(files: ModelFiles, threads: number, quick: boolean): TrainSpec {
  const o = RECIPE.unetTrain;
  return {
    unet: RECIPE.unet,
    files,
    imageSize: RECIPE.imageSize,
    channels: RECIPE.channels,
    timesteps: RECIPE.timesteps,
    betaSchedule: RECIPE.betaSchedule,
    objective: RECIPE.objective,
    batch: o.batchSize,
    threads,
    lr: o.lr,
    betas: [0.9, 0.99],
    eps: 1e-8,
    weightDecay: 0,
    gradClip: o.gradClip,
    emaDecay: o.emaDecay,
    seed: o.seed,
    dataSeed: 7,
    dataCount: quick ? 64 : 256,
    warmupSteps: 3,
    steps: quick ? 4 : 12,
  };
}

async function runSide(side: SideKey, spec: TrainSpec, opts: BenchOptions): Promise<ChildResult<TrainBenchResult>> {
  await waitForQuiet(opts.quietCores, Math.min(opts.waitBudgetMs, 60_000));
  const bf16 = side === 'oursBf16' || side === 'eagerBf16';
  if (bf16) spec = { ...spec, autocast: 'bfloat16' };
  if (side === 'ours' || side === 'oursBf16') return runChild<TrainBenchResult>(process.execPath, [path.join(__dirname, 'train_worker.js'), JSON.stringify(spec)], MALLOC_ENV);
  const py: TrainSpec = { ...spec, pythonUnet: side === 'script' ? 'script' : 'eager', adam: 'fused', flops: true };
  return runChild<TrainBenchResult>(PYTHON, [path.join(BENCH_SRC, 'python_trainer.py'), JSON.stringify(py)], MALLOC_ENV);
}

const perRound = (r: TrainBenchResult): number => median(r.timesMs);

function summary(runs?: Runs): { ms: number; lo: number; hi: number; n: number } | undefined {
  if (!runs || runs.results.length === 0) return undefined;
  const v = runs.results.map(perRound);
  return { ms: median(v), lo: Math.min(...v), hi: Math.max(...v), n: v.length };
}

const cell = (s?: ReturnType<typeof summary>): string => (s ? `${fmt(s.ms)} (${fmt(s.lo)}..${fmt(s.hi)})` : 'n/a');

/** Runs the case and returns its Markdown section. */
export async function trainingSection(opts: BenchOptions): Promise<string> {
  const set = await models('shipped', opts);
  const threadCounts = [...new Set([1, opts.threads])];
  const rows: string[][] = [];
  const details: string[][] = [];
  let profile: TrainBenchResult['profile'];
  const bf16VsF32: string[] = [];
  for (const threads of threadCounts) {
    const spec = specFor(set.files, threads, opts.quick);
    const runs: Partial<Record<SideKey, Runs>> = {};
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? SIDES : [...SIDES].reverse();
      for (const side of order) {
        let child = await runSide(side, spec, opts);
        while (child.externalCores > opts.quietCores && Date.now() < opts.retryUntil) {
          opts.log(`  training ${threads}T [${side}] round ${round + 1}: other processes took ${child.externalCores.toFixed(2)} cores; measuring again`);
          child = await runSide(side, spec, opts);
        }
        const r = (runs[side] ??= { results: [], external: [] });
        r.results.push(child.result);
        r.external.push(child.externalCores);
        opts.log(`  training ${threads}T [${side}] round ${round + 1}/${opts.rounds}: ${fmt(perRound(child.result))} ms/step, other load ${child.externalCores.toFixed(2)} cores`);
      }
    }
    const [o, e, sc, ob, eb] = SIDES.map((k) => summary(runs[k]));
    const pyF32 = [...(runs.eager?.results ?? []), ...(runs.script?.results ?? [])];
    const flops = median(pyF32.map((r) => r.flopsPerStep ?? NaN).filter(Number.isFinite));
    const peak = median(pyF32.map((r) => r.sgemmGflops ?? NaN).filter(Number.isFinite));
    const bf16Peak = median((runs.eagerBf16?.results ?? []).map((r) => r.bf16GemmGflops ?? NaN).filter(Number.isFinite));
    const boundMs = (flops / (peak * 1e9)) * 1000;
    const bf16BoundMs = (flops / (bf16Peak * 1e9)) * 1000;
    // Same weights, data and draws: the sides' first losses agree to float rounding.
    const firstLosses = (a?: Runs, b?: Runs): string => {
      const l0 = a?.results[0]?.losses;
      const l1 = b?.results[0]?.losses;
      return l0 && l1 ? Math.max(...l0.slice(0, 3).map((v, i) => Math.abs(v - l1[i]))).toExponential(1) : 'n/a';
    };
    const load = fmt(Math.max(...SIDES.flatMap((k) => runs[k]?.external ?? [])), 2);
    const x = (py?: ReturnType<typeof summary>, us?: ReturnType<typeof summary>): string => (py && us ? `${fmt(py.ms / us.ms, 2)}x` : 'n/a');
    const pct = (bound: number, us?: ReturnType<typeof summary>): string => (us && Number.isFinite(bound) ? `${fmt((bound / us.ms) * 100, 0)}%` : 'n/a');
    rows.push([String(threads), 'float32', cell(o), cell(e), x(e, o), cell(sc), x(sc, o), `${fmt(boundMs)} (${fmt(flops / 1e9, 2)} GFLOP at ${fmt(peak, 0)} GFLOP/s sgemm)`, pct(boundMs, o), firstLosses(runs.ours, runs.eager), load]);
    rows.push([String(threads), 'bfloat16 autocast', cell(ob), cell(eb), x(eb, ob), 'not run', 'n/a', `${fmt(bf16BoundMs)} (at ${fmt(bf16Peak, 0)} GFLOP/s bf16 gemm)`, pct(bf16BoundMs, ob), firstLosses(runs.oursBf16, runs.eagerBf16), load]);
    if (ob && e) bf16VsF32.push(`${threads} thread${threads > 1 ? 's' : ''}: ${x(e, ob)}`);
    for (const k of SIDES) {
      const rs = runs[k]?.results ?? [];
      if (!rs.length) continue;
      const cores = median(rs.map((r) => r.runCpuMs / r.timesMs.reduce((a, b) => a + b, 0)));
      const faults = median(rs.map((r) => r.runMinorFaults / r.timesMs.length));
      details.push([String(threads), SIDE_NAMES[k], fmt(median(rs.map((r) => r.warmupMs)), 0), fmt(cores, 2), mib(median(rs.map((r) => r.rssPeakKiB))), fmt(faults, 0), String(rs.length)]);
    }
  }
  if (!opts.quick) {
    // Where Python's step goes (the same TorchScript graph as ours, 2 threads).
    const child = await runSide('script', { ...specFor(set.files, opts.threads, true), steps: 1, profile: true }, opts);
    profile = child.result.profile;
  }
  const o = RECIPE.unetTrain;
  const head = [
    `Unet(${JSON.stringify(RECIPE.unet)}), ${RECIPE.imageSize}x${RECIPE.imageSize}, batch ${o.batchSize}, ${RECIPE.objective}, ${RECIPE.betaSchedule} schedule, T = ${RECIPE.timesteps}; Adam lr ${o.lr}, betas (0.9, 0.99), eps 1e-8, gradient clipping at ${o.gradClip}, EMA decay ${o.emaDecay} every step (lib/recipe.ts).`,
    `Both sides with glibc malloc tuned (${Object.entries(MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}). Ours: \`trainDiffusion\` (one child per round), step ends stamped by onProgress; Python: \`bench/python_trainer.py\`, the reference's step (p_losses, \`torch.optim.Adam(fused=True)\`, \`clip_grad_norm_\`, \`torch._foreach_lerp_\` EMA) on the reference Unet as eager ops, or on our TorchScript Unet (\`torch.jit.load\`, profiling executor on). ${specFor(set.files, 1, opts.quick).warmupSteps} untimed warm-up steps, then ${specFor(set.files, 1, opts.quick).steps} timed; ms/step is the median over rounds of each child's median (min..max over rounds).`,
    'bfloat16 rows: both sides run the forward (model and loss) under bfloat16 autocast (ours: `trainDiffusion({ autocast: \'bfloat16\' })`, Python: `torch.autocast(\'cpu\', dtype=torch.bfloat16)`), the rest float32. FLOP bound: the step\'s FLOPs as `torch.utils.flop_counter.FlopCounterMode` counts them (convolutions and matmuls, forward and backward) over the best of 5 float32 2048x2048 `torch.mm` in the same Python child at the same threads (a measured sgemm peak; for bfloat16 rows the same matmul in bfloat16). "first losses" is the largest |ours - Python| over the first 3 steps\' losses (same weights, images and draws).',
  ].join('\n\n');
  const main = table(
    ['threads', 'precision (both sides)', 'ours ms/step', 'Python eager ms/step', 'ratio Python/ours', 'Python TorchScript ms/step', 'ratio', 'FLOP-bound ms/step', 'ours at % of bound', 'first losses: max abs diff', 'other load (cores, max)'],
    rows,
  );
  const cross = bf16VsF32.length ? `Ours with bfloat16 autocast against the reference's float32 step (Python eager): ${bf16VsF32.join('; ')}. Whether bfloat16 changes what is learned: bench/TRAIN_CURVE.md (\`node dist/bench/train_curve.js\`).` : '';
  const more = table(['threads', 'side', 'warm-up ms (all warm-up steps)', 'cores used', 'peak RSS MiB', 'page faults/step', 'rounds'], details);
  const parts = [head, main, cross, `<details><summary>details</summary>\n\n${more}\n\n</details>`];
  if (profile) {
    parts.push(
      `Python's step on our TorchScript Unet, ${opts.threads} threads, by op (torch.autograd.profiler, self CPU time, mean of 3 steps):\n\n` +
        table(['op', 'ms/step', 'calls/step'], profile.slice(0, 15).map((p) => [p.name, fmt(p.selfMs, 2), fmt(p.calls, 0)])),
    );
  }
  return `## (6) Training step: trainDiffusion vs the reference's step in Python\n\n${parts.join('\n\n')}`;
}
