// torch.distributed: a default process group over LibTorch's c10d (Gloo on CPU, NCCL in CUDA
// builds) and its collectives. Names and options mirror PyTorch's in camelCase; collectives
// are asynchronous (Promises) and change their tensor in place, as with async_op=True.
import { binding } from './binding';
import { checkOptionKeys } from './option-keys';
import { Tensor } from './tensor';

export type Backend = 'gloo' | 'nccl';
export type ReduceOpName = 'sum' | 'avg' | 'product' | 'min' | 'max';

/** PyTorch's ReduceOp names. */
export const ReduceOp = { SUM: 'sum', AVG: 'avg', PRODUCT: 'product', MIN: 'min', MAX: 'max' } as const;

export interface InitProcessGroupOptions {
  /** Default 'gloo'. 'nccl' needs a CUDA build of the addon with NCCL. */
  backend?: Backend;
  /**
   * 'env://' (default): RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the environment (as
   * torchrun and `guided-diffusion launch` set them); 'tcp://host:port': rank and worldSize
   * must be given.
   */
  initMethod?: string;
  rank?: number;
  worldSize?: number;
  /** Rendezvous and every collective fail after this long without their peers; default 30 000. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new RangeError(`initProcessGroup: environment variable ${name} must be a non-negative integer; got '${raw}'`);
  return Number(raw);
}

function required(value: number | undefined, what: string): number {
  if (value === undefined) throw new TypeError(`initProcessGroup: ${what} is not set`);
  return value;
}

/** Where the ranks meet and who this one is, from the options and (env://) the environment. */
export function resolveInit(options: InitProcessGroupOptions = {}): {
  backend: Backend; masterAddr: string; masterPort: number; rank: number; worldSize: number; timeoutMs: number;
} {
  checkOptionKeys<InitProcessGroupOptions>('initProcessGroup', options, { backend: true, initMethod: true, rank: true, worldSize: true, timeoutMs: true });
  const backend = options.backend ?? 'gloo';
  if (backend !== 'gloo' && backend !== 'nccl') throw new TypeError(`initProcessGroup: backend must be 'gloo' or 'nccl'; got '${String(backend)}'`);
  const method = options.initMethod ?? 'env://';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`initProcessGroup: timeoutMs must be a positive integer; got ${timeoutMs}`);
  let masterAddr: string;
  let masterPort: number;
  let rank = options.rank;
  let worldSize = options.worldSize;
  if (method === 'env://') {
    masterAddr = process.env.MASTER_ADDR ?? '';
    if (!masterAddr) throw new TypeError('initProcessGroup: env:// needs MASTER_ADDR in the environment');
    masterPort = required(envInt('MASTER_PORT'), 'MASTER_PORT (env://)');
    rank ??= required(envInt('RANK'), 'RANK (env://) or options.rank');
    worldSize ??= required(envInt('WORLD_SIZE'), 'WORLD_SIZE (env://) or options.worldSize');
  } else {
    const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(method);
    if (!m) throw new TypeError(`initProcessGroup: initMethod must be 'env://' or 'tcp://host:port'; got '${method}'`);
    masterAddr = m[1].replace(/^\[|\]$/g, '');
    masterPort = Number(m[2]);
    rank = required(rank, 'options.rank (tcp://)');
    worldSize = required(worldSize, 'options.worldSize (tcp://)');
  }
  return { backend, masterAddr, masterPort, rank, worldSize, timeoutMs };
}

/**
 * Joins this process to the default group: resolves once all worldSize ranks have met.
 * Rejects when they do not within timeoutMs, and when a group already exists.
 */
export async function initProcessGroup(options: InitProcessGroupOptions = {}): Promise<void> {
  return binding.distInit(resolveInit(options));
}

export function isInitialized(): boolean {
  return binding.distState().initialized;
}

/** The backends this build of the addon has ('gloo' when built with the Gloo headers). */
export function availableBackends(): Backend[] {
  return binding.distState().backends as Backend[];
}

function state(what: string): { rank: number; worldSize: number; backend: Backend } {
  const s = binding.distState();
  if (!s.initialized) throw new Error(`${what}: the default process group is not initialized; call initProcessGroup() first`);
  return { rank: s.rank as number, worldSize: s.worldSize as number, backend: s.backend as Backend };
}

export const getRank = (): number => state('getRank').rank;
export const getWorldSize = (): number => state('getWorldSize').worldSize;
export const getBackend = (): Backend => state('getBackend').backend;
/** LOCAL_RANK as the launcher sets it (this process's index on its node); 0 when unset. */
export const getLocalRank = (): number => envInt('LOCAL_RANK') ?? 0;

function tensorArg(t: unknown, what: string): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${what}: expected a Tensor`);
  return t;
}

/** Reduces t over the ranks, in place on every rank ('avg': sum / worldSize, floating tensors). */
export async function allReduce(t: Tensor, op: ReduceOpName = 'sum'): Promise<void> {
  return binding.distAllReduce(tensorArg(t, 'allReduce'), op);
}

/** Copies rank src's t into every rank's t, in place. */
export async function broadcast(t: Tensor, src: number): Promise<void> {
  return binding.distBroadcast(tensorArg(t, 'broadcast'), src);
}

/** Every rank's t (same shape and dtype on every rank), in rank order. */
export async function allGather(t: Tensor): Promise<Tensor[]> {
  return binding.distAllGather(tensorArg(t, 'allGather'));
}

export async function barrier(): Promise<void> {
  return binding.distBarrier();
}

/** Leaves the default group; a later initProcessGroup may form a new one. */
export function destroyProcessGroup(): void {
  binding.distDestroy();
}
