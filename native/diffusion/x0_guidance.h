// Guidance by a loss on the predicted clean image (guidanceInput 'x0'): Universal Guidance's
// forward guidance and self-recurrence (Bansal et al. 2023) and DPS (Chung et al. 2022,
// Algorithm 1), the gradient of the loss taken with respect to x_t through the model
// (docs/guidance.md). One piece, x0_loss_gradient, that each sampler applies its own way:
// DDIM and the fast samplers shift eps by it, the ancestral sampler shifts x_{t-1} (DPS).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/model_call.h"
#include "diffusion/schedule.h"

namespace gd {

struct X0GuidanceOptions {
  double scale = 1.0;
  bool gradient_norm = false;  // DPS's zeta / ||residual||: image i's gradient / sqrt(loss_i)
  // Universal Guidance's self-recurrence: a guided step t -> t' is taken this many times, x_t'
  // renoised back to t with a fresh draw between them (1: once, no renoising).
  int64_t recurrence = 1;
  // Guide only the steps whose model timestep is in [t_lo, t_hi] (of the sampled schedule).
  double t_lo = -std::numeric_limits<double>::infinity();
  double t_hi = std::numeric_limits<double>::infinity();
  bool guides(double t) const { return t >= t_lo && t <= t_hi; }
};

// Throws std::invalid_argument for a recurrence below 1 or an empty interval.
void check_x0_guidance_options(const X0GuidanceOptions& options);

// What x0_loss_gradient gives: the model's prediction at x (detached) and
// d sum_i loss_i(x0(x)) / dx (each image's divided by sqrt(loss_i) when gradient_norm).
struct X0Gradient {
  Prediction prediction;
  at::Tensor grad;
};

// predict(x_in) runs the model on x_in (which requires grad) with grad mode on and returns
// eps and x0 (as the sampler uses it, clipped where it clips; the gradient through a clipped
// pixel is 0). context: alpha_bar, sigma, step and total of the step (x0 and eps are filled in
// here). Throws std::runtime_error "condFn at step {step} (t={t_value}) returned ..." for a
// loss that is not a scalar or one value per image, not finite, or not a function of x0.
X0Gradient x0_loss_gradient(Guidance& guidance, const at::Tensor& x, const at::Tensor& model_t, double t_value,
                            const std::function<Prediction(const at::Tensor&)>& predict, bool gradient_norm,
                            GuidanceContext context);

// eps shifted by the gradient, Universal Guidance's forward guidance in DDIM's scaling:
// eps_hat = eps + scale * sigma * grad.
at::Tensor x0_guided_eps(const X0Gradient& g, double scale, double sigma);

// The DDIM step's guided prediction at (x, t): eps_hat as above with sigma = sqrt(1 - ab_t),
// x0 re-derived from it (clipped when clip). context: step, total.
Prediction x0_guided_prediction(const Denoiser& denoiser, ModelCall& model, const Schedule& s, Guidance& guidance,
                                const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond, bool clip,
                                const X0GuidanceOptions& options, GuidanceContext context);

// Universal Guidance's renoising of x from level ab_from back up to ab_to (< ab_from):
// sqrt(ab_to / ab_from) x + sqrt(1 - ab_to / ab_from) z, q(x_to | x_from). ab of the clean image is 1.
at::Tensor renoise(const at::Tensor& x, double ab_from, double ab_to, const at::Tensor& z);

}  // namespace gd
