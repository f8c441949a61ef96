// `guided-diffusion launch`: starts the ranks of a data-parallel job on this node, as
// torchrun does (one process per rank with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT set, read by initProcessGroup's env://), forwards SIGINT and
// SIGTERM to them, and fails fast: when one rank exits non-zero or by a signal, the others
// are killed and the launcher exits non-zero.
import { ChildProcess, spawn } from 'child_process';
import * as net from 'net';
import { checkOptionKeys } from './option-keys';

export interface LaunchOptions {
  /** Ranks on this node. */
  nprocPerNode: number;
  /** Nodes in the job; default 1. */
  nnodes?: number;
  /** This node's index in [0, nnodes); default 0. */
  nodeRank?: number;
  /** Address of node 0 (its rank 0 hosts the rendezvous); default 127.0.0.1. */
  masterAddr?: string;
  /** Default 29500. */
  masterPort?: number;
  /** The script each rank runs with Node, and its arguments. */
  script: string;
  args?: string[];
  /** After a rank fails, how long the others get after SIGTERM before SIGKILL; default 5000 ms. */
  killGraceMs?: number;
  /** Extra environment variables of the ranks. */
  env?: Record<string, string>;
  /** Where the ranks' stdout/stderr go; default inherited. */
  stdio?: 'inherit' | 'ignore';
}

export interface LaunchResult {
  /** 0 when every rank exited 0; else the first failed rank's exit code (or 1 for a signal). */
  exitCode: number;
  /** The first rank that failed, if any, and how. */
  failed?: { rank: number; code: number | null; signal: NodeJS.Signals | null };
}

function checkInt(value: number | undefined, name: string, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) throw new RangeError(`launch: ${name} must be an integer >= ${min}; got ${value}`);
}

/** Runs the job's ranks on this node to completion (or the first failure). */
/** The most ranks launch() starts on one node. */
export const MAX_NPROC_PER_NODE = 256;

export function launch(options: LaunchOptions): Promise<LaunchResult> {
  checkOptionKeys<LaunchOptions>('launch', options, {
    nprocPerNode: true, nnodes: true, nodeRank: true, masterAddr: true, masterPort: true, script: true, args: true, killGraceMs: true,
    env: true, stdio: true,
  });
  const nproc = options.nprocPerNode;
  const nnodes = options.nnodes ?? 1;
  const nodeRank = options.nodeRank ?? 0;
  checkInt(nproc, 'nprocPerNode', 1);
  if (nproc > MAX_NPROC_PER_NODE) {
    throw new RangeError(`launch: nprocPerNode must be at most ${MAX_NPROC_PER_NODE}: each rank is a whole process with LibTorch loaded ` +
      `(1,000 of them exhausted a 2-core machine's threads and memory, and their ranks aborted); got ${nproc}`);
  }
  checkInt(nnodes, 'nnodes', 1);
  checkInt(nodeRank, 'nodeRank', 0);
  if (nodeRank >= nnodes) throw new RangeError(`launch: nodeRank must be below nnodes (${nnodes}); got ${nodeRank}`);
  const masterPort = options.masterPort ?? 29500;
  checkInt(masterPort, 'masterPort', 1);
  if (masterPort > 65535) throw new RangeError(`launch: masterPort must be <= 65535; got ${masterPort}`);
  if (typeof options.script !== 'string' || options.script === '') throw new TypeError('launch: expected the script to run');
  const grace = options.killGraceMs ?? 5000;

  return new Promise((resolve) => {
    const children: (ChildProcess | null)[] = [];
    let running = nproc;
    let result: LaunchResult | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const forward = (signal: NodeJS.Signals) => (): void => {
      for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill(signal);
    };
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);

    const killRest = (): void => {
      for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      killTimer = setTimeout(() => {
        for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, grace);
    };
    const done = (): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      if (killTimer) clearTimeout(killTimer);
      resolve(result ?? { exitCode: 0 });
    };

    // A rank's end, once: from 'exit', or from a spawn that failed ('error' without a process,
    // or spawn() throwing), which never emits 'exit' (EAGAIN) and must not leave launch pending.
    const ended = new Set<number>();
    const end = (rank: number, code: number | null, signal: NodeJS.Signals | null, why?: string): void => {
      if (ended.has(rank)) return;
      ended.add(rank);
      running--;
      if ((code !== 0 || signal !== null) && !result) {
        result = { exitCode: code && code > 0 ? code : 1, failed: { rank, code, signal } };
        const what = why ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
        process.stderr.write(`guided-diffusion launch: rank ${rank} ${what}; stopping the other ranks\n`);
        killRest();
      }
      if (running === 0) done();
    };

    for (let local = 0; local < nproc; local++) {
      const rank = nodeRank * nproc + local;
      if (result) {
        end(rank, null, null);  // a rank failed to start: the rest are not started
        continue;
      }
      const env = {
        ...process.env,
        ...options.env,
        RANK: String(rank),
        WORLD_SIZE: String(nnodes * nproc),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(nproc),
        GROUP_RANK: String(nodeRank),
        MASTER_ADDR: options.masterAddr ?? '127.0.0.1',
        MASTER_PORT: String(masterPort),
      };
      let child: ChildProcess;
      try {
        child = spawn(process.execPath, [options.script, ...(options.args ?? [])], { env, stdio: options.stdio ?? 'inherit' });
      } catch (err) {
        end(rank, null, null, `could not be started (${(err as Error).message})`);
        continue;
      }
      children.push(child);
      child.on('error', (err) => {
        if (child.pid === undefined) end(rank, null, null, `could not be started (${err.message})`);
      });
      child.on('exit', (code, signal) => end(rank, code, signal));
    }
  });
}

/** A loopback port nobody listens on now (the OS picks it), for a one-node job's rendezvous. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
