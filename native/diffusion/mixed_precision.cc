#include "diffusion/mixed_precision.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "diffusion/openai_train_step.h"

namespace gd {

MixedPrecision::MixedPrecision(std::vector<at::Tensor> model_params, MixedPrecisionOptions options)
    : options_(options), model_(std::move(model_params)), lg_loss_scale_(options.initial_lg_loss_scale) {
  std::ostringstream msg;
  if (!std::isfinite(options_.fp16_scale_growth) || options_.fp16_scale_growth < 0) {
    msg << "fp16_scale_growth must be a number >= 0; got " << options_.fp16_scale_growth;
  } else if (!std::isfinite(options_.initial_lg_loss_scale)) {
    msg << "initial_lg_loss_scale must be a finite number; got " << options_.initial_lg_loss_scale;
  }
  if (msg.tellp() > 0) throw std::invalid_argument(msg.str());
  if (!options_.use_fp16) {
    master_ = model_;
    return;
  }
  groups_.resize(2);
  for (size_t i = 0; i < model_.size(); ++i) groups_[model_[i].dim() <= 1 ? 0 : 1].push_back(i);
  at::NoGradGuard no_grad;
  for (const auto& p : model_) {
    if (!p.is_floating_point()) throw std::invalid_argument("use_fp16: the model has a parameter that is not floating point");
    master_.push_back(p.detach().to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true));
  }
}

at::Tensor MixedPrecision::scale(const at::Tensor& loss) const {
  // Their loss * 2 ** lg_loss_scale: a Python float, so a double scalar here too.
  return options_.use_fp16 ? loss * std::pow(2.0, lg_loss_scale_) : loss;
}

void MixedPrecision::zero_grad() {
  for (auto& p : model_) p.mutable_grad() = at::Tensor();
  if (options_.use_fp16) {
    for (auto& p : master_) p.mutable_grad() = at::Tensor();
  }
}

void MixedPrecision::grads_to_master() {
  if (!options_.use_fp16) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) {
    // Their param_grad_or_zeros: a parameter without a gradient gives zeros.
    const at::Tensor& g = model_[i].grad();
    master_[i].mutable_grad() = g.defined() ? g.detach().to(at::kFloat, false, /*copy=*/true) : at::zeros_like(master_[i]);
  }
}

bool MixedPrecision::unscale_or_skip(MeanLog& log) {
  at::NoGradGuard no_grad;
  auto [grad_norm, param_norm] = grad_and_param_norm(master_);
  if (options_.use_fp16) {
    log.add("lg_loss_scale", lg_loss_scale_);
    const double scale = std::pow(2.0, lg_loss_scale_);
    grad_norm /= scale;
    if (!std::isfinite(grad_norm)) {
      lg_loss_scale_ -= 1;
      std::ostringstream s;
      s << "Found NaN, decreased lg_loss_scale to " << lg_loss_scale_;
      last_overflow_ = s.str();
      for (auto& p : master_) p.mutable_grad() = at::Tensor();
      return false;
    }
    for (auto& p : master_) p.mutable_grad().mul_(1.0 / scale);
  }
  log.add("grad_norm", grad_norm);
  log.add("param_norm", param_norm);
  return true;
}

void MixedPrecision::finish_step() {
  if (!options_.use_fp16) return;
  for (auto& p : master_) p.mutable_grad() = at::Tensor();
  model_from_master();
  lg_loss_scale_ += options_.fp16_scale_growth;
}

void MixedPrecision::master_from_model() {
  if (!options_.use_fp16) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) master_[i].copy_(model_[i]);
}

void MixedPrecision::model_from_master() {
  if (!options_.use_fp16) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) model_[i].copy_(master_[i]);
}

}  // namespace gd
