// openai/guided-diffusion's networks (guided_diffusion/unet.py) as native TorchScript
// modules with their parameter names: their state dicts load unchanged, save() writes a
// file Python's torch.jit.load runs. Options take their keyword arguments, snake_case as
// in unet.py or camelCase.
import { binding } from '../binding';
import { Module } from '../module';
import { Tensor } from '../tensor';
import { Field, readOptions } from './options';

/** UNetModel's and EncoderUNetModel's shared constructor arguments (camelCase). */
export interface NetOptions {
  imageSize: number;
  inChannels: number;
  modelChannels: number;
  outChannels: number;
  numResBlocks: number;
  /** Downsample rates (1, 2, 4, ...) with self-attention; their script_util turns "32,16,8" into imageSize / res. */
  attentionResolutions: number[];
  /** Dropout in the residual blocks while training; default 0. */
  dropout?: number;
  /** Width of each level as a multiple of modelChannels (truncated); default [1, 2, 4, 8]. */
  channelMult?: number[];
  /**
   * Convolutions of the torso in float16, as their convert_to_fp16 leaves them; norms,
   * time embedding and head stay float32. Runs on CUDA and on the CPU (where LibTorch's
   * float16 convolutions are slow). Default false.
   */
  useFp16?: boolean;
  /** Attention heads; default 1. */
  numHeads?: number;
  /** Channels per head; -1 (default) uses numHeads. */
  numHeadChannels?: number;
  /** Heads of the output blocks when numHeadChannels is -1; -1 (default) uses numHeads. */
  numHeadsUpsample?: number;
  /** FiLM-like conditioning of the residual blocks on the time embedding; default false. */
  useScaleShiftNorm?: boolean;
  /** Residual blocks resample instead of strided / nearest convs; default false. */
  resblockUpdown?: boolean;
  /** Split q, k, v before the heads (their QKVAttention) rather than after; default false. */
  useNewAttentionOrder?: boolean;
  /** Accepted for their signature: only true (convolutional resampling). */
  convResample?: boolean;
  /** Accepted for their signature: only 2 (images). */
  dims?: number;
  /**
   * Gradient checkpointing, as theirs: when our code runs the net in training mode with gradients
   * on (TrainLoop and ClassifierTrainLoop put it there; diffusion.trainingLosses on a net you put in
   * training mode too), each ResBlock and AttentionBlock keeps
   * only its inputs and is run again in backward, trading compute for memory. Gradients equal those
   * without it; forward() (also called from JS) and sampling are unchanged. Default false.
   */
  useCheckpoint?: boolean;
}

export interface UNetModelOptions extends NetOptions {
  /** Class-conditional with this many classes (forward then takes y); default null. */
  numClasses?: number | null;
}

export type EncoderPool = 'adaptive' | 'attention' | 'spatial' | 'spatial_v2';

export interface EncoderUNetModelOptions extends NetOptions {
  /** The head; 'attention' needs numHeadChannels and inputs of exactly imageSize. Default 'adaptive'. */
  pool?: EncoderPool;
}

