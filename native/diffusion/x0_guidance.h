// Guidance by a loss on the predicted clean image (guidanceInput 'x0'): Universal Guidance's
// forward guidance (Bansal et al. 2023) and DPS (Chung et al. 2022, Algorithm 1), the
// gradient of the loss taken with respect to x_t through the model (docs/guidance.md).
#pragma once

#include <ATen/ATen.h>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/model_call.h"
#include "diffusion/schedule.h"

namespace gd {

// The model's prediction at (x, t) shifted by the loss's gradient:
//   eps_hat = eps + scale * sqrt(1 - ab_t) * d loss(x0(x_t)) / d x_t,
// x0 re-derived from eps_hat (clipped when clip). gradient_norm: image i's gradient divided by
// sqrt(loss_i), DPS's zeta / ||y - A(x0)|| for a loss ||y - A(x0)||^2 (needs one loss per image). context: step, total (x0, eps, alphaBar and
// sigma are filled in here). Throws std::runtime_error "condFn at step {step} (t={t}) returned
// ..." for a loss that is not a scalar or one value per image, or not finite.
Prediction x0_guided_prediction(const Denoiser& denoiser, ModelCall& model, const Schedule& s, Guidance& guidance,
                                const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond, bool clip,
                                double scale, bool gradient_norm, GuidanceContext context);

}  // namespace gd
