// The `torch` namespace: creation, joins, nn.functional, autograd, memory and settings.
// Each function validates its JS arguments' shape and hands the rest to one native call.
import { binding, CudaGraphStats, DType, Device, Reduction, Shape, TensorOptions } from './binding';
import { AnyTypedArray, NestedInput, Operand, Tensor } from './tensor';
import { checkOptionKeys } from './option-keys';

export type { DType, Device, Shape, TensorOptions, Reduction };

export interface CreateOptions extends TensorOptions {
  /** Shape of the data when it is given flat (a TypedArray or a flat array). */
  shape?: Shape;
}

function flatten(data: NestedInput, shape: number[], out: (number | boolean | bigint)[], depth: number): void {
  if (!Array.isArray(data)) {
    if (depth !== shape.length) throw new RangeError('tensor(): ragged nested array; every row must have the same length');
    if (typeof data !== 'number' && typeof data !== 'boolean' && typeof data !== 'bigint') {
      throw new TypeError(`tensor(): expected numbers, booleans or BigInts but received ${typeof data}`);
    }
    out.push(data);
    return;
  }
  if (depth === shape.length) shape.push(data.length);
  else if (shape[depth] !== data.length) throw new RangeError('tensor(): ragged nested array; every row must have the same length');
  for (const item of data) flatten(item, shape, out, depth + 1);
  if (data.length === 0 && depth === shape.length - 1) return;
}

// BigInts are int64 data, exact beyond 2^53; mixed with numbers they would have to round.
function bigIntData(values: (number | boolean | bigint)[]): BigInt64Array | undefined {
  const big = values.filter((v) => typeof v === 'bigint').length;
  if (big === 0) return undefined;
  if (big !== values.length) throw new TypeError('tensor(): BigInts cannot be mixed with numbers or booleans; use BigInts for all or none');
  const out = new BigInt64Array(values.length);
  values.forEach((v, i) => {
    if (BigInt.asIntN(64, v as bigint) !== v) throw new RangeError(`tensor(): the value ${v}n (element ${i}) does not fit dtype int64`);
    out[i] = v as bigint;
  });
  return out;
}

function inferDtype(values: (number | boolean)[]): DType {
  if (values.length > 0 && values.every((v) => typeof v === 'boolean')) return 'bool';
  // Only safe integers are surely integers: 1e20 is a float that happens to be integral (and
  // does not fit int64); Python's torch.tensor([1e20]) is float32 too.
  if (values.length > 0 && values.every((v) => typeof v === 'number' && Number.isSafeInteger(v))) return 'int64';
  return 'float32';
}

function typedDtype(data: AnyTypedArray): DType {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  return 'float32';
}

/**
 * A tensor from nested arrays, a flat array with `shape`, a TypedArray, or a number.
 * The dtype is inferred as PyTorch does (safe integers -> int64, booleans -> bool, else float32).
 * A value an integer dtype cannot hold (NaN, Infinity, out of range) is a RangeError naming it,
 * never a silently wrapped number; fractions truncate and float dtypes overflow to Infinity, as
 * in PyTorch.
 */
export function tensor(data: NestedInput | AnyTypedArray, options: CreateOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const typed = data as AnyTypedArray;
    const shape = options.shape ?? [typed.length];
    return binding.fromData(typed, shape, { ...options, dtype: options.dtype ?? typedDtype(typed) });
  }
  const shape: number[] = [];
  const values: (number | boolean | bigint)[] = [];
  flatten(data, shape, values, 0);
  const big = bigIntData(values);
  if (big) return binding.fromData(big, options.shape ?? shape, { ...options, dtype: options.dtype ?? 'int64' });
  const dtype = options.dtype ?? inferDtype(values as (number | boolean)[]);
  const flat = Float64Array.from(values, Number);
  return binding.fromData(flat, options.shape ?? shape, { ...options, dtype });
}

export const zeros = (shape: Shape, options?: TensorOptions): Tensor => binding.zeros(shape, options);
export const ones = (shape: Shape, options?: TensorOptions): Tensor => binding.ones(shape, options);
export const empty = (shape: Shape, options?: TensorOptions): Tensor => binding.empty(shape, options);
/** Without a dtype, inferred from value as PyTorch does: boolean -> bool, integer -> int64, else float32. */
export const full = (shape: Shape, value: number | boolean | bigint, options?: TensorOptions): Tensor => binding.full(shape, value, options);
/** Standard normal samples from the global generator (same stream as Python torch for the same seed). */
export const randn = (shape: Shape, options?: TensorOptions): Tensor => binding.randn(shape, options);
export const rand = (shape: Shape, options?: TensorOptions): Tensor => binding.rand(shape, options);
export const randint = (low: number, high: number, shape: Shape, options?: TensorOptions): Tensor =>
  binding.randint(low, high, shape, options);
