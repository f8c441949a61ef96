// The raw addon, typed, loaded in one place. Everything else in lib/ goes through this.
import type { EditRequest } from './editing';
import type { FastSamplerRequest, SamplerName } from './samplers';
import type { GuidanceContext } from './guidance';
import type { Tensor } from './tensor';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export type Shape = readonly number[];

export interface CudaGraphStats {
  /** This build's LibTorch has CUDA, so it can capture graphs. */
  supported: boolean;
  /** Graphs captured and verified against an eager call. */
  captures: number;
  /** Model calls served by replaying a graph. */
  replays: number;
  /** Captures abandoned: the model could not be captured, or its replay disagreed. */
  fallbacks: number;
}
export type Reduction = 'mean' | 'sum' | 'none';

/** The native Module handle (a torch::jit::Module); lib/module.ts wraps it. */
export interface NativeModule {
  forward(...args: unknown[]): unknown;
  callMethod(name: string, args: unknown[]): unknown;
  train(on: boolean): void;
  isTraining(): boolean;
  to(options: { dtype?: DType; device?: Device }): void;
  namedParameters(): Record<string, Tensor>;
  namedBuffers(): Record<string, Tensor>;
  stateDict(): Record<string, Tensor>;
  loadStateDict(map: Record<string, Tensor>, strict: boolean): void;
  save(path: string): void;
  attribute(name: string): unknown;
  forwardSchema(): string;
  typeName(): string;
  dispose(): void;
}

/** sample()'s request; the fast samplers' options as lib/samplers.ts checked them. */
export interface NativeSampleRequest extends FastSamplerRequest, EditRequest {
  batchSize: number;
  returnAllTimesteps: boolean;
  seed?: number;
  seeds?: number[];
  stepTimeoutMs?: number;
  condFn?: (x: Tensor, t: Tensor, context: GuidanceContext) => unknown;
  condInput: 'mean' | 'x';
  /** guidanceInput 'x0' (lib/x0-guidance.ts has checked it): condFn returns a loss on x0. */
  x0GuidanceScale?: number;
  x0GradientNorm?: boolean;
  x0GuidanceInterval?: [number, number];
  x0Recurrence?: number;
  classifierGuidance?: { classifier: NativeModule; y: Tensor; classifierScale: number };
  modelKwargs?: { y?: Tensor };
  /** Classifier-free guidance (lib/diffusion.ts has checked it). */
  cfg?: { scale: number; rescaledPhi: number; nullClass: number };
  sampler?: SamplerName;
  eta?: number;
  onProgress?: (step: number, total: number, t: number) => void;
}

export interface NativeDiffusion {
  sample(request: NativeSampleRequest): { promise: Promise<Tensor>; cancel(): void };
  schedule(): Record<string, Tensor>;
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor;
  pLosses(x0: Tensor, t: Tensor, noise: Tensor): Tensor;
  trainingLosses(x0: Tensor, t: Tensor, lossType: string, noise?: Tensor, y?: Tensor): { loss: Tensor; mse?: Tensor; vb?: Tensor };
  openaiTrainer(options: object): NativeOpenaiTrainer;
  openaiClassifierTrainer(classifier: NativeModule, options: object): NativeOpenaiClassifierTrainer;
  predict(x: Tensor, t: Tensor, y?: Tensor): { eps: Tensor; x0: Tensor; mean: Tensor; variance: Tensor; logVariance: Tensor };
  /** Steps of the (respaced) schedule, and the sampling steps. */
  timesteps(): { timesteps: number; samplingTimesteps: number };
  /** Where it samples: the device option, else the model's. */
  device(): Device;
  cudaGraph(): boolean;
}

export interface NativeOpenaiClassifierTrainer {
  runStep(batch: Tensor, y: Tensor, t?: Tensor, noise?: Tensor): Record<string, number>;
  evaluate(batch: Tensor, y: Tensor, t?: Tensor, noise?: Tensor): Record<string, number>;
  step(): number;
  resumeStep(): number;
  lgLossScale(): number;
  save(dir: string): string[];
  runLoop(
    data: Tensor,
    labels: Tensor,
    evalData: Tensor | undefined,
    evalLabels: Tensor | undefined,
    options: { batchSize: number; steps: number; logInterval: number; evalInterval: number; saveInterval: number; outDir: string; randomFlip: boolean },
    onLog: (log: Record<string, number>) => void,
    onSave: (save: { step: number; files: string[] }) => void,
  ): { promise: Promise<{ stepsRun: number; step: number; resumeStep: number; saved: number[] }>; cancel(): void };
}

