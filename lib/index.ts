// guided-diffusion: classifier-guided diffusion sampling on LibTorch, from TypeScript.
import * as torch from './torch';

export { torch };
export { Tensor } from './tensor';
export type { NestedArray, NestedInput, AnyTypedArray, Operand, Scalar } from './tensor';
export type { CudaGraphStats, DType, Device, Shape, TensorOptions } from './binding';
export { Module, jit } from './module';
export type { ModuleArg } from './module';
export { Unet, LinearClassifier, Classifier } from './models';
export * as openai from './openai';
export type { UnetOptions, LinearClassifierOptions, ClassifierOptions } from './models';
export { GaussianDiffusion } from './diffusion';
export type { GaussianDiffusionOptions, SampleOptions, SampleProgress, Objective, BetaSchedule, ModelVarType } from './diffusion';
export { classifierCondFn, classifierGuidance } from './guidance';
export type { CondFn, ClassifierGuidanceKwargs } from './guidance';
export { loadSafetensors, saveSafetensors } from './safetensors';
export { readStateDict } from './checkpoint';
export type { ReadStateDictOptions } from './checkpoint';
export { trainDiffusion, trainClassifier, loadFashionMnist } from './train';
export type { TrainOptions, DiffusionTrainOptions, ClassifierTrainOptions, TrainResult, TrainProgress, FashionMnist } from './train';
export { saveImage, toPNG } from './image';
export type { ImageGridOptions } from './image';
export { loadPretrained, pretrainedDir } from './pretrained';
export type { Pretrained, PretrainedOptions, DefaultModelMeta } from './pretrained';
export { sampleDistributed, shardOf } from './sample-distributed';
export type { DistributedSampleOptions } from './sample-distributed';
export { launch, freePort } from './launch';
export type { LaunchOptions, LaunchResult } from './launch';
