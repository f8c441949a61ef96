// openai/guided-diffusion's training objective (GaussianDiffusion.training_losses and
// _vb_terms_bpd): the simple MSE, the variational bound in bits per dim, and the hybrid of the
// two that trains a learned variance through the bound on a frozen mean. These keep the
// autograd graph: backpropagate the mean of `loss` (times the schedule sampler's weights).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"

namespace gd {

// Their LossType: mse, rescaled_mse (the vb term of a learned variance times T/1000), kl (the
// bound alone) and rescaled_kl (the bound times T, an estimate of the whole bound).
enum class LossType { Mse, RescaledMse, Kl, RescaledKl };

// Throws std::invalid_argument: "lossType must be one of mse, rescaledMse, kl, rescaledKl; got
// 'foo'". Accepts their snake_case names too (rescaled_mse ...).
LossType parse_loss_type(const std::string& name);
const char* to_string(LossType type);

// Per-sample terms, float32 [B], as their dict: loss always; mse for the MSE types; vb for the
// MSE types with a learned variance (loss = mse + vb). The KL types set loss alone.
struct LossTerms {
  at::Tensor loss, mse, vb;
};

// _vb_terms_bpd for one model output at step t of the schedule: KL(q(x_{t-1} | x_t, x0) ||
// p(x_{t-1} | x_t)) in bits per dim, or at t == 0 the decoder's negative log likelihood of x0,
// with x0 predicted unclipped. [B].
at::Tensor vb_terms_bpd(const Denoiser& denoiser, const Schedule& schedule, const at::Tensor& x0,
                        const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& model_output);

// training_losses: one model call at x_t = q_sample(x0, t, noise) (noise undefined: randn_like),
// t the schedule's step index (a respaced schedule's model sees its mapped timesteps), class
// labels bound to the denoiser (Denoiser::with_labels). With a learned variance the MSE types add
// the vb term of the output whose mean half is detached, so the bound trains the variance only.
LossTerms training_losses(const Denoiser& denoiser, const Schedule& schedule, const at::Tensor& x0,
                          const at::Tensor& t, const at::Tensor& noise, LossType type);

}  // namespace gd
