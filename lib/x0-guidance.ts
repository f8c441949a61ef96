// sample()'s guidanceInput 'x0' and its options, checked: what the native sampler gets, or
// undefined when the condFn gives a gradient as before.
import { classifierGuidance } from './guidance';

export interface X0GuidanceRequest {
  x0GuidanceScale: number;
  x0GradientNorm: boolean;
  x0GuidanceInterval?: [number, number];
  x0Recurrence?: number;
}

interface X0Options { guidanceInput?: unknown; guidanceScale?: unknown; gradientNorm?: unknown; guidanceInterval?: unknown; recurrence?: unknown }

export function x0GuidanceRequest(options: X0Options, condFn: unknown): X0GuidanceRequest | undefined {
  const { guidanceInput, guidanceScale, gradientNorm, guidanceInterval, recurrence } = options;
  if (guidanceInput === undefined) {
    for (const key of ['guidanceScale', 'gradientNorm', 'guidanceInterval', 'recurrence'] as const) {
      if (options[key] !== undefined) throw new TypeError(`${key} applies to guidanceInput 'x0' only`);
    }
    return undefined;
  }
  if (guidanceInput !== 'x0') throw new TypeError(`guidanceInput must be 'x0'; got ${JSON.stringify(guidanceInput)}`);
  if (typeof condFn !== 'function') throw new TypeError("guidanceInput 'x0' needs a condFn that returns a loss on x0");
  if (condFn === classifierGuidance) {
    throw new TypeError("guidanceInput 'x0' needs a JS condFn returning a loss; classifierGuidance gives a gradient of x_t");
  }
  const scale = guidanceScale ?? 1;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    throw new TypeError(`guidanceScale must be a finite number; got ${String(guidanceScale)}`);
  }
  if (gradientNorm !== undefined && typeof gradientNorm !== 'boolean') {
    throw new TypeError(`gradientNorm must be a boolean; got ${String(gradientNorm)}`);
  }
  const request: X0GuidanceRequest = { x0GuidanceScale: scale, x0GradientNorm: gradientNorm === true };
  if (guidanceInterval !== undefined) {
    const ok = Array.isArray(guidanceInterval) && guidanceInterval.length === 2 &&
      guidanceInterval.every((v) => Number.isSafeInteger(v) && v >= 0) && guidanceInterval[0] <= guidanceInterval[1];
    if (!ok) throw new TypeError(`guidanceInterval must be [tLo, tHi], integer timesteps with 0 <= tLo <= tHi; got ${JSON.stringify(guidanceInterval)}`);
    request.x0GuidanceInterval = [guidanceInterval[0], guidanceInterval[1]];
  }
  if (recurrence !== undefined) {
    if (!Number.isSafeInteger(recurrence) || (recurrence as number) < 1) {
      throw new TypeError(`recurrence must be an integer >= 1; got ${String(recurrence)}`);
    }
    request.x0Recurrence = recurrence as number;
  }
  return request;
}