export interface NativeOpenaiTrainer {
  runStep(batch: Tensor, y?: Tensor, t?: Tensor, weights?: Tensor, noise?: Tensor): Record<string, number>;
  emaParameters(index: number): Record<string, Tensor>;
  step(): number;
  resumeStep(): number;
  lgLossScale(): number;
  save(dir: string): string[];
  runLoop(
    data: Tensor | undefined,
    labels: Tensor | undefined,
    options: { batchSize: number; steps: number; logInterval: number; saveInterval: number; outDir: string; randomFlip: boolean },
    onLog: (log: Record<string, number>) => void,
    onSave: (save: { step: number; files: string[] }) => void,
  ): {
    promise: Promise<{ stepsRun: number; step: number; resumeStep: number; saved: number[] }>;
    cancel(): void;
    /** Only when data is undefined. */
    push?(batch: Tensor, y: Tensor | undefined): Promise<boolean>;
    close?(): void;
  };
}

export interface NativeScheduleSampler {
  weights(): Float64Array;
  update(ts: number[], losses: number[]): void;
  sample(batchSize: number, seed: number): { t: Tensor; weights: Tensor };
}

export interface Binding {
  Tensor: { prototype: Tensor };
  NativeScheduleSampler: new (name: string, timesteps: number, historyPerTerm: number, uniformProb: number) => NativeScheduleSampler;
  fromData(data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array, shape: Shape, options?: TensorOptions): Tensor;
  fromBytes(bytes: Uint8Array, shape: Shape, dtype: DType): Tensor;
  toBytes(t: Tensor): Uint8Array;
  zeros(shape: Shape, options?: TensorOptions): Tensor;
  ones(shape: Shape, options?: TensorOptions): Tensor;
  empty(shape: Shape, options?: TensorOptions): Tensor;
  full(shape: Shape, value: number | boolean | bigint, options?: TensorOptions): Tensor;
  randn(shape: Shape, options?: TensorOptions): Tensor;
  rand(shape: Shape, options?: TensorOptions): Tensor;
  randint(low: number, high: number, shape: Shape, options?: TensorOptions): Tensor;
  arange(start: number, end: number, step?: number, options?: TensorOptions): Tensor;
  linspace(start: number, end: number, steps: number, options?: TensorOptions): Tensor;
  zerosLike(t: Tensor, options?: TensorOptions): Tensor;
  onesLike(t: Tensor, options?: TensorOptions): Tensor;
  emptyLike(t: Tensor, options?: TensorOptions): Tensor;
  fullLike(t: Tensor, value: number | boolean | bigint, options?: TensorOptions): Tensor;
  randnLike(t: Tensor, options?: TensorOptions): Tensor;
  randLike(t: Tensor, options?: TensorOptions): Tensor;
  manualSeed(seed: number): void;
  cat(tensors: Tensor[], dim?: number): Tensor;
  stack(tensors: Tensor[], dim?: number): Tensor;
  where(condition: Tensor, input: Tensor | number | boolean | bigint, other: Tensor | number | boolean | bigint): Tensor;
  crossEntropy(input: Tensor, target: Tensor, options?: { reduction?: Reduction }): Tensor;
  mseLoss(input: Tensor, target: Tensor, options?: { reduction?: Reduction }): Tensor;
  gelu(input: Tensor, options?: { approximate?: 'none' | 'tanh' }): Tensor;
  conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, options?: object): Tensor;
  linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor;
  interpolate(input: Tensor, options: object): Tensor;
  autogradGrad(outputs: Tensor[], inputs: Tensor[], options?: object): (Tensor | null)[];
  setGradEnabled(enabled: boolean): void;
  isGradEnabled(): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaGraphStats(): CudaGraphStats;
  memory(): { tensors: number; bytes: number };
  cpuCache(): { bytes: number; blocks: number; limit: number };
  cpuMemoryStats(): { allocated: number; peakAllocated: number };
  resetCpuPeakMemoryStats(): void;
  emptyCache(): number;
  releaseFreeMemory(): void;
  setCpuCacheLimit(bytes: number): void;
  startScope(): void;
  endScope(keep: Tensor[]): void;
  // checkpoints (native/checkpoints); `who` starts error messages ("loadStateDict: ...")
  checkpointFormat(path: string, who: string): { format: 'zip' | 'pickle' | 'safetensors' | 'unknown'; head: string };
  readTorchSave(path: string, key: string | undefined, who: string): Record<string, Tensor>;
  writeTorchSave(path: string, tensors: Record<string, Tensor>, zip64: boolean): void;
  jitLoad(path: string, device?: Device): NativeModule;
  // models and diffusion
  createUnet(options: object): NativeModule;
  createLinearClassifier(options: object): NativeModule;
  createClassifier(options: object): NativeModule;
  /** openai/guided-diffusion's nets; options validated and filled by lib/openai/models.ts. */
  createOpenaiUNetModel(options: object): NativeModule;
  createOpenaiEncoderUNetModel(options: object): NativeModule;
  createDiffusion(model: NativeModule, options: object): NativeDiffusion;
  /** A classifier trainer over the schedule of GaussianDiffusion's schedule options (timesteps, betaSchedule, timestepRespacing, rescaleTimesteps), without a model. */
  openaiClassifierTrainer(classifier: NativeModule, schedule: object, options: object): NativeOpenaiClassifierTrainer;
  /** openai's space_timesteps: the kept base timesteps, ascending. */
  spaceTimesteps(timesteps: number, spec: string): number[];
  /** RePaint's schedule of step indices (native/diffusion/editing.h). */
  repaintSchedule(steps: number, jumpLength: number, jumpCount: number): number[];
  checkOptionKeys(who: string, options: unknown, known: readonly string[]): void;
  openaiParameterCount(kind: 'unet' | 'encoder', options: object): number;
  /** Stops this thread's samples and training runs and joins their threads; for process.on('exit'). */
  stopJobsForExit(): void;
  trainDiffusion(model: NativeModule, options: object, onProgress: unknown): unknown;
  trainClassifier(model: NativeModule, options: object, onProgress: unknown): unknown;
  imageGrid(images: Tensor, nrow: number, padding: number, padValue: number): Tensor;
  loadFashionMnist(options: object): { images: Tensor; labels: Tensor; classNames: string[] };
  // torch.distributed (native/js/distributed_wrap.cc)
  distInit(options: { backend: string; masterAddr: string; masterPort: number; rank: number; worldSize: number; timeoutMs: number }): Promise<void>;
  distState(): { initialized: boolean; rank?: number; worldSize?: number; backend?: string; backends: string[] };
  distAllReduce(t: Tensor, op: string): Promise<void>;
  distBroadcast(t: Tensor, src: number): Promise<void>;
  distAllGather(t: Tensor): Promise<Tensor[]>;
  distBarrier(): Promise<void>;
  distAgree(what: string, names: string[], values: number[]): Promise<void>;
  distDestroy(): void;
}

