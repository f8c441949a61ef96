// guided-diffusion: classifier-guided diffusion sampling on LibTorch, from TypeScript.
import * as torch from './torch';

export { torch };
export { Tensor } from './tensor';
export type { NestedArray, AnyTypedArray, Operand } from './tensor';
export type { DType, Device, Shape, TensorOptions } from './binding';
