// openai/guided-diffusion's models from TypeScript: `import { openai } from 'guided-diffusion'`.
export { UNetModel, EncoderUNetModel } from './models';
export type { NetOptions, UNetModelOptions, EncoderUNetModelOptions, EncoderPool, Snake } from './models';
export {
  parseFlags,
  createModel,
  createClassifier,
  modelOptions,
  classifierOptions,
  MODEL_FLAG_DEFAULTS,
  CLASSIFIER_FLAG_DEFAULTS,
  OTHER_SCRIPT_FLAGS,
} from './flags';
export type { Flags, FlagValue } from './flags';
export { createGaussianDiffusion, createModelAndDiffusion, spaceTimesteps } from './diffusion';
export type { OpenAIDiffusionFlags } from './diffusion';
export { TrainLoop, trainFlags } from './train';
export { ClassifierTrainLoop, classifierTrainFlags } from './classifier-train';
export type { ClassifierTrainFlags, ClassifierStepOptions, ClassifierRunLoopOptions } from './classifier-train';
export type { OpenAITrainFlags, RunStepOptions, RunLoopOptions, RunLoopResult, TrainBatch } from './train';