// GD_ADDON_PATH points at another build of the addon (a second build folder, a CUDA build).
// Otherwise the package's prebuilt addon when the install script chose it, else build/Release.
export const binding: Binding = loadAddon();

function loadAddon(): Binding {
  const path = require('path') as typeof import('path');
  const explicit = process.env.GD_ADDON_PATH;
  const prebuilt = explicit ? null : selectedPrebuild();
  try {
    if (explicit) return require(path.resolve(explicit));
    if (prebuilt) return require(prebuilt);
    return require('bindings')({ bindings: 'guided_diffusion.node', module_root: moduleRoot() });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { tries?: string[] };
    // Only "not there" gets the advice; a built addon that fails to load (a missing libtorch,
    // an ABI mismatch) keeps its own message.
    const missing = explicit ? e.code === 'MODULE_NOT_FOUND' : Array.isArray(e.tries);
    if (!missing) throw err;
    throw new Error(missingAddonMessage(explicit ? path.resolve(explicit) : 'build/Release/guided_diffusion.node'));
  }
}

/** What to tell a user whose install did not build the addon (npm 11 skips unapproved install scripts). */
export function missingAddonMessage(where: string): string {
  return (
    `guided-diffusion: the native addon is not built (${where} is missing). ` +
    'npm 11 skips the install scripts of dependencies until they are approved; run ' +
    '`npm install-scripts approve guided-diffusion` and then `npm rebuild guided-diffusion` ' +
    '(with an older npm, or scripts already approved, `npm rebuild guided-diffusion` alone) ' +
    'in your project to build it.'
  );
}

function moduleRoot(): string {
  // dist/lib/binding.js -> package root
  return require('path').resolve(__dirname, '..', '..');
}

/**
 * prebuilds/<platform>-<arch>/guided_diffusion.node when the install script chose it: it links
 * libtorch beside it (its RUNPATH, $ORIGIN/libtorch) to the LibTorch it matched
 * (scripts/prebuilds.js); a compiling install removes that link.
 */
function selectedPrebuild(): string | null {
  const path = require('path') as typeof import('path');
  const dir = path.join(moduleRoot(), 'prebuilds', `${process.platform}-${process.arch}`);
  return require('fs').existsSync(path.join(dir, 'libtorch')) ? path.join(dir, 'guided_diffusion.node') : null;
}

// process.exit() runs exit(), which destroys LibTorch's statics under a sampling or training
// thread that is still running (a segfault), and would otherwise wait for a training run's
// last step: stop and join those threads first (a run ends after its current step). In a
// worker this is the worker's exit; a terminated worker's jobs are stopped by the addon itself.
process.once('exit', () => binding.stopJobsForExit());
