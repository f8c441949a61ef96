// Classifier guidance: the seed's classifier_cond_fn in TypeScript with our autograd, and
// the same computation done natively on the sampling thread.
import { Module } from './module';
import { Tensor } from './tensor';
import * as torch from './torch';

export interface ClassifierGuidanceKwargs {
  /** A noise-aware classifier: forward(x, t) -> logits (B, classes). */
  classifier: Module;
  /** Target class per sample: int64 (B,). */
  y: Tensor;
  /** The guidance scale s; default 1. */
  classifierScale?: number;
}

/**
 * condFn's fourth argument: the step the gradient is asked for. x_t = sqrt(alphaBar) x0 + sigma eps,
 * sigma = sqrt(1 - alphaBar); x0 is clipped as the sampler clips it (the fast samplers' is not).
 * step counts condFn calls from 0; total is the sample's steps (ancestral, DDIM: its condFn
 * calls; fast samplers: their `steps`). The tensors are sample()'s, valid during the call.
 */
export interface GuidanceContext {
  x0: Tensor;
  eps: Tensor;
  alphaBar: number;
  sigma: number;
  step: number;
  total: number;
}

/**
 * A condFn: (x, t, guidanceKwargs, context) -> gradient shaped like x, or a Promise of one.
 * sample() owns the tensors it passes in and the one returned (it disposes them).
 */
export type CondFn<K = unknown> = (x: Tensor, t: Tensor, guidanceKwargs: K, context: GuidanceContext) => Tensor | Promise<Tensor>;

/**
 * d/dx sum_i log_softmax(classifier(x, t))[i, y_i] * classifierScale: the seed's
 * classifier_cond_fn. Summing over the batch is exact: sample i's logit depends on x[i] only.
 */
export function classifierCondFn(x: Tensor, t: Tensor, kwargs: ClassifierGuidanceKwargs): Tensor {
  const { classifier, y } = kwargs;
  const scale = kwargs.classifierScale ?? 1;
  return torch.tidy(() =>
    torch.enableGrad(() => {
      const xIn = x.detach().requiresGrad_(true);
      const logits = classifier.forward(xIn, t);
      const logProbs = logits.logSoftmax(-1);
      // Indices on the logits' device: a CPU index into a CUDA tensor is a blocking copy.
      const rows = torch.arange(0, logits.shape[0], 1, { device: logits.device });
      // int64 indices: a uint8 index tensor would be read as a mask.
      const selected = logProbs.index([rows, y.view(-1).to({ device: logits.device, dtype: 'int64' })]);
      const [grad] = torch.autograd.grad(selected.sum(), xIn);
      return grad!.mul(scale);
    }),
  );
}

/**
 * The same guidance as classifierCondFn, computed natively on the sampling thread with no
 * hop to JS. Pass it as condFn; it is recognised by identity and never called from JS.
 */
export const classifierGuidance: CondFn<ClassifierGuidanceKwargs> = (x, t, kwargs) => classifierCondFn(x, t, kwargs);

/** Throws a clear error when classifier guidance kwargs cannot serve a batch of batchSize. */
export function checkClassifierKwargs(kwargs: unknown, batchSize: number): asserts kwargs is ClassifierGuidanceKwargs {
  if (kwargs === null || typeof kwargs !== 'object') {
    throw new TypeError('guidanceKwargs: classifier guidance needs { classifier, y, classifierScale }');
  }
  const k = kwargs as Partial<ClassifierGuidanceKwargs>;
  if (!(k.classifier instanceof Module)) {
    throw new TypeError('guidanceKwargs.classifier: expected a Module (a Classifier, or jit.load of a checkpoint)');
  }
  if (!(k.y instanceof Tensor)) throw new TypeError('guidanceKwargs.y: expected an int64 Tensor of target classes');
  if (k.y.numel !== batchSize) {
    throw new RangeError(`guidanceKwargs.y has ${k.y.numel} labels but batchSize is ${batchSize}`);
  }
  if (k.y.dtype !== 'int64' && k.y.dtype !== 'int32' && k.y.dtype !== 'uint8') {
    throw new TypeError(`guidanceKwargs.y: expected an int64, int32 or uint8 Tensor of class indices but received ${k.y.dtype}`);
  }
  const numClasses = k.classifier.attribute('num_classes');
  const [lo, hi] = k.y.numel ? torch.tidy(() => [k.y!.min().item() as number, k.y!.max().item() as number]) : [0, 0];
  if (lo < 0 || (typeof numClasses === 'number' && hi >= numClasses)) {
    throw new RangeError(`guidanceKwargs.y has class ${lo < 0 ? lo : hi}, outside 0..${typeof numClasses === 'number' ? numClasses - 1 : 'num_classes-1'}`);
  }
  if (k.classifierScale !== undefined && (typeof k.classifierScale !== 'number' || !Number.isFinite(k.classifierScale))) {
    throw new TypeError(`guidanceKwargs.classifierScale: expected a finite number but received ${String(k.classifierScale)}`);
  }
}
