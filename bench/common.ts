// Shared by the bench scripts: paths, child processes, CPU-contention readings, statistics
// and Markdown tables. Nothing here times anything by itself.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** The package root, whether running from bench/ or from dist/bench/. */
export const ROOT = path.resolve(__dirname, fs.existsSync(path.join(__dirname, '..', 'package.json')) ? '..' : path.join('..', '..'));
export const BENCH_SRC = path.join(ROOT, 'bench');
// PYTHON, else the venv scripts/python-env.js made (where the system python refuses pip), else python3.
export const PYTHON: string = require(path.join(ROOT, 'scripts', 'python-env.js')).testPython();

/** Every child prints exactly one line that starts with this, followed by JSON. */
export const RESULT_TAG = 'BENCH_RESULT ';

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The median of `reps` timed calls of fn (ms), after one untimed call. */
export function timeMedian(fn: () => void, reps = 5): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

export function min(values: readonly number[]): number {
  return values.length ? Math.min(...values) : NaN;
}

export function max(values: readonly number[]): number {
  return values.length ? Math.max(...values) : NaN;
}

/** Busy jiffies (all CPUs, everything but idle and iowait) and the total, from /proc/stat. */
export function cpuJiffies(): { busy: number; total: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = f[3] + (f[4] || 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU cores kept busy over the next `ms` by all processes (this one is idle meanwhile). */
export async function busyCores(ms = 1000): Promise<number> {
  const a = cpuJiffies();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuJiffies();
  if (!a || !b) return 0;
  return (b.busy - a.busy) / CLOCK_TICKS / (ms / 1000);
}

/**
 * Waits (at most maxWaitMs) until other processes keep less than `threshold` cores busy.
 * Returns the last reading and how long it waited. The machine is shared with other jobs:
 * a measurement taken while they compile says more about them than about us.
 */
export async function waitForQuiet(threshold: number, maxWaitMs: number): Promise<{ busy: number; waitedMs: number }> {
  const start = Date.now();
  let busy = await busyCores(500);
  while (busy > threshold && Date.now() - start < maxWaitMs) busy = await busyCores(1000);
  return { busy, waitedMs: Date.now() - start };
}

const live = new Set<ChildProcess>();
let childNice: number | undefined;

/**
 * Children run at nice N (negative: ahead of other jobs on a shared machine; needs root).
 * Linux schedules by session first when autogroup is on (/proc/sys/kernel/sched_autogroup_enabled),
 * where a plain `nice` only orders processes inside one session: so each child gets a session
 * of its own (detached) and that session's autogroup gets the nice value.
 */
export function setChildNice(n: number | undefined): void {
  childNice = n;
}

function applyNice(pid: number | undefined): void {
  if (childNice === undefined || pid === undefined) return;
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(childNice));
  } catch {
    // no autogroup (or not root): then the `nice -n` the child runs under is all there is
  }
}

/** Ends the children this process started (on Ctrl-C), each by its own pid. */
export function killChildren(): void {
  for (const child of live) child.kill('SIGTERM');
}

export interface ChildResult<T> {
  result: T;
  wallMs: number;
  /** Cores that processes other than the child kept busy while it ran (estimate). */
  externalCores: number;
}

/**
 * Runs a child process that prints one RESULT_TAG line of JSON; rejects with its stderr when
 * it fails. Also estimates the load other processes put on the machine during the run: all
 * busy CPU time (from /proc/stat) less the child's own CPU time, which it reports as cpuMs.
 */
export function runChild<T extends { cpuMs?: number }>(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildResult<T>> {
  return new Promise((resolve, reject) => {
    const before = cpuJiffies();
    const started = Date.now();
    const [file, argv] = childNice === undefined ? [cmd, args] : ['nice', ['-n', String(childNice), cmd, ...args]];
    const detached = childNice !== undefined;
    const child = spawn(file, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached });
    applyNice(child.pid);
    live.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      live.delete(child);
      const wallMs = Date.now() - started;
      const line = out.split('\n').find((l) => l.startsWith(RESULT_TAG));
      if (!line) {
        reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${err.slice(-4000)}${out.slice(-2000)}`));
        return;
      }
      if (code !== 0) {
        // The measurement is complete; a failure after it (at exit) is worth a word, not the run.
        process.stderr.write(`warning: ${path.basename(args[0] ?? cmd)} printed its result, then exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ').slice(0, 400)}\n`);
      }
      const result = JSON.parse(line.slice(RESULT_TAG.length)) as T;
      const after = cpuJiffies();
      let externalCores = 0;
      if (before && after) {
        const busyMs = ((after.busy - before.busy) / CLOCK_TICKS) * 1000;
        externalCores = Math.max(0, (busyMs - (result.cpuMs ?? 0)) / wallMs);
      }
      resolve({ result, wallMs, externalCores });
    });
  });
}

/** Prints one result line for the parent (see runChild). */
export function emitResult(value: unknown): void {
  process.stdout.write(`${RESULT_TAG}${JSON.stringify(value)}\n`);
}

export function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(out.trim()));
  });
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  torchPython: string;
  libtorch: string;
  kernel: string;
  date: string;
  loadavg: number[];
  /** The commit the figures are measured at (sourceCommit()). */
  commit: string;
}

/**
 * The commit of this checkout, short, for a report's "measured at": with a note when lib/, native/
 * or bench's sources differ from it (then the figures are of that commit plus those changes).
 */
export function sourceCommit(): string {
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
    } catch {
      return '';
    }
  };
  const head = git('rev-parse', '--short', 'HEAD');
  if (!head) return 'unknown (not a git checkout)';
  const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'lib', 'native', 'bench/*.ts', 'bench/*.py');
  return dirty ? `${head} + uncommitted changes (${dirty.split('\n').map((l) => l.slice(3)).join(', ')})` : head;
}

export async function machineInfo(): Promise<MachineInfo> {
  const lscpu = await sh('lscpu', []);
  const model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const torchPython = await sh(PYTHON, ['-c', 'import torch; print(torch.__version__)']);
  let libtorch = 'unknown';
  try {
    // include/torch/version.h where LibTorch has it; 2.13 defines TORCH_VERSION in torch/headeronly/version.h.
    const include = path.join(await sh(PYTHON, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))']), 'include', 'torch');
    const header = ['version.h', path.join('headeronly', 'version.h')].map((f) => path.join(include, f)).find((f) => fs.existsSync(f)) ?? '';
    libtorch = /TORCH_VERSION\s*\\?\s*"([^"]+)"/.exec(fs.readFileSync(header, 'utf8'))?.[1] ?? libtorch;
  } catch {
    // the addon may have been built against a LIBTORCH folder; the Python version still says what we compare with
  }
  return {
    cpu: model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    torchPython,
    libtorch,
    kernel: `${os.type()} ${os.release()}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100),
    commit: sourceCommit(),
  };
}

/** A Markdown table; numbers are printed as given (format them before). */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length), 3));
  const line = (r: string[]): string => `| ${r.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n');
}

export const fmt = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
export const mib = (kib: number): string => (Number.isFinite(kib) ? (kib / 1024).toFixed(0) : 'n/a');
