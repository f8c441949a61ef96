// Training steps on both sides (issue 20, section 5): our openai.TrainLoop against
// openai/guided-diffusion's own TrainLoop (train_util.py), on the same reduced UNetModel with
// the same initial weights (drawn by their code, loaded by both) and the same batches.
//
//   npm run bench:openai-train -- --repo PATH [--rounds N] [--quick] [--out FILE]
//
// PATH is a checkout of openai/guided-diffusion (default GD_OPENAI_REPO). Each configuration
// runs each side in a fresh child per round, alternating who goes first; both children get
// glibc's malloc tuned (MALLOC_TUNED). Per row: wall ms per step (median of the timed steps),
// CPU ms per step (all threads; less sensitive to other load on the machine), page faults
// per step, peak RSS, and the load other processes put on the machine meanwhile. Writes
// bench/OPENAI_TRAIN.md (or --out).
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MALLOC_TUNED, MALLOC_TUNED_TEXT } from './cases';
import { BENCH_SRC, PYTHON, ROOT, fmt, median, mib, runChild, sourceCommit, table } from './common';
import type { OpenAITrainResult, OpenAITrainSpec } from './openai_train_spec';
import { openai } from '../lib';
import { OpenaiBenchArgs, parseOpenaiBenchArgs } from './openai_args';

const BASE = '--image_size 32 --num_channels 64 --num_res_blocks 2 --channel_mult 1,2,2,2 --attention_resolutions 16,8 --class_cond True ' +
  '--diffusion_steps 1000 --noise_schedule linear --use_fp16 False';
// hybrid: learned variance, trained by their L_hybrid (mse + the vb term on a frozen mean,
// rescaled_mse as their defaults make it); simple: fixed variance, mse only.
const MODELS = {
  hybrid: `${BASE} --learn_sigma True`,
  simple: `${BASE} --learn_sigma False`,
} as const;
type ModelName = keyof typeof MODELS;

interface Row {
  model: ModelName;
  batch: number;
  microbatch: number;
  threads: number;
}

const ROWS: Row[] = [
  { model: 'hybrid', batch: 8, microbatch: -1, threads: 1 },
  { model: 'hybrid', batch: 8, microbatch: -1, threads: 2 },
  { model: 'hybrid', batch: 8, microbatch: 4, threads: 2 },
  { model: 'simple', batch: 8, microbatch: -1, threads: 2 },
];

const USAGE = 'usage: npm run bench:openai-train -- --repo PATH [--rounds N] [--quick] [--out FILE]';

type Args = OpenaiBenchArgs;

function parseArgs(argv: string[]): Args {
  return parseOpenaiBenchArgs(argv, { out: path.join(ROOT, 'bench', 'OPENAI_TRAIN.md'), rounds: 2, usage: USAGE, needs: 'guided_diffusion/train_util.py' });
}

function specFor(args: Args, row: Row, dir: string): OpenAITrainSpec {
  return {
    repo: path.resolve(args.repo),
    modelFlags: openai.parseFlags(MODELS[row.model]) as OpenAITrainSpec['modelFlags'],
    trainFlags: { lr: 1e-4, weight_decay: 0, batch_size: row.batch, microbatch: row.microbatch, ema_rate: '0.9999' },
    files: { model: path.join(dir, `${row.model}-model.pt`), data: path.join(dir, `${row.model}-b${row.batch}-data.pt`) },
    threads: row.threads,
    steps: args.quick ? 2 : 4,
    warmupSteps: 1,
    seed: 7,
  };
}

function child(side: 'ours' | 'python', mode: string, spec: OpenAITrainSpec) {
  return side === 'python'
    ? runChild<OpenAITrainResult>(PYTHON, [path.join(BENCH_SRC, 'openai_train_python.py'), mode, JSON.stringify(spec)], MALLOC_TUNED)
    : runChild<OpenAITrainResult>(process.execPath, [path.join(__dirname, 'openai_train_worker.js'), mode, JSON.stringify(spec)], MALLOC_TUNED);
}

interface Measured {
  row: Row;
  ours: OpenAITrainResult[];
  python: OpenAITrainResult[];
  externalCores: number[];
}

const stepMs = (rs: OpenAITrainResult[]): number => median(rs.flatMap((r) => r.msPerStep));
const cpuStepMs = (rs: OpenAITrainResult[]): number => median(rs.map((r) => r.cpuMsPerStep));
const describe = (row: Row): string => `${row.model} batch ${row.batch} microbatch ${row.microbatch} ${row.threads}t`;

async function measure(args: Args, row: Row, dir: string, log: (s: string) => void): Promise<Measured> {
  const m: Measured = { row, ours: [], python: [], externalCores: [] };
  const spec = specFor(args, row, dir);
  for (let round = 0; round < args.rounds; round++) {
    const order: ('ours' | 'python')[] = round % 2 === 0 ? ['ours', 'python'] : ['python', 'ours'];
    for (const side of order) {
      const c = await child(side, 'train', spec);
      m[side].push(c.result);
      m.externalCores.push(c.externalCores);
      log(`${describe(row)} ${side}: ${c.result.msPerStep.map((v) => fmt(v, 0)).join(', ')} ms/step, cpu ${fmt(c.result.cpuMsPerStep, 0)} ms/step, ` +
        `loss ${c.result.losses.map((v) => v.toFixed(4)).join(', ')}, other load ${fmt(c.externalCores, 2)} cores`);
    }
  }
  return m;
}

