// The samplers sample() can run and the options each one takes (docs/fast-samplers.md).
// Checked here, before anything runs; the native side does the math.
import { checkOptionKeys, KeysOf } from './option-keys';

export type SamplerName =
  | 'ancestral'
  | 'ddim'
  | 'dpm-solver++'
  | 'dpm-solver'
  | 'unipc'
  | 'euler'
  | 'euler-ancestral'
  | 'heun'
  | 'dpmpp-2m';

export const SAMPLERS: readonly SamplerName[] = ['ancestral', 'ddim', 'dpm-solver++', 'dpm-solver', 'unipc', 'euler', 'euler-ancestral', 'heun', 'dpmpp-2m'];

/** Options of the fast samplers, named as sample() takes them; defaults as the references'. */
export interface FastSamplerOptions {
  /** DPM-Solver / UniPC: the reference's `steps` (model calls, default 20); k-diffusion: the number of sigma intervals (default 20). */
  steps?: number;
  /** dpm-solver++, dpm-solver, unipc: 1, 2 or 3 (default 2). */
  order?: 1 | 2 | 3;
  /** dpm-solver++, dpm-solver: 'multistep' (default) or 'singlestep' (DPM-Solver-fast's mix of orders). */
  method?: 'multistep' | 'singlestep';
  /** dpm-solver++, dpm-solver, unipc: how time steps are spaced (default 'time_uniform'). */
  skipType?: 'time_uniform' | 'logSNR' | 'time_quadratic';
  /** dpm-solver++, dpm-solver, unipc: lower the order of the last steps (default true; DPM-Solver does so only below 10 steps). */
  lowerOrderFinal?: boolean;
  /** dpm-solver++, unipc: Imagen's dynamic thresholding of x0 (default off; true = { ratio: 0.995, maxVal: 1 }). */
  thresholding?: boolean | { ratio?: number; maxVal?: number };
  /** unipc: B(h) = h ('bh1', default) or e^h - 1 ('bh2'). */
  unipcVariant?: 'bh1' | 'bh2';
  /** euler, euler-ancestral, heun, dpmpp-2m: Karras et al.'s sigmas (default) or the model's own. */
  sigmas?: 'karras' | 'model';
  /** Karras sigmas' rho (default 7). */
  rho?: number;
}

/** What the native sampler reads. */
export interface FastSamplerRequest {
  steps?: number;
  order?: number;
  method?: 'multistep' | 'singlestep';
  skipType?: string;
  lowerOrderFinal?: boolean;
  thresholding?: { ratio: number; maxVal: number };
  unipcVariant?: 'bh1' | 'bh2';
  sigmas?: 'karras' | 'model';
  rho?: number;
}

const DPM: SamplerName[] = ['dpm-solver++', 'dpm-solver'];
const SOLVERS: SamplerName[] = [...DPM, 'unipc'];
const K: SamplerName[] = ['euler', 'euler-ancestral', 'heun', 'dpmpp-2m'];

/** Which samplers take each option (sample()'s own options that only some samplers use, too). */
export const TAKEN_BY: Record<string, readonly SamplerName[]> = {
  steps: [...SOLVERS, ...K],
  order: SOLVERS,
  method: DPM,
  skipType: SOLVERS,
  lowerOrderFinal: SOLVERS,
  thresholding: ['dpm-solver++', 'unipc'],
  unipcVariant: ['unipc'],
  sigmas: K,
  rho: K,
  eta: ['ddim'],
  condFnInput: ['ancestral'],
  jumpLength: ['ancestral', 'ddim'],
  jumpCount: ['ancestral', 'ddim'],
};

export function isFastSampler(name: SamplerName): boolean {
  return name !== 'ancestral' && name !== 'ddim';
}

export function checkSamplerName(value: unknown): SamplerName {
  if (typeof value !== 'string' || !SAMPLERS.includes(value as SamplerName)) {
    throw new TypeError(`sampler must be one of ${SAMPLERS.map((s) => `'${s}'`).join(', ')}; got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  }
  return value as SamplerName;
}

/** A TypeError when an option given is not one the sampler takes, naming the samplers that do. */
export function checkOptionsApply(sampler: SamplerName, options: Record<string, unknown>): void {
  for (const [key, takers] of Object.entries(TAKEN_BY)) {
    if (options[key] !== undefined && !takers.includes(sampler)) {
      throw new TypeError(`${key} is an option of ${takers.map((s) => `'${s}'`).join(', ')}; sampler '${sampler}' does not take it`);
    }
  }
}

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new TypeError(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  }
  return value as T;
}

function positiveNumber(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number; got ${String(value)}`);
  }
  return value;
}

