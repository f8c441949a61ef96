// guided-diffusion: classifier-guided diffusion sampling on LibTorch, from TypeScript.
import * as torch from './torch';

export { torch };
export { Tensor } from './tensor';
export type { NestedArray, AnyTypedArray, Operand } from './tensor';
export type { CudaGraphStats, DType, Device, Shape, TensorOptions } from './binding';
export { Module, jit } from './module';
export type { ModuleArg } from './module';
export { Unet, LinearClassifier, Classifier } from './models';
export type { UnetOptions, LinearClassifierOptions, ClassifierOptions } from './models';
export { GaussianDiffusion } from './diffusion';
export type { GaussianDiffusionOptions, SampleOptions, SampleProgress, Objective, BetaSchedule } from './diffusion';
export { classifierCondFn, classifierGuidance } from './guidance';
export type { CondFn, ClassifierGuidanceKwargs } from './guidance';
export { loadSafetensors, saveSafetensors } from './safetensors';
export { trainDiffusion, trainClassifier, loadFashionMnist } from './train';
export type { TrainOptions, DiffusionTrainOptions, ClassifierTrainOptions, TrainResult, TrainProgress, FashionMnist } from './train';
export { saveImage, toPNG } from './image';
export type { ImageGridOptions } from './image';
export { loadPretrained, pretrainedDir } from './pretrained';
export type { Pretrained, DefaultModelMeta } from './pretrained';
export { sampleDistributed, shardOf } from './sample-distributed';
export type { DistributedSampleOptions } from './sample-distributed';
export { launch, freePort } from './launch';
export type { LaunchOptions, LaunchResult } from './launch';
