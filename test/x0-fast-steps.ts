// The fast samplers' updates worked out in the recurrence tests (test/x0-recurrence-fast.test.ts),
// in double-precision coefficients from the levels the condFn saw: what the samplers must
// reproduce, written from the papers' formulas (DPM-Solver++ (Lu et al.), UniPC (Zhao et al.),
// k-diffusion's Euler ancestral and DPM++ 2M). Call inside torch.tidy.
import { Module, Tensor } from '../lib';
import { Call, guidedEps } from './x0-steps';

/** log(alpha / sigma) of a level. */
export const lambda = (c: Call): number => Math.log(c.alpha / c.sigma);

/** The data prediction (x - sigma eps_hat) / alpha of a VP sampler's call at x. */
export function dataPrediction(model: Module, x: Tensor, c: Call, s: number, norm: boolean): Tensor {
  return x.sub(guidedEps(model, x, c, s, norm).mul(c.sigma)).div(c.alpha);
}

/**
 * DPM-Solver++ multistep from level a to b: order 1 from the value m0 at a; order 2 with m1 at
 * the level before a (lambda1): x_b = (sigma_b / sigma_a) x - alpha_b phi (m0 + (m0 - m1) / (2 r0)),
 * phi = expm1(-h), h = lambda_b - lambda_a, r0 = (lambda_a - lambda1) / h.
 */
export function dpmppUpdate(x: Tensor, a: Call, b: Call, m0: Tensor, prev?: { m: Tensor; lambda: number }): Tensor {
  const h = lambda(b) - lambda(a), phi = Math.expm1(-h);
  let target = m0;
  if (prev) target = m0.add(m0.sub(prev.m).mul(h / (lambda(a) - prev.lambda) / 2));
  return x.mul(b.sigma / a.sigma).sub(target.mul(b.alpha * phi));
}

/**
 * UniPC-bh1 (B(h) = h) from level a to b, data prediction, order 1 or 2 (prev: the value at the
 * level before a). The predictor x_b; with mB (the model value at the predicted x_b) the corrector.
 */
export function unipcUpdate(x: Tensor, a: Call, b: Call, m0: Tensor, prev?: { m: Tensor; lambda: number }, mB?: Tensor): Tensor {
  const h = lambda(b) - lambda(a), hh = -h, phi1 = Math.expm1(hh), bh = hh;
  const base = x.mul(b.sigma / a.sigma).sub(m0.mul(b.alpha * phi1));
  const rk = prev ? (prev.lambda - lambda(a)) / h : 0;
  const d1 = prev ? prev.m.sub(m0).div(rk) : undefined;
  if (!mB) return d1 ? base.sub(d1.mul(b.alpha * bh * 0.5)) : base;
  // The corrector's weights solve sum_j rho_j r_j^(i-1) = b_i, r = (rk, 1), b_i = i! phi_{i+1}(hh) / B(h).
  const g1 = phi1 / hh - 1, g2 = g1 / hh - 0.5;
  const b1 = g1 / bh, b2 = (2 * g2) / bh;
  const dB = mB.sub(m0);
  if (!d1) return base.sub(dB.mul(b.alpha * bh * 0.5));
  const rho0 = (b1 - b2) / (1 - rk), rho1 = b1 - rho0;
  return base.sub(d1.mul(rho0).add(dB.mul(rho1)).mul(b.alpha * bh));
}

/**
 * k-diffusion's sigma of a call: the context's sigma is sigma_k * c_in, its alpha c_in. The
 * sampler's sigmas are float32: the quotient, within an ulp of one, rounds to it.
 */
export const sigmaK = (c: Call): number => Math.fround(c.sigma / c.alpha);

/** k-diffusion's denoised at x (sigma space): x - sigma_k eps_hat(x * c_in). */
export function denoised(model: Module, x: Tensor, c: Call, s: number, norm: boolean): Tensor {
  return x.sub(guidedEps(model, x.mul(c.alpha), c, s, norm).mul(sigmaK(c)));
}
