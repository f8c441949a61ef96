// Helpers shared by the CLI's commands (lib/cli.ts, lib/cli-openai.ts).
import { SingleBar } from 'cli-progress';
import * as fs from 'fs';
import * as path from 'path';
import { SampleProgress } from './diffusion';

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

export function progressReporter(total: number): { update(p: SampleProgress): void; stop(): void } {
  if (process.stderr.isTTY) {
    const bar = new SingleBar({ format: 'sampling [{bar}] {value}/{total} steps | t={t} | {duration_formatted}', stream: process.stderr });
    bar.start(total, 0, { t: '' });
    return { update: (p) => bar.update(p.step, { t: p.t }), stop: () => bar.stop() };
  }
  const every = Math.max(1, Math.round(total / 10));
  return {
    update: (p) => {
      if (p.step % every === 0 || p.step === p.total) process.stderr.write(`step ${p.step}/${p.total}\n`);
    },
    stop: () => undefined,
  };
}
