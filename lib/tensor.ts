// The Tensor type: a native class (native/js/tensor_*.cc) whose methods are typed here.
// The few methods written in TypeScript only convert data for JS (nested arrays, strings).
import { binding, DType, Device, Shape } from './binding';
import { formatTensor } from './format';

export type TypedArrayOf<D extends DType> = D extends 'float64'
  ? Float64Array
  : D extends 'int64'
    ? BigInt64Array
    : D extends 'int32'
      ? Int32Array
      : D extends 'uint8' | 'bool'
        ? Uint8Array
        : Float32Array;

export type AnyTypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
export type NestedArray = number | boolean | NestedArray[];
/** What torch.tensor() takes: nested arrays of numbers, booleans or BigInts (BigInts all alone: int64 data). */
export type NestedInput = number | boolean | bigint | NestedInput[];
/**
 * A tensor or a scalar. A scalar acts as a Python scalar does in PyTorch (a wrapped number):
 * an integral number or a BigInt is an int (int64.add(1) stays int64), a fractional number a
 * float (int64.add(0.5) is float32), a boolean a bool.
 */
export type Scalar = number | boolean | bigint;
export type Operand = Tensor | Scalar;
export type Dims = number | readonly number[];

export interface Tensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: Device;
  readonly numel: number;
  readonly ndim: number;
  requiresGrad: boolean;
  /** The accumulated gradient after backward(), or null. A new handle each read: dispose it when done. */
  readonly grad: Tensor | null;
  readonly isLeaf: boolean;
  readonly isDisposed: boolean;

  dispose(): void;

  // conversion
  to(target: DType | Device | { dtype?: DType; device?: Device } | Tensor): Tensor;
  cpu(): Tensor;
  cuda(device?: Device): Tensor;
  clone(): Tensor;
  detach(): Tensor;
  item(): number | boolean;
  /** A copy of the data as the TypedArray of its dtype (float16/bfloat16 as Float32Array). */
  data(): AnyTypedArray;
  toFloat32Array(): Float32Array;
  toTypedArray(): AnyTypedArray;
  /** Nested JS arrays (int64 as numbers). */
  toArray(): NestedArray;
  toString(): string;

  // in place (return this)
  add_(other: Operand): Tensor;
  sub_(other: Operand): Tensor;
  mul_(other: Operand): Tensor;
  div_(other: Operand): Tensor;
  clamp_(min?: Scalar | null, max?: Scalar | null): Tensor;
  zero_(): Tensor;
  fill_(value: Scalar): Tensor;
  copy_(src: Tensor): Tensor;
  requiresGrad_(requiresGrad?: boolean): Tensor;

  // autograd
  backward(gradient?: Tensor, options?: { retainGraph?: boolean; createGraph?: boolean }): void;
  backward(options?: { retainGraph?: boolean; createGraph?: boolean }): void;

  // elementwise
  neg(): Tensor;
  exp(): Tensor;
  log(): Tensor;
  sqrt(): Tensor;
  rsqrt(): Tensor;
  abs(): Tensor;
  sin(): Tensor;
  cos(): Tensor;
  tanh(): Tensor;
  sigmoid(): Tensor;
  relu(): Tensor;
  silu(): Tensor;
  square(): Tensor;
  floor(): Tensor;
  round(): Tensor;
  sign(): Tensor;
  isfinite(): Tensor;
  isnan(): Tensor;
  logicalNot(): Tensor;
  add(other: Operand): Tensor;
  sub(other: Operand): Tensor;
  mul(other: Operand): Tensor;
  div(other: Operand): Tensor;
  pow(exponent: Operand): Tensor;
  remainder(other: Operand): Tensor;
  eq(other: Operand): Tensor;
  ne(other: Operand): Tensor;
  lt(other: Operand): Tensor;
  le(other: Operand): Tensor;
  gt(other: Operand): Tensor;
  ge(other: Operand): Tensor;
  maximum(other: Operand): Tensor;
  minimum(other: Operand): Tensor;
  matmul(other: Tensor): Tensor;
  /** this where condition holds, else other (PyTorch's Tensor.where). */
  where(condition: Tensor, other: Operand): Tensor;
  clamp(min?: Scalar | null, max?: Scalar | null): Tensor;

  // reductions
  sum(dim?: Dims, keepdim?: boolean): Tensor;
  mean(dim?: Dims, keepdim?: boolean): Tensor;
  amax(dim?: Dims, keepdim?: boolean): Tensor;
  amin(dim?: Dims, keepdim?: boolean): Tensor;
  all(dim?: Dims, keepdim?: boolean): Tensor;
  any(dim?: Dims, keepdim?: boolean): Tensor;
  logsumexp(dim?: Dims, keepdim?: boolean): Tensor;
  /** Values of the maximum (over all, or along dim); use argmax for indices. */
  max(dim?: number, keepdim?: boolean): Tensor;
  min(dim?: number, keepdim?: boolean): Tensor;
  argmax(dim?: number, keepdim?: boolean): Tensor;
  argmin(dim?: number, keepdim?: boolean): Tensor;
  /** Standard deviation with Bessel's correction by default (correction = 1), as PyTorch. */
  std(dim?: Dims | null, keepdim?: boolean, correction?: number): Tensor;
  var(dim?: Dims | null, keepdim?: boolean, correction?: number): Tensor;
  softmax(dim: number): Tensor;
  logSoftmax(dim: number): Tensor;

  // shape
  view(...shape: number[]): Tensor;
  view(shape: Shape): Tensor;
  reshape(...shape: number[]): Tensor;
  reshape(shape: Shape): Tensor;
  permute(...dims: number[]): Tensor;
  permute(dims: Shape): Tensor;
  expand(...shape: number[]): Tensor;
  expand(shape: Shape): Tensor;
  repeat(...repeats: number[]): Tensor;
  repeat(repeats: Shape): Tensor;
  transpose(dim0: number, dim1: number): Tensor;
  t(): Tensor;
  flatten(startDim?: number, endDim?: number): Tensor;
  squeeze(dim?: number): Tensor;
  unsqueeze(dim: number): Tensor;
  contiguous(): Tensor;
  chunk(chunks: number, dim?: number): Tensor[];
  split(splitSizeOrSections: number | Shape, dim?: number): Tensor[];
  narrow(dim: number, start: number, length: number): Tensor;
  /** x.slice(dim, start, end, step) is Python's x[..., start:end:step] along dim. */
  slice(dim: number, start?: number | null, end?: number | null, step?: number): Tensor;
  /** x.select(dim, i) is Python's x[..., i] along dim. */
  select(dim: number, index: number): Tensor;
  indexSelect(dim: number, index: Tensor): Tensor;
  gather(dim: number, index: Tensor): Tensor;
  /** Advanced indexing: x.index([torch.arange(B), y]) is Python's x[range(B), y]; null skips a dim. */
  index(indices: readonly (Tensor | null)[]): Tensor;
  maskedFill(mask: Tensor, value: Scalar): Tensor;
}

