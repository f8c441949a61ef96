// Training objectives (docs/diffusion-math.md, "Training"). These keep the
// autograd graph: call them with grad mode on and backpropagate the returned loss.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <utility>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"

namespace gd {

struct LossOptions {
  bool min_snr_loss_weight = false;  // clamp the SNR at min_snr_gamma in the loss weight
  double min_snr_gamma = 5;
  // Feed the model its own x0 prediction (made without grad, unclamped) as x_self_cond this
  // step. The reference does so on a random half of the steps; the caller tosses the coin.
  // Ignored unless the denoiser self-conditions.
  bool self_condition = false;
};

// Throws std::invalid_argument unless x0 is a batch and t an int64 [B] of one timestep per image.
void check_training_batch(const at::Tensor& x0, const at::Tensor& t);
// noise as given (checked to have x0's shape), or randn_like(x0) when undefined.
at::Tensor training_noise(const at::Tensor& noise, const at::Tensor& x0);

// x_t = sqrt(ab_t) * x0 + sqrt(1 - ab_t) * noise; t int64 [B].
at::Tensor q_sample(const Schedule& schedule, const at::Tensor& x0, const at::Tensor& t,
                    const at::Tensor& noise);

// Per-timestep loss weights [T], float32: min(snr, gamma)/snr for pred_noise, min(snr, gamma)
// for pred_x0, min(snr, gamma)/(snr + 1) for pred_v (no min without min_snr_loss_weight).
at::Tensor loss_weight(const Schedule& schedule, Objective objective, const LossOptions& options = {});

// The weighted MSE of the reference's p_losses: model output at q_sample(x0, t, noise)
// against noise / x0 / v, mean per sample, times loss_weight[t], mean over the batch.
// x0 is in [-1, 1] (normalise data first); noise undefined draws randn_like(x0).
// Returns a 0-dim float32 tensor.
at::Tensor p_losses(const Denoiser& denoiser, const Schedule& schedule, const at::Tensor& x0,
                    const at::Tensor& t, const at::Tensor& noise = at::Tensor(),
                    const LossOptions& options = {});

// Cross-entropy of a noise-aware classifier (forward(x, t) -> logits [B, classes]) on
// q_sample(x0, t, noise) against labels y; noise undefined draws randn_like(x0).
at::Tensor classifier_loss(torch::jit::Module classifier, const Schedule& schedule, const at::Tensor& x0,
                           const at::Tensor& t, const at::Tensor& y, const at::Tensor& noise = at::Tensor());

// The smallest and largest of the class labels y (one read to the host: take it once, before a
// training loop, not at each step).
std::pair<int64_t, int64_t> label_range(const at::Tensor& y);
// Throws std::invalid_argument naming a label of `range` outside [0, classes): cross_entropy
// would only say "Target 5 is out of bounds".
void check_class_labels(std::pair<int64_t, int64_t> range, int64_t classes);

}  // namespace gd
