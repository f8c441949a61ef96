// Starting the ranks of a distributed test: free loopback ports and forked rank processes.
import { fork } from 'child_process';
import * as path from 'path';
import { freePort } from '../../lib/launch';

export { freePort };

export const RANK_SCRIPT = path.join(__dirname, 'rank.js');

export interface RankOutcome<T> {
  rank: number;
  code: number | null;
  result?: T;
  stderr: string;
}

/**
 * Forks `ranks` of the world_size `worldSize` (default: ranks) running scenario with arg,
 * env:// variables set; resolves when all have exited (killing them after limitMs).
 */
export async function runRanks<T>(ranks: number, scenario: string, arg: object = {}, options: { worldSize?: number; limitMs?: number } = {}): Promise<RankOutcome<T>[]> {
  const port = await freePort();
  const worldSize = options.worldSize ?? ranks;
  const limitMs = options.limitMs ?? 60000;
  return Promise.all(Array.from({ length: ranks }, (_, rank) => new Promise<RankOutcome<T>>((resolve) => {
    const env = { ...process.env, RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const child = fork(RANK_SCRIPT, [scenario, JSON.stringify(arg)], { env, silent: true });
    const outcome: RankOutcome<T> = { rank, code: null, stderr: '' };
    child.stderr?.on('data', (d) => { outcome.stderr += d; });
    child.stdout?.resume();
    child.on('message', (m) => { outcome.result = m as T; });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      outcome.code = code;
      resolve(outcome);
    });
  })));
}