export function arange(end: number): Tensor;
export function arange(start: number, end: number, step?: number, options?: TensorOptions): Tensor;
export function arange(a: number, b?: number, step?: number, options?: TensorOptions): Tensor {
  return b === undefined ? binding.arange(0, a) : binding.arange(a, b, step, options);
}
export const linspace = (start: number, end: number, steps: number, options?: TensorOptions): Tensor =>
  binding.linspace(start, end, steps, options);
export const zerosLike = (t: Tensor, options?: TensorOptions): Tensor => binding.zerosLike(t, options);
export const onesLike = (t: Tensor, options?: TensorOptions): Tensor => binding.onesLike(t, options);
export const emptyLike = (t: Tensor, options?: TensorOptions): Tensor => binding.emptyLike(t, options);
export const fullLike = (t: Tensor, value: number | boolean | bigint, options?: TensorOptions): Tensor => binding.fullLike(t, value, options);
export const randnLike = (t: Tensor, options?: TensorOptions): Tensor => binding.randnLike(t, options);
export const randLike = (t: Tensor, options?: TensorOptions): Tensor => binding.randLike(t, options);
/** Seeds the global CPU (and CUDA) generators, like Python's torch.manual_seed. */
export const manualSeed = (seed: number): void => binding.manualSeed(seed);

export const cat = (tensors: Tensor[], dim = 0): Tensor => binding.cat(tensors, dim);
export const stack = (tensors: Tensor[], dim = 0): Tensor => binding.stack(tensors, dim);
/** input where condition holds, else other. */
export const where = (condition: Tensor, input: Operand, other: Operand): Tensor =>
  binding.where(condition, input, other);

/** Live JS tensors and their bytes: what has not been disposed or collected yet. */
export const memory = (): { tensors: number; bytes: number } => binding.memory();
/**
 * The CPU allocator keeps large freed blocks (>= 128 KiB) for reuse, up to a limit (1 GiB by
 * default): a sampling loop asks for the same buffers every step. A sampling or training job
 * empties the cache when it is the last one to end; emptyCache() does it now.
 */
export const cpuCache = (): { bytes: number; blocks: number; limit: number } => binding.cpuCache();
/**
 * Bytes held by live CPU tensors (the allocator's cached free blocks not counted) and the most
 * held at once since resetCpuPeakMemoryStats(), as torch.cuda.memory_allocated and
 * max_memory_allocated: e.g. what a training step keeps for backward. oneDNN's own scratch
 * buffers are not counted.
 */
export const cpuMemoryStats = (): { allocated: number; peakAllocated: number } => binding.cpuMemoryStats();
/** Sets peakAllocated to the bytes held now. */
export const resetCpuPeakMemoryStats = (): void => binding.resetCpuPeakMemoryStats();
/** Frees the CPU allocator's cached blocks; returns the bytes freed. */
export const emptyCache = (): number => binding.emptyCache();
/** The most bytes the CPU allocator caches; 0 turns caching off (and frees the cache). */
export const setCpuCacheLimit = (bytes: number): void => binding.setCpuCacheLimit(bytes);
export const setNumThreads = (n: number): void => binding.setNumThreads(n);
export const getNumThreads = (): number => binding.getNumThreads();

function collectTensors(value: unknown, out: Tensor[], seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Tensor) {
    out.push(value);
    return;
  }
  const items = value instanceof Map ? [...value.values()] : Array.isArray(value) ? value : Object.values(value);
  for (const item of items) collectTensors(item, out, seen);
}

