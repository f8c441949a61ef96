// guidanceInput 'x0' steps worked out in the tests, with our autograd through the model: what
// the samplers must reproduce (docs/guidance.md). Call inside torch.tidy; tensors come back detached.
import { Module, torch, Tensor } from '../lib';
import type { GuidanceContext } from '../lib';

export type Loss = (x0: Tensor) => Tensor;

/** Per-image loss of the tests: squared distance of x0 to 0.3, summed over pixels. */
export const loss: Loss = (x0) => x0.sub(0.3).square().flatten(1).sum(1);

/**
 * eps = model(x_in, t), x0 = (x_in - sigma eps) / alpha (clamped to [-1, 1] with clip) and
 * d sum(loss(x0)) / d x_in, image i's divided by sqrt(loss_i) with norm (DPS's zeta / ||residual||).
 */
export function lossGradient(model: Module, x: Tensor, t: Tensor, alpha: number, sigma: number, clip: boolean, norm: boolean): { eps: Tensor; x0: Tensor; grad: Tensor } {
  return torch.enableGrad(() => {
    const xIn = x.detach().requiresGrad_(true);
    const eps = model.forward(xIn, t);
    let x0 = xIn.sub(eps.mul(sigma)).div(alpha);
    if (clip) x0 = x0.clamp(-1, 1);
    const l = loss(x0);
    let [g] = torch.autograd.grad(l.sum(), xIn);
    if (norm) g = g!.div(l.detach().sqrt().view(x.shape[0], 1, 1, 1));
    return { eps: eps.detach(), x0: x0.detach(), grad: g!.detach() };
  });
}

/**
 * A guided DDIM step from x at step t (level ab) to the next level abNext (1: the clean image):
 * eps_hat = eps + s sqrt(1 - ab) grad, x0_hat = clip((x - sqrt(1 - ab) eps_hat) / sqrt(ab)),
 * x' = sqrt(abNext) x0_hat + sqrt(1 - abNext - sigma^2) eps_hat + sigma z with DDIM's sigma for eta.
 */
export function ddimStep(model: Module, x: Tensor, t: number, ab: number, abNext: number, eta: number, z: Tensor, s: number, norm = false): Tensor {
  const { eps, grad } = lossGradient(model, x, torch.full([x.shape[0]], t, { dtype: 'int64' }), Math.sqrt(ab), Math.sqrt(1 - ab), true, norm);
  const epsHat = eps.add(grad.mul(s * Math.sqrt(1 - ab)));
  const x0Hat = x.sub(epsHat.mul(Math.sqrt(1 - ab))).div(Math.sqrt(ab)).clamp(-1, 1);
  if (abNext === 1) return x0Hat;
  const sigma = eta * Math.sqrt(((1 - ab / abNext) * (1 - abNext)) / (1 - ab));
  return x0Hat.mul(Math.sqrt(abNext)).add(epsHat.mul(Math.sqrt(1 - abNext - sigma * sigma))).add(z.mul(sigma));
}

/**
 * A guided ancestral step from x at step t (abs: alphaBar of every step) as DPS's Algorithm 1:
 * the posterior mean of q(x_{t-1} | x_t, x0) from the clipped x0, plus sqrt(posterior variance) z
 * (no noise at t = 0), minus s * grad.
 */
export function ancestralStep(model: Module, x: Tensor, t: number, abs: number[], z: Tensor | undefined, s: number, norm = false): Tensor {
  const ab = abs[t], abPrev = t > 0 ? abs[t - 1] : 1, beta = 1 - ab / abPrev;
  const { x0, grad } = lossGradient(model, x, torch.full([x.shape[0]], t, { dtype: 'int64' }), Math.sqrt(ab), Math.sqrt(1 - ab), true, norm);
  const mean = x0.mul((beta * Math.sqrt(abPrev)) / (1 - ab)).add(x.mul(((1 - abPrev) * Math.sqrt(1 - beta)) / (1 - ab)));
  const next = t > 0 ? mean.add(z!.mul(Math.sqrt((beta * (1 - abPrev)) / (1 - ab)))) : mean;
  return next.sub(grad.mul(s));
}

/** Universal Guidance's renoising from level abFrom back to abTo: sqrt(abTo / abFrom) x + sqrt(1 - abTo / abFrom) z. */
export function renoise(x: Tensor, abFrom: number, abTo: number, z: Tensor): Tensor {
  return x.mul(Math.sqrt(abTo / abFrom)).add(z.mul(Math.sqrt(1 - abTo / abFrom)));
}

/** The first n standard normal draws of a sampler seeded with seed (torch.manualSeed gives the same stream). */
export function draws(seed: number, n: number, shape: number[]): Tensor[] {
  torch.manualSeed(seed);
  return Array.from({ length: n }, () => torch.randn(shape));
}

/** A fast sampler's model call as its condFn saw it: model time t, alpha = sqrt(alphaBar) and sigma of the context. */
export interface Call { t: number; alpha: number; sigma: number }

/** A condFn returning the tests' loss that records each call's model time, alpha and sigma. */
export function recording(calls: Call[]) {
  return (x0: Tensor, t: Tensor, _k: unknown, context: GuidanceContext): Tensor => {
    calls.push({ t: (t.data() as Float32Array)[0], alpha: Math.sqrt(context.alphaBar), sigma: context.sigma });
    return torch.tidy(() => loss(x0));
  };
}

/** The fast samplers' guided eps at x_in for a recorded call: eps + s * sigma * grad (x0 unclipped). */
export function guidedEps(model: Module, xIn: Tensor, call: Call, s: number, norm: boolean): Tensor {
  const { eps, grad } = lossGradient(model, xIn, torch.full([xIn.shape[0]], call.t, { dtype: 'float32' }), call.alpha, call.sigma, false, norm);
  return eps.add(grad.mul(s * call.sigma));
}
