// Helpers shared by the CLI's commands (lib/cli.ts, lib/cli-openai.ts): errors, --out, the
// progress bar and the sampler flags.
import { SingleBar } from 'cli-progress';
import * as fs from 'fs';
import * as path from 'path';
import { SampleProgress } from './diffusion';
import { isFastSampler, SamplerChoice, SamplerName, TAKEN_BY } from './samplers';

/** The most images one run samples (they are all held for the grid: --n 1e9 ran out of heap). */
export const MAX_IMAGES = 10_000;

/** An error of the command line: the CLI prints its message alone. */
export class CliError extends Error {}

export function existing(what: string, file: string): string {
  if (!fs.existsSync(file)) throw new CliError(`${what} not found: ${file}`);
  return file;
}

/** Fails before any sampling when --out cannot be written (a missing folder, a folder, no permission). */
export function writableOut(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CliError(`cannot write --out ${file}: no directory ${dir}`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new CliError(`cannot write --out ${file}: it is a directory`);
  try {
    fs.accessSync(fs.existsSync(file) ? file : dir, fs.constants.W_OK);
  } catch {
    throw new CliError(`cannot write --out ${file}: permission denied`);
  }
}

/**
 * Progress of `batches` sample() calls of one sampler, one bar over them all. The totals come
 * from onProgress: a fast sampler's own step count (DPM-Solver's singlestep: its mixed-order
 * steps), not always --steps.
 */
export function progressReporter(batches = 1): { update(p: SampleProgress, batch?: number): void; stop(): void } {
  let bar: SingleBar | undefined;
  return {
    update: (p, batch = 0) => {
      const total = p.total * batches;
      const step = batch * p.total + p.step;
      if (process.stderr.isTTY) {
        if (!bar) {
          bar = new SingleBar({ format: 'sampling [{bar}] {value}/{total} steps | t={t} | {duration_formatted}', stream: process.stderr });
          bar.start(total, 0, { t: '' });
        } else if (bar.getTotal() !== total) {
          bar.setTotal(total);
        }
        bar.update(step, { t: p.t });
        return;
      }
      const every = Math.max(1, Math.round(total / 10));
      if (step % every === 0 || step === total) process.stderr.write(`step ${step}/${total}\n`);
    },
    stop: () => bar?.stop(),
  };
}

/** An option's flag: 'skipType' is --skip-type. */
export const flagName = (option: string): string => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

const either = (names: readonly string[]): string => (names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`);

/** The sample command's sampler flags (declared in lib/cli.ts; --openai takes them too). */
export interface SamplerFlags {
  sampler?: SamplerName;
  steps?: number;
  order?: 1 | 2 | 3;
  method?: 'multistep' | 'singlestep';
  skipType?: 'time_uniform' | 'logSNR' | 'time_quadratic';
  thresholding?: boolean;
  thresholdingRatio?: number;
  thresholdingMax?: number;
  unipcVariant?: 'bh1' | 'bh2';
  karras?: boolean;
  modelSigmas?: boolean;
  rho?: number;
}

/** Each fast-sampler flag and the sample() option it sets (TAKEN_BY says which samplers take it). */
const SAMPLER_FLAGS: Record<string, keyof typeof TAKEN_BY> = {
  order: 'order', method: 'method', skipType: 'skipType', thresholding: 'thresholding', thresholdingRatio: 'thresholding',
  thresholdingMax: 'thresholding', unipcVariant: 'unipcVariant', karras: 'sigmas', modelSigmas: 'sigmas', rho: 'rho',
};

/** The steps a fast sampler takes when sample() is given none. */
const FAST_DEFAULT_STEPS = 20;

/**
 * sample()'s sampler options from the flags (undefined without --sampler), checked before
 * anything loads: a flag that the sampler does not take is a CliError naming those that do.
 * With a fast sampler, --steps is its `steps`.
 */
export function samplerOptions(flags: SamplerFlags): SamplerChoice | undefined {
  const given = flags as Record<string, unknown>;
  for (const [flag, option] of Object.entries(SAMPLER_FLAGS)) {
    if (given[flag] === undefined) continue;
    const takers = TAKEN_BY[option];
    if (!flags.sampler) throw new CliError(`${flagName(flag)} needs --sampler (it applies to ${either(takers)})`);
    if (!takers.includes(flags.sampler)) throw new CliError(`${flagName(flag)} applies to --sampler ${either(takers)}, not ${flags.sampler}`);
  }
  for (const flag of ['thresholdingRatio', 'thresholdingMax']) {
    if (given[flag] !== undefined && !flags.thresholding) throw new CliError(`${flagName(flag)} needs --thresholding`);
  }
  if (flags.karras && flags.modelSigmas) throw new CliError('--karras and --model-sigmas exclude each other');
  if (!flags.sampler) return undefined;
  const o: SamplerChoice = { sampler: flags.sampler };
  if (!isFastSampler(flags.sampler)) return o;
  o.steps = flags.steps ?? FAST_DEFAULT_STEPS;
  if (flags.order !== undefined) o.order = flags.order;
  if (flags.method !== undefined) o.method = flags.method;
  if (flags.skipType !== undefined) o.skipType = flags.skipType;
  if (flags.thresholding) {
    const { thresholdingRatio: ratio, thresholdingMax: maxVal } = flags;
    o.thresholding = ratio === undefined && maxVal === undefined ? true : { ...(ratio !== undefined ? { ratio } : {}), ...(maxVal !== undefined ? { maxVal } : {}) };
  }
  if (flags.unipcVariant !== undefined) o.unipcVariant = flags.unipcVariant;
  if (flags.karras || flags.modelSigmas) o.sigmas = flags.karras ? 'karras' : 'model';
  if (flags.rho !== undefined) o.rho = flags.rho;
  return o;
}

/** A fast sampler's steps must fit the schedule it samples (checked once that is built). */
export function checkFastSteps(o: SamplerChoice | undefined, flags: SamplerFlags, scheduleSteps: number): void {
  if (o?.steps === undefined || o.steps <= scheduleSteps) return;
  throw new CliError(`--steps ${o.steps} is more than the ${scheduleSteps} steps of the schedule it samples` +
    (flags.steps === undefined ? ` (${o.sampler} takes ${FAST_DEFAULT_STEPS} by default: give --steps)` : ''));
}

/** "10 dpm-solver++ steps" for the closing line; heun's steps cost about two model calls each. */
export function stepsText(steps: number, sampler?: string): string {
  const calls = sampler === 'heun' && steps > 1 ? ` (${2 * steps - 1} model calls)` : '';
  return `${steps} ${sampler ? `${sampler} ` : ''}steps${calls}`;
}
