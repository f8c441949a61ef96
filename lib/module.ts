// Module: a TorchScript module (native model or loaded checkpoint) with PyTorch's nn.Module
// surface. Checkpoints from Python and models built here are the same kind of object.
import { binding, DType, Device, NativeModule } from './binding';
import { readStateDict, ReadStateDictOptions } from './checkpoint';
import { checkOptionKeys } from './option-keys';
import { Tensor } from './tensor';

export type ModuleArg = Tensor | number | boolean | string | null | undefined | readonly (Tensor | number)[];

export class Module {
  /** The native torch::jit::Module handle. */
  readonly native: NativeModule;

  constructor(native: NativeModule) {
    this.native = native;
  }

  /** Runs forward; a checkpoint's forward usually takes (x, t) and returns a Tensor. */
  forward(...args: ModuleArg[]): Tensor {
    return this.native.forward(...args) as Tensor;
  }

  /** Calls another TorchScript method by name; returns what it returns (Tensors, arrays, numbers). */
  callMethod(name: string, ...args: ModuleArg[]): unknown {
    return this.native.callMethod(name, args);
  }

  train(mode = true): this {
    this.native.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  get training(): boolean {
    return this.native.isTraining();
  }

  /** Moves or casts the parameters in place, like nn.Module.to. */
  to(target: Device | DType | { device?: Device; dtype?: DType }): this {
    if (typeof target === 'string') {
      const isDevice = target === 'cpu' || target.startsWith('cuda');
      this.native.to(isDevice ? { device: target as Device } : { dtype: target as DType });
    } else {
      this.native.to(target);
    }
    return this;
  }

  parameters(): Tensor[] {
    return Object.values(this.native.namedParameters());
  }

  /** Parameters by their dotted names (the names of the Python state_dict). */
  namedParameters(): Record<string, Tensor> {
    return this.native.namedParameters();
  }

  /** Parameters and buffers, detached. */
  stateDict(): Record<string, Tensor> {
    return this.native.stateDict();
  }

  /**
   * Loads weights by name from a {name: Tensor} map or a file: safetensors or torch.save (zip or
   * the old format), told apart by content (readStateDict; `key` picks 'model' or 'ema' of a
   * Trainer checkpoint). Values are converted to each parameter's dtype. With strict (default)
   * every name must match; shapes must always match; the error names the first difference.
   */
  loadStateDict(source: string | Record<string, Tensor>, options: { strict?: boolean } & ReadStateDictOptions = {}): this {
    checkOptionKeys<{ strict?: boolean } & ReadStateDictOptions>('loadStateDict', options, { strict: true, key: true });
    const strict = options.strict ?? true;
    if (typeof source === 'string') {
      const tensors = readStateDict(source, { key: options.key }, 'loadStateDict');
      try {
        this.native.loadStateDict(tensors, strict);
      } finally {
        for (const t of Object.values(tensors)) t.dispose();
        // The file's tensors were as large as the model: give their pages back.
        binding.releaseFreeMemory();
      }
    } else {
      this.native.loadStateDict(source, strict);
    }
    return this;
  }

  /** Writes a TorchScript checkpoint that Python's torch.jit.load runs. */
  save(path: string): void {
    this.native.save(path);
  }

  /** A TorchScript attribute of the module (e.g. 'num_classes', 'channels'), or undefined. */
  attribute(name: string): unknown {
    return this.native.attribute(name);
  }

  /** The forward method's TorchScript schema, e.g. 'forward(__torch__.Unet self, Tensor x, Tensor time) -> Tensor'. */
  get forwardSchema(): string {
    return this.native.forwardSchema();
  }

  /** Drops this handle; a sample running with the module keeps its own reference. */
  dispose(): void {
    this.native.dispose();
  }
}

export const jit = {
  /**
   * Loads a TorchScript checkpoint (scripted or traced in Python, or saved by Module.save).
   * Loading runs no Python, but a checkpoint's TorchScript code runs: its __setstate__ during
   * the load, its methods when called. Load only checkpoints you trust (README, Security).
   */
  load(path: string, options: { device?: Device } = {}): Module {
    if (typeof path !== 'string') throw new TypeError(`Expected string for path but received ${typeof path}`);
    return new Module(binding.jitLoad(path, options.device));
  },
};