/** The same options with unet.py's snake_case names. */
export type Snake<T> = {
  [K in keyof T as K extends string ? SnakeKey<K> : never]: T[K];
};
type SnakeKey<S extends string> = S extends `${infer H}${infer R}` ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeKey<R>}` : S;

const NET_FIELDS: readonly Field[] = [
  { name: 'imageSize', kind: 'positiveInt' },
  { name: 'inChannels', kind: 'positiveInt' },
  { name: 'modelChannels', kind: 'positiveInt' },
  { name: 'outChannels', kind: 'positiveInt' },
  { name: 'numResBlocks', kind: 'positiveInt' },
  { name: 'attentionResolutions', kind: 'rates' },
  { name: 'dropout', kind: 'fraction', default: 0 },
  { name: 'channelMult', kind: 'mults', default: [1, 2, 4, 8] },
  { name: 'useFp16', kind: 'boolean', default: false },
  { name: 'numHeads', kind: 'positiveInt', default: 1 },
  { name: 'numHeadChannels', kind: 'headOption', default: -1 },
  { name: 'numHeadsUpsample', kind: 'headOption', default: -1 },
  { name: 'useScaleShiftNorm', kind: 'boolean', default: false },
  { name: 'resblockUpdown', kind: 'boolean', default: false },
  { name: 'useNewAttentionOrder', kind: 'boolean', default: false },
  { name: 'convResample', kind: 'boolean', default: true, oneOf: [true] },
  { name: 'dims', kind: 'int', default: 2, oneOf: [2] },
  { name: 'useCheckpoint', kind: 'boolean', default: false },
];

const UNET_FIELDS: readonly Field[] = [...NET_FIELDS, { name: 'numClasses', kind: 'classes', default: null }];
const ENCODER_FIELDS: readonly Field[] = [
  ...NET_FIELDS,
  { name: 'pool', kind: 'string', default: 'adaptive', oneOf: ['adaptive', 'attention', 'spatial', 'spatial_v2'] },
];

/**
 * openai's UNetModel, the diffusion model of their checkpoints (64x64_diffusion.pt, ...).
 * forward(x, timesteps, y?) -> (N, outChannels, H, W); y (N,) int64 labels iff numClasses.
 * Built in training mode like nn.Module: call eval() before sampling (dropout).
 */
export class UNetModel extends Module {
  /** The options with every default filled in (camelCase). */
  readonly options: Required<Omit<UNetModelOptions, 'numClasses'>> & { numClasses: number | null };

  /** The parameters a UNetModel of these options holds, counted before anything is built. */
  static parameterCount(options: UNetModelOptions | Snake<UNetModelOptions>): number {
    return binding.openaiParameterCount('unet', readOptions('UNetModel', options, UNET_FIELDS));
  }

  constructor(options: UNetModelOptions | Snake<UNetModelOptions>) {
    const o = readOptions('UNetModel', options, UNET_FIELDS) as UNetModel['options'];
    super(binding.createOpenaiUNetModel(o));
    this.options = o;
  }

  forward(x: Tensor, timesteps: Tensor, y?: Tensor | null): Tensor {
    if (this.options.numClasses !== null && (y === undefined || y === null)) {
      throw new TypeError(`UNetModel.forward: y (class labels of shape (N,)) is required: the model is class-conditional (num_classes=${this.options.numClasses})`);
    }
    if (this.options.numClasses === null && y !== undefined && y !== null) {
      throw new TypeError('UNetModel.forward: y was given but the model is not class-conditional (num_classes is not set)');
    }
    return y === undefined || y === null ? super.forward(x, timesteps) : super.forward(x, timesteps, y);
  }
}

/**
 * openai's EncoderUNetModel, the noise-aware classifier of their checkpoints
 * (64x64_classifier.pt, ...). forward(x, timesteps) -> logits (N, outChannels).
 */
export class EncoderUNetModel extends Module {
  readonly options: Required<EncoderUNetModelOptions>;

  /** The parameters an EncoderUNetModel of these options holds, counted before anything is built. */
  static parameterCount(options: EncoderUNetModelOptions | Snake<EncoderUNetModelOptions>): number {
    return binding.openaiParameterCount('encoder', readOptions('EncoderUNetModel', options, ENCODER_FIELDS));
  }

  constructor(options: EncoderUNetModelOptions | Snake<EncoderUNetModelOptions>) {
    const o = readOptions('EncoderUNetModel', options, ENCODER_FIELDS) as Required<EncoderUNetModelOptions>;
    super(binding.createOpenaiEncoderUNetModel(o));
    this.options = o;
  }

  forward(x: Tensor, timesteps: Tensor): Tensor {
    return super.forward(x, timesteps);
  }
}