/**
 * The native request of a fast sampler, checked: steps within the schedule's `timesteps`,
 * order 1..3, known names. Throws TypeError / RangeError naming the option.
 */
export function fastSamplerRequest(sampler: SamplerName, options: FastSamplerOptions, timesteps: number): FastSamplerRequest {
  checkOptionsApply(sampler, options as Record<string, unknown>);
  const request: FastSamplerRequest = {};
  if (options.steps !== undefined) {
    const steps = options.steps;
    if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1) throw new TypeError(`steps must be a positive integer; got ${String(steps)}`);
    if (steps > timesteps) throw new RangeError(`steps (${steps}) cannot exceed the schedule's ${timesteps} steps`);
    request.steps = steps;
  } else if (timesteps < 20) {
    throw new RangeError(`steps defaults to 20, more than the schedule's ${timesteps} steps: give steps`);
  }
  if (options.order !== undefined) {
    if (options.order !== 1 && options.order !== 2 && options.order !== 3) throw new RangeError(`order must be 1, 2 or 3; got ${String(options.order)}`);
    request.order = options.order;
  }
  if (options.method !== undefined) request.method = oneOf(options.method, 'method', ['multistep', 'singlestep'] as const);
  if (options.skipType !== undefined) request.skipType = oneOf(options.skipType, 'skipType', ['time_uniform', 'logSNR', 'time_quadratic'] as const);
  if (options.lowerOrderFinal !== undefined) {
    if (typeof options.lowerOrderFinal !== 'boolean') throw new TypeError(`lowerOrderFinal must be a boolean; got ${String(options.lowerOrderFinal)}`);
    request.lowerOrderFinal = options.lowerOrderFinal;
  }
  const th = options.thresholding;
  if (th !== undefined && th !== false) {
    if (th !== true && (th === null || typeof th !== 'object')) throw new TypeError(`thresholding must be false, true or { ratio, maxVal }; got ${String(th)}`);
    const spec = th === true ? {} : th;
    const unknown = Object.keys(spec).filter((k) => k !== 'ratio' && k !== 'maxVal');
    if (unknown.length) throw new TypeError(`thresholding: unknown option ${unknown.map((k) => `'${k}'`).join(', ')} (it takes ratio, maxVal)`);
    const ratio = spec.ratio ?? 0.995;
    if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 1)) throw new RangeError(`thresholding.ratio must be in (0, 1]; got ${String(ratio)}`);
    request.thresholding = { ratio, maxVal: positiveNumber(spec.maxVal ?? 1, 'thresholding.maxVal') };
  }
  if (options.unipcVariant !== undefined) request.unipcVariant = oneOf(options.unipcVariant, 'unipcVariant', ['bh1', 'bh2'] as const);
  if (options.sigmas !== undefined) request.sigmas = oneOf(options.sigmas, 'sigmas', ['karras', 'model'] as const);
  if (options.rho !== undefined) request.rho = positiveNumber(options.rho, 'rho');
  return request;
}

/** A sampler and its options: GaussianDiffusionOptions.defaultSampler, a CLI's --sampler. */
export type SamplerChoice = { sampler: SamplerName } & FastSamplerOptions & { eta?: number };

const CHOICE_KEYS: KeysOf<SamplerChoice> = {
  sampler: true, steps: true, order: true, method: true, skipType: true, lowerOrderFinal: true, thresholding: true, unipcVariant: true,
  sigmas: true, rho: true, eta: true,
};

/**
 * A default sampler, checked as sample() would check it: a known sampler, only options that
 * it takes, steps within the schedule. Returns a copy (later changes to the object given do
 * not reach the diffusion).
 */
export function checkSamplerChoice(value: unknown, timesteps: number, name = 'defaultSampler'): SamplerChoice {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${name}: expected an object such as { sampler: 'euler-ancestral', steps: 20 }; got ${value === null ? 'null' : typeof value}`);
  }
  const choice = { ...(value as Record<string, unknown>) };
  checkOptionKeys<SamplerChoice>(name, choice, CHOICE_KEYS);
  if (choice.sampler === undefined) throw new TypeError(`${name}: sampler is required`);
  const sampler = checkSamplerName(choice.sampler);
  try {
    if (isFastSampler(sampler)) fastSamplerRequest(sampler, choice as FastSamplerOptions, timesteps);
    else checkOptionsApply(sampler, choice);
  } catch (err) {
    (err as Error).message = `${name}: ${(err as Error).message}`;
    throw err;
  }
  if (choice.eta !== undefined && (typeof choice.eta !== 'number' || !(choice.eta >= 0 && choice.eta <= 1))) {
    throw new RangeError(`${name}: eta must be in [0, 1]; got ${String(choice.eta)}`);
  }
  return choice as unknown as SamplerChoice;
}
