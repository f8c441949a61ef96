// Editing real images with sample() (docs/guidance.md): SDEdit's img2img (init, strength) and
// RePaint's inpainting (init, mask, jumpLength, jumpCount). Checked here with errors that say
// what is wrong; the native samplers do the work (native/diffusion/editing.h).
import { binding } from './binding';
import { Tensor } from './tensor';
import * as torch from './torch';

export interface EditOptions {
  /**
   * The image to edit, shaped like the samples: [C, H, W] or [1, C, H, W] (the same image for
   * every sample) or [batchSize, C, H, W]; in [0, 1] with autoNormalize (as sample() returns
   * images), else in the model's space. Needs strength or mask.
   */
  init?: Tensor;
  /**
   * SDEdit (Meng et al.): the share of the sampler's steps to run, in [0, 1]. The sampler runs
   * the last floor(steps * strength) of its own steps, from init noised to the first of them
   * (DPM-Solver's t_start; k-diffusion's sigma tail). 0 returns init; 1 is ordinary sampling from
   * noise with the same draws (init then serves only the mask). Default 1.
   */
  strength?: number;
  /**
   * RePaint (Lugmayr et al.): 1 where init is kept, 0 where the sampler generates (their
   * gt_keep_mask; values between blend). [H, W], [1, H, W], [batchSize or 1, 1 or C, H, W].
   * After every step the kept region is init noised to the new step's level, so the output's
   * kept region is init up to the last step's noise (exactly init for ancestral, DDIM and the
   * k-diffusion samplers, whose last level is noise-free).
   */
  mask?: Tensor;
  /** RePaint's resampling (with a mask; ancestral and ddim): go back this many steps ... */
  jumpLength?: number;
  /** ... and sample each stretch this many times in all (RePaint's jump_n_sample; 1: no jumps). */
  jumpCount?: number;
}

export const EDIT_KEYS = ['init', 'strength', 'mask', 'jumpLength', 'jumpCount'] as const;

/** What the native sampler reads. */
export interface EditRequest {
  init?: Tensor;
  strength?: number;
  mask?: Tensor;
  jumpLength?: number;
  jumpCount?: number;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function positiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`${name} must be a positive integer; got ${String(value)}`);
  }
  return value;
}

/** [min, max] of a tensor's values, and whether all are finite. */
function range(t: Tensor): { lo: number; hi: number; finite: boolean } {
  return torch.tidy(() => {
    const f = t.to('float32');
    const finite = f.isfinite().all().item() as boolean;
    return { lo: f.amin().item() as number, hi: f.amax().item() as number, finite };
  });
}

/**
 * The editing options of sample(), checked against the samples' shape [batchSize, channels,
 * imageSize, imageSize]: TypeError / RangeError naming the option and saying what fits.
 */