export interface TensorConstructor {
  readonly prototype: Tensor;
  new (never: never): Tensor;
}

/** The Tensor class, for `instanceof` checks; create tensors with torch.tensor() and friends. */
export const Tensor = binding.Tensor as unknown as TensorConstructor;

function nest(flat: ArrayLike<number | bigint | boolean>, shape: readonly number[], dtype: DType): NestedArray {
  const cast = (v: number | bigint | boolean): number | boolean =>
    dtype === 'bool' ? Boolean(v) : typeof v === 'bigint' ? Number(v) : (v as number);
  if (shape.length === 0) return cast(flat[0]);
  let offset = 0;
  const build = (dim: number): NestedArray[] => {
    const out: NestedArray[] = [];
    for (let i = 0; i < shape[dim]; i++) {
      if (dim === shape.length - 1) out.push(cast(flat[offset++]));
      else out.push(build(dim + 1));
    }
    return out;
  };
  return build(0);
}

const proto = Tensor.prototype as Tensor;
Object.defineProperties(proto, {
  toTypedArray: {
    value(this: Tensor): AnyTypedArray {
      return this.data();
    },
    writable: true,
  },
  toFloat32Array: {
    value(this: Tensor): Float32Array {
      const d = this.data();
      return d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>, Number);
    },
    writable: true,
  },
  toArray: {
    value(this: Tensor): NestedArray {
      return nest(this.data() as ArrayLike<number | bigint>, this.shape, this.dtype);
    },
    writable: true,
  },
  toString: {
    value(this: Tensor): string {
      if (this.isDisposed) return 'tensor(<disposed>)';
      return formatTensor(this.data() as ArrayLike<number | bigint>, this.shape, this.dtype, this.device, this.requiresGrad);
    },
    writable: true,
  },
});
// console.log(t) prints as PyTorch does.
Object.defineProperty(proto, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: Tensor): string {
    return this.toString();
  },
});