// A row of several threads whose threads and the other processes' load want half a core or more
// beyond the machine's is likely to time contention (OpenMP's workers waiting for cores) more than
// either side's code: in a run with 1.1-1.4 cores of other load, 2-thread rows took 5-9x the CPU
// time of the 1-thread row on both sides.
function contentionNote(measured: Measured[]): string[] {
  const cores = os.cpus().length;
  const over = measured.filter((m) => m.row.threads > 1 && m.row.threads + Math.max(...m.externalCores) >= cores + 0.5);
  if (over.length === 0) return [];
  return ['', `Rows where threads plus the other load exceed this machine's ${cores} cores by half a core or more (${over.map((m) => describe(m.row)).join('; ')}) are likely to measure contention more than code ` +
    "(OpenMP's workers waiting for a core, their spinning counted as CPU time). Compare those rows only on a quiet machine."];
}

/** The checkout's commit (short), or 'unknown' where it is not a git checkout. */
function repoCommit(repo: string): string {
  try {
    return execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function report(args: Args, measured: Measured[], torchVersion: string): string {
  const head = ['model', 'batch', 'microbatch', 'threads', 'ours ms/step', 'theirs ms/step', 'theirs/ours (wall)', 'ours CPU ms/step', 'theirs CPU ms/step', 'theirs/ours (CPU)',
    'faults/step ours / theirs', 'peak RSS MiB ours / theirs', 'other load (cores)'];
  const rows = measured.map((m) => {
    const o = stepMs(m.ours);
    const p = stepMs(m.python);
    const oc = cpuStepMs(m.ours);
    const pc = cpuStepMs(m.python);
    const rss = (rs: OpenAITrainResult[]): number => Math.max(...rs.map((r) => r.rssPeakKiB));
    return [m.row.model, m.row.batch, m.row.microbatch === -1 ? '-' : m.row.microbatch, m.row.threads, fmt(o, 0), fmt(p, 0), fmt(p / o, 2), fmt(oc, 0), fmt(pc, 0), fmt(pc / oc, 2),
      `${Math.round(median(m.ours.map((r) => r.faultsPerStep)))} / ${Math.round(median(m.python.map((r) => r.faultsPerStep)))}`, `${mib(rss(m.ours))} / ${mib(rss(m.python))}`,
      fmt(Math.max(...m.externalCores), 2)];
  });
  const spec = specFor(args, ROWS[0], '');
  return [
    '# Training steps: our openai.TrainLoop against openai/guided-diffusion\'s TrainLoop',
    '',
    `Generated by \`npm run bench:openai-train -- --repo PATH${args.quick ? ' --quick' : ''}\` at ${sourceCommit()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${args.rounds} round(s) per side, alternating who goes first; their checkout at ${repoCommit(args.repo)}, Python torch ${torchVersion}.`,
    '',
    `Workload: their UNetModel reduced (\`${BASE}\`, plus \`--learn_sigma True\` for hybrid, their L_hybrid loss: rescaled mse + the vb term on a frozen mean; \`--learn_sigma False\` for simple: mse), ` +
      'random weights drawn by their code and loaded from the same .pt file by both sides, the same random batches (images in [-1, 1], class labels) from a .pt file, ' +
      'AdamW lr 1e-4, ema_rate 0.9999, float32; microbatch 4 accumulates the gradient of two halves of the batch. ' +
      `Theirs: TrainLoop.run_step (train_util.py) in one process (a one-process gloo group; mpi4py and blobfile stubbed); ours: openai.TrainLoop.runStep. Each step as their run_loop takes it: uniform timestep draw, forward, backward, optimizer step, EMA update, logged keys. ` +
      `Timed: ${spec.steps} steps after ${spec.warmupSteps} untimed step, on one TrainLoop per child. Both sides' children run with glibc's malloc tuned (${MALLOC_TUNED_TEXT}). ` +
      'Wall time suffers from other load on the machine (last column: cores kept busy by other processes during the children, the largest over the rounds); CPU time per step (all threads of the process) much less so.',
    '',
    table(head, rows),
    ...contentionNote(measured),
  ].join('\n') + '\n';
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-openai-train-bench-'));
  const log = (s: string): void => console.error(s);
  try {
    const rows = args.quick ? ROWS.slice(0, 1) : ROWS;
    const prepared = new Set<string>();
    let torchVersion = 'unknown';
    const measured: Measured[] = [];
    for (const row of rows) {
      const spec = specFor(args, row, dir);
      if (!prepared.has(spec.files.data)) {
        torchVersion = (await child('python', 'prepare', spec)).result.torch ?? torchVersion;
        prepared.add(spec.files.data);
      }
      measured.push(await measure(args, row, dir, log));
    }
    const text = report(args, measured, torchVersion);
    fs.writeFileSync(args.out, text);
    console.log(text);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