function isThenable(value: unknown): boolean {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

// tidy() and noGrad() act around a synchronous call. An async function runs on past its first
// await after they returned: its tensors would escape the scope, and grad would be back on. It
// is refused before it runs; a plain function that returns a Promise is refused after.
function checkSync(fn: unknown, what: string, why: string): void {
  if (typeof fn !== 'function') throw new TypeError(`${what} expects a function but received ${fn === null ? 'null' : typeof fn}`);
  const tag = Object.prototype.toString.call(fn);
  if (tag === '[object AsyncFunction]' || tag === '[object AsyncGeneratorFunction]') {
    throw new TypeError(`${what} does not support async functions: ${why}`);
  }
}

const TIDY_WHY = 'the scope would close before the Promise settles';
const GRAD_WHY = 'grad mode would be restored at the first await';

/**
 * Runs fn and disposes every tensor it created that its result does not contain (arrays,
 * objects and Maps are searched). fn must be synchronous: an async function is a TypeError.
 */
export function tidy<T>(fn: () => T): T {
  checkSync(fn, 'tidy()', TIDY_WHY);
  binding.startScope();
  let result: T;
  try {
    result = fn();
  } catch (err) {
    binding.endScope([]);
    throw err;
  }
  if (isThenable(result)) {
    binding.endScope([]);
    throw new TypeError(`tidy() does not support functions that return a Promise: ${TIDY_WHY}`);
  }
  const keep: Tensor[] = [];
  collectTensors(result, keep, new Set());
  binding.endScope(keep);
  return result;
}

/** Disposes every tensor found in the arguments (arrays, objects and Maps are searched). */
export function dispose(...values: unknown[]): void {
  const found: Tensor[] = [];
  collectTensors(values, found, new Set());
  for (const t of found) t.dispose();
}

function withGradMode<T>(enabled: boolean, fn: () => T, what: string): T {
  checkSync(fn, what, GRAD_WHY);
  const previous = binding.isGradEnabled();
  binding.setGradEnabled(enabled);
  let result: T;
  try {
    result = fn();
  } finally {
    binding.setGradEnabled(previous);
  }
  if (isThenable(result)) throw new TypeError(`${what} does not support functions that return a Promise: ${GRAD_WHY}`);
  return result;
}

/** Runs fn (synchronously: an async function is a TypeError) with gradient tracking off on this thread. */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn, 'noGrad()');
/** Runs fn (synchronously: an async function is a TypeError) with gradient tracking on on this thread. */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn, 'enableGrad()');
export const isGradEnabled = (): boolean => binding.isGradEnabled();

export interface GradOptions {
  gradOutputs?: Tensor[];
  retainGraph?: boolean;
  createGraph?: boolean;
  allowUnused?: boolean;
}

export const autograd = {
  /** d(sum of outputs)/d(inputs), like torch.autograd.grad; one gradient (or null if unused) per input. */
  grad(outputs: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions = {}): (Tensor | null)[] {
    const outs = Array.isArray(outputs) ? outputs : [outputs];
    const ins = Array.isArray(inputs) ? inputs : [inputs];
    checkOptionKeys<GradOptions>('autograd.grad', options, { gradOutputs: true, retainGraph: true, createGraph: true, allowUnused: true });
    return binding.autogradGrad(outs, ins, options);
  },
};

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export interface InterpolateOptions {
  size?: number | [number, number];
  scaleFactor?: number;
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
  /** bilinear, bicubic: average over the pixels a downscale drops (F.interpolate's antialias=True). */
  antialias?: boolean;
}

export const nn = {
  functional: {
    logSoftmax: (x: Tensor, dim: number): Tensor => x.logSoftmax(dim),
    softmax: (x: Tensor, dim: number): Tensor => x.softmax(dim),
    crossEntropy: (input: Tensor, target: Tensor, options?: { reduction?: Reduction }): Tensor =>
      binding.crossEntropy(input, target, options),
    mseLoss: (input: Tensor, target: Tensor, options?: { reduction?: Reduction }): Tensor =>
      binding.mseLoss(input, target, options),
    silu: (x: Tensor): Tensor => x.silu(),
    relu: (x: Tensor): Tensor => x.relu(),
    gelu: (x: Tensor, options?: { approximate?: 'none' | 'tanh' }): Tensor => binding.gelu(x, options),
    conv2d: (x: Tensor, weight: Tensor, bias?: Tensor | null, options?: Conv2dOptions): Tensor =>
      binding.conv2d(x, weight, bias ?? null, options),
    linear: (x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor => binding.linear(x, weight, bias ?? null),
    interpolate: (x: Tensor, options: InterpolateOptions): Tensor => binding.interpolate(x, options),
  },
};

export const cuda = {
  isAvailable: (): boolean => binding.cudaIsAvailable(),
  deviceCount: (): number => binding.cudaDeviceCount(),
  /** Counts of CUDA graph captures and replays by GaussianDiffusion's sampler (option cudaGraph). */
  graphStats: (): CudaGraphStats => binding.cudaGraphStats(),
};

export { Tensor };

/** torch.distributed: process groups and collectives (lib/distributed.ts). */
export * as distributed from './distributed';
