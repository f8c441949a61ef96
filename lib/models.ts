// The native models: each a TorchScript module built in C++ from an options object whose
// keys mirror the Python keyword arguments in camelCase.
import { binding } from './binding';
import { Module } from './module';
import { checkOptionKeys, KeysOf } from './option-keys';

export interface UnetOptions {
  /** Base width (required). */
  dim: number;
  /** Width of the first conv; default dim. */
  initDim?: number;
  /** Output channels; default channels (2 * channels with learnedVariance). */
  outDim?: number;
  /** Width multipliers per level; default [1, 2, 4, 8]. Image sides must divide by 2^(levels-1). */
  dimMults?: number[];
  /** Image channels; default 3. */
  channels?: number;
  /** Condition on the previous x0 prediction (forward takes x_self_cond); default false. */
  selfCondition?: boolean;
  learnedVariance?: boolean;
  /** Learned sinusoidal time embedding; default false. */
  learnedSinusoidalCond?: boolean;
  /** Random Fourier time features (frozen); default false. */
  randomFourierFeatures?: boolean;
  /** Size of the learned/random embedding; default 16. */
  learnedSinusoidalDim?: number;
  /**
   * Class-conditional, for classifier-free guidance: the Unet of the reference's
   * classifier_free_guidance module (its `num_classes`; same parameter names). forward(x, t, y)
   * takes labels in [0, numClasses], numClasses standing for "no class" (the model's
   * `null_class`, what sample({ cfgScale }) and trainDiffusion({ condDropProb }) use).
   * Not with selfCondition.
   */
  numClasses?: number;
}

const UNET_KEYS: KeysOf<UnetOptions> = {
  dim: true, initDim: true, outDim: true, dimMults: true, channels: true, selfCondition: true, learnedVariance: true,
  learnedSinusoidalCond: true, randomFourierFeatures: true, learnedSinusoidalDim: true, numClasses: true,
};

/** The reference Unet (denoising-diffusion-pytorch's guided_diffusion.Unet), same parameter names. */
export class Unet extends Module {
  readonly options: UnetOptions;

  constructor(options: UnetOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('Unet: expected an options object such as { dim: 64 }');
    checkOptionKeys<UnetOptions>('Unet', options, UNET_KEYS);
    super(binding.createUnet(options));
    this.options = { ...options };
  }
}

export interface LinearClassifierOptions {
  imageSize: number;
  /** default 3 */
  channels?: number;
  numClasses: number;
}

/** The seed's demo classifier: linear in the flattened image plus linear in t. */
export class LinearClassifier extends Module {
  readonly options: LinearClassifierOptions;

  constructor(options: LinearClassifierOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('LinearClassifier: expected an options object');
    checkOptionKeys<LinearClassifierOptions>('LinearClassifier', options, { imageSize: true, channels: true, numClasses: true });
    super(binding.createLinearClassifier(options));
    this.options = { ...options };
  }
}

export interface ClassifierOptions {
  /** Side of the square input images (required). */
  imageSize: number;
  /** Image channels; default 3. */
  channels?: number;
  /** Number of classes (required). */
  numClasses: number;
  /** Base width, even and >= 4; default 32. */
  dim?: number;
  /** Width multipliers per level; the map halves between levels; default [1, 2, 2]. */
  dimMults?: number[];
  /** Residual blocks per level; default 1. */
  numResBlocks?: number;
  /** Feature-map sides at which blocks get self-attention; default [16]. */
  attentionResolutions?: number[];
  /** 'attention' (attention pooling, fixed input size) or 'avg' (global average); default 'attention'. */
  pool?: 'attention' | 'avg';
  /** Dropout in residual blocks while training; default 0. */
  dropout?: number;
  /** Attention heads; default 4. */
  heads?: number;
  /** Width per attention head; default 32. */
  dimHead?: number;
}

const CLASSIFIER_KEYS: KeysOf<ClassifierOptions> = {
  imageSize: true, channels: true, numClasses: true, dim: true, dimMults: true, numResBlocks: true, attentionResolutions: true,
  pool: true, dropout: true, heads: true, dimHead: true,
};

/**
 * A noise-aware classifier in the manner of Dhariwal & Nichol: the encoder half of a Unet
 * (timestep-embedded residual blocks, downsampling, attention at chosen resolutions), then
 * attention or average pooling to logits. forward(x, t) -> (B, numClasses).
 */
export class Classifier extends Module {
  readonly options: ClassifierOptions;

  constructor(options: ClassifierOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('Classifier: expected an options object');
    checkOptionKeys<ClassifierOptions>('Classifier', options, CLASSIFIER_KEYS);
    super(binding.createClassifier(options));
    this.options = { ...options };
  }
}