export function editRequest(options: EditOptions, shape: readonly number[], autoNormalize: boolean): EditRequest {
  const { init, strength, mask, jumpLength, jumpCount } = options;
  const request: EditRequest = {};
  const [batch, channels, h, w] = shape;
  if (init === undefined) {
    for (const [name, value] of [['strength', strength], ['mask', mask], ['jumpLength', jumpLength], ['jumpCount', jumpCount]] as const) {
      if (value !== undefined) throw new TypeError(`${name} needs init (the image to edit)`);
    }
    return request;
  }
  if (!(init instanceof Tensor)) throw new TypeError(`init: expected a Tensor image shaped [C, H, W] or [B, C, H, W]; got ${init === null ? 'null' : typeof init}`);
  if (init.isDisposed) throw new TypeError('init: the Tensor was disposed');
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(init.dtype)) {
    throw new TypeError(`init must be a floating-point Tensor (images in [0, 1]); got ${init.dtype}`);
  }
  const s = init.shape;
  const fits = (s.length === 3 && s[0] === channels && s[1] === h && s[2] === w) ||
    (s.length === 4 && (s[0] === 1 || s[0] === batch) && s[1] === channels && s[2] === h && s[3] === w);
  if (!fits) {
    throw new RangeError(`init has shape ${shapeText(s)}; this diffusion samples ${shapeText(shape)}: give [${channels}, ${h}, ${w}], [1, ${channels}, ${h}, ${w}] or [${batch}, ${channels}, ${h}, ${w}]` +
      (s.length >= 2 && (s[s.length - 1] !== w || s[s.length - 2] !== h) ? ' (resize the image to the model\'s size first, e.g. loadImage(path, { size }))' : ''));
  }
  const r = range(init);
  if (!r.finite) throw new RangeError('init holds NaN or infinite values');
  if (autoNormalize && (r.lo < 0 || r.hi > 1)) {
    throw new RangeError(`init holds values in [${r.lo}, ${r.hi}]; with autoNormalize images are in [0, 1] (as sample() returns them)`);
  }
  request.init = init;
  if (strength !== undefined) {
    if (typeof strength !== 'number' || Number.isNaN(strength)) throw new TypeError(`strength must be a number in [0, 1]; got ${String(strength)}`);
    if (!(strength >= 0 && strength <= 1)) throw new RangeError(`strength must be in [0, 1] (0: init itself, 1: sampling from noise); got ${strength}`);
    request.strength = strength;
  }
  if (mask !== undefined) {
    if (!(mask instanceof Tensor)) throw new TypeError(`mask: expected a Tensor (1 where init is kept, 0 where it is generated); got ${mask === null ? 'null' : typeof mask}`);
    if (mask.isDisposed) throw new TypeError('mask: the Tensor was disposed');
    const m = mask.shape;
    const ok = (m.length === 2 && m[0] === h && m[1] === w) ||
      (m.length === 3 && (m[0] === 1 || m[0] === channels) && m[1] === h && m[2] === w) ||
      (m.length === 4 && (m[0] === 1 || m[0] === batch) && (m[1] === 1 || m[1] === channels) && m[2] === h && m[3] === w);
    if (!ok) {
      throw new RangeError(`mask has shape ${shapeText(m)}; it must broadcast to the samples' ${shapeText(shape)}: give [${h}, ${w}], [1, ${h}, ${w}], [1, 1, ${h}, ${w}] or [${batch}, 1, ${h}, ${w}]`);
    }
    if (mask.dtype !== 'bool') {
      const mr = range(mask);
      if (!mr.finite || mr.lo < 0 || mr.hi > 1) {
        throw new RangeError(`mask values must be in [0, 1] (1 keeps init, 0 generates); got values in [${mr.lo}, ${mr.hi}]`);
      }
    }
    request.mask = mask;
  }
  if (request.strength === undefined && request.mask === undefined) {
    throw new TypeError('init needs strength (SDEdit: how far to noise it) or mask (inpainting: where to keep it)');
  }
  if (jumpLength !== undefined || jumpCount !== undefined) {
    if (request.mask === undefined) throw new TypeError('jumpLength and jumpCount (RePaint\'s resampling) need a mask');
    if (jumpLength === undefined || jumpCount === undefined) {
      throw new TypeError('give jumpLength and jumpCount together (RePaint\'s jump_length and jump_n_sample, e.g. 10 and 10)');
    }
    request.jumpLength = positiveInt(jumpLength, 'jumpLength');
    request.jumpCount = positiveInt(jumpCount, 'jumpCount');
  }
  return request;
}

/**
 * RePaint's time schedule: the step indices that sampling over `steps` steps visits, from
 * steps - 1 down to -1 (the clean image), going back up jumpLength steps jumpCount - 1 times at
 * each multiple of jumpLength (their get_schedule_jump with n_sample 1). A step down is a sampler
 * step, a step up renoises.
 */
export function repaintSchedule(steps: number, jumpLength: number, jumpCount: number): number[] {
  positiveInt(steps, 'steps');
  positiveInt(jumpLength, 'jumpLength');
  positiveInt(jumpCount, 'jumpCount');
  if (steps > 100_000) throw new RangeError(`steps must be at most 100000; got ${steps}`);
  return binding.repaintSchedule(steps, jumpLength, jumpCount);
}
