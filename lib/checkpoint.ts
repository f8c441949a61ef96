// Reading weights from a checkpoint file, whatever its format: picked by content (never by
// name) in native/checkpoints, which also refuses devices, FIFOs and /proc files before a byte
// is read. safetensors and torch.save files are data: reading them runs nothing. A TorchScript
// archive is a program: it is refused here and loads only through jit.load.
import { binding } from './binding';
import { checkOptionKeys } from './option-keys';
import { loadSafetensors } from './safetensors';
import { Tensor } from './tensor';

export interface ReadStateDictOptions {
  /**
   * Which state dict of a torch.save file that holds several, by its top-level key: e.g. 'model'
   * or 'ema' of a denoising-diffusion-pytorch Trainer checkpoint (model-N.pt). The EMA wrapper's
   * weights (ema_model.*) come back without their prefix. Not needed when there is one.
   */
  key?: string;
}

/**
 * The named tensors of a state dict in a .safetensors or torch.save file (zip or the old pickle
 * format; on the CPU, in the file's dtypes). A torch.save file is read without Python: only
 * tensors, dicts, lists, tuples, numbers and strings; any other Python object it refers to
 * (os.system, a class) is refused by name, and nothing in the file is run.
 */
export function readStateDict(path: string, options: ReadStateDictOptions = {}, who = 'readStateDict'): Record<string, Tensor> {
  if (typeof path !== 'string') throw new TypeError(`Expected string for path but received ${typeof path}`);
  if (options === null || typeof options !== 'object') throw new TypeError(`${who}: expected an options object such as { key: 'ema' }`);
  checkOptionKeys<ReadStateDictOptions>(who, options, { key: true });
  const { key } = options;
  if (key !== undefined && (typeof key !== 'string' || key === '')) throw new TypeError(`Expected a non-empty string for key but received ${JSON.stringify(key)}`);
  const { format, head } = binding.checkpointFormat(path, who);
  if (format === 'safetensors') {
    if (key !== undefined) throw new Error(`${who}: ${path} is a safetensors file, which holds one state dict: the key option ('${key}') is for torch.save files`);
    return loadSafetensors(path);
  }
  if (format === 'zip' || format === 'pickle') return binding.readTorchSave(path, key, who);
  throw new Error(`${who}: ${path} is not a checkpoint this library reads (safetensors, torch.save, or TorchScript for jit.load): it starts with bytes ${head}`);
}

export interface WriteStateDictOptions {
  /** Write zip64 records even when the file is small (they are written anyway past 4 GiB). */
  zip64?: boolean;
}

/**
 * Writes named tensors as torch.save(OrderedDict) does (the zip format): Python's
 * torch.load(path, weights_only=True) and readStateDict read it. Each tensor is written whole
 * (contiguous, from the CPU), to a temporary file renamed over path once complete.
 */
export function writeStateDict(path: string, tensors: Record<string, Tensor>, options: WriteStateDictOptions = {}): void {
  if (typeof path !== 'string' || path === '') throw new TypeError(`writeStateDict: expected a file path but received ${JSON.stringify(path)}`);
  if (options === null || typeof options !== 'object') throw new TypeError('writeStateDict: expected an options object such as { zip64: true }');
  checkOptionKeys<WriteStateDictOptions>('writeStateDict', options, { zip64: true });
  if (tensors === null || typeof tensors !== 'object') throw new TypeError('writeStateDict: expected an object of named tensors');
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) throw new TypeError(`writeStateDict: ${name} is not a Tensor`);
  }
  binding.writeTorchSave(path, tensors, options.zip64 === true);
}
