// sample()'s guidanceInput 'x0' and guidanceScale, checked: the scale the native sampler gets,
// or undefined when the condFn gives a gradient as before.
import { classifierGuidance } from './guidance';

export function x0GuidanceScale(options: { guidanceInput?: unknown; guidanceScale?: unknown }, condFn: unknown): number | undefined {
  const { guidanceInput, guidanceScale } = options;
  if (guidanceInput === undefined) {
    if (guidanceScale !== undefined) throw new TypeError("guidanceScale applies to guidanceInput 'x0' only");
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
  return scale;
}
