#include "diffusion/optim.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

#include <stdexcept>
#include <tuple>

namespace gd {

namespace {

template <typename State>
State& state_of(torch::optim::Optimizer& opt, const at::Tensor& p) {
  auto& states = opt.state();
  auto it = states.find(p.unsafeGetTensorImpl());
  if (it == states.end()) {
    // What torch::optim::Adam makes on a parameter's first step: no step yet, zero moments.
    auto s = std::make_unique<State>();
    s->step(0);
    s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
    s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
    it = states.emplace(p.unsafeGetTensorImpl(), std::move(s)).first;
  }
  return static_cast<State&>(*it->second);
}

}  // namespace

FusedAdam::FusedAdam(std::vector<at::Tensor> params, bool adamw) : adamw_(adamw), params_(std::move(params)) {
  if (adamw_) {
    holder_ = std::make_unique<torch::optim::AdamW>(params_, torch::optim::AdamWOptions());
  } else {
    holder_ = std::make_unique<torch::optim::Adam>(params_, torch::optim::AdamOptions());
  }
  bind_states();
}

void FusedAdam::bind_states() {
  slots_.assign(params_.size(), Slot{});
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    int64_t step = 0;
    if (adamw_) {
      auto& s = state_of<torch::optim::AdamWParamState>(*holder_, p);
      slots_[i].state = &s;
      slots_[i].exp_avg = s.exp_avg();
      slots_[i].exp_avg_sq = s.exp_avg_sq();
      step = s.step();
    } else {
      auto& s = state_of<torch::optim::AdamParamState>(*holder_, p);
      slots_[i].state = &s;
      slots_[i].exp_avg = s.exp_avg();
      slots_[i].exp_avg_sq = s.exp_avg_sq();
      step = s.step();
    }
    slots_[i].step = at::full({}, static_cast<double>(step), p.options().dtype(at::kFloat));
  }
}

void FusedAdam::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().reset();
  }
}

void FusedAdam::set_hyper(const AdamHyper& h) {
  hyper_ = h;
  // Kept in the holder's groups too: save() writes them as torch::optim does.
  for (auto& group : holder_->param_groups()) {
    if (adamw_) {
      auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
      o.lr(h.lr).betas(std::make_tuple(h.beta1, h.beta2)).eps(h.eps).weight_decay(h.weight_decay);
    } else {
      auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
      o.lr(h.lr).betas(std::make_tuple(h.beta1, h.beta2)).eps(h.eps).weight_decay(h.weight_decay);
    }
  }
}

void FusedAdam::step() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> ps, gs, m1, m2, steps;
  ps.reserve(params_.size());
  gs.reserve(params_.size());
  m1.reserve(params_.size());
  m2.reserve(params_.size());
  steps.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& g = params_[i].grad();
    if (!g.defined()) continue;
    ps.push_back(params_[i]);
    gs.push_back(g);
    m1.push_back(slots_[i].exp_avg);
    m2.push_back(slots_[i].exp_avg_sq);
    steps.push_back(slots_[i].step);
  }
  if (ps.empty()) return;
  // The kernel reads the step after the increment (bias corrections of step 1 on the first).
  at::_foreach_add_(steps, 1);
  const AdamHyper& h = hyper_;
  if (adamw_) {
    at::_fused_adamw_(ps, gs, m1, m2, {}, steps, h.lr, h.beta1, h.beta2, h.weight_decay, h.eps,
                      /*amsgrad=*/false, /*maximize=*/false);
  } else {
    at::_fused_adam_(ps, gs, m1, m2, {}, steps, h.lr, h.beta1, h.beta2, h.weight_decay, h.eps,
                     /*amsgrad=*/false, /*maximize=*/false);
  }
}

void FusedAdam::save(torch::serialize::OutputArchive& archive) const {
  // The step counts live in the float tensors between saves; the holder's states get them now.
  for (const auto& slot : slots_) {
    const auto step = static_cast<int64_t>(slot.step.item<double>());
    if (adamw_) {
      static_cast<torch::optim::AdamWParamState*>(slot.state)->step(step);
    } else {
      static_cast<torch::optim::AdamParamState*>(slot.state)->step(step);
    }
  }
  holder_->save(archive);
}

void FusedAdam::load(torch::serialize::InputArchive& archive) {
  holder_->load(archive);
  bind_states();  // load() replaced the states
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  const std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  const at::Tensor total = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
  // torch's formula, in the gradients' dtype; a factor clamped to 1 would leave them as they
  // are, so that multiplication is skipped.
  const at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  if (coef.item<double>() < 1.0) at::_foreach_mul_(grads, coef);
  return total.item<double>();
}

EmaUpdate::EmaUpdate(const std::vector<at::Tensor>& model_params, const std::vector<at::Tensor>& ema_params,
                     const std::vector<at::Tensor>& model_buffers, const std::vector<at::Tensor>& ema_buffers) {
  if (model_params.size() != ema_params.size() || model_buffers.size() != ema_buffers.size()) {
    throw std::runtime_error("the EMA model does not have the model's parameters and buffers");
  }
  for (size_t i = 0; i < model_params.size(); ++i) {
    const bool lerp = at::isFloatingType(ema_params[i].scalar_type());
    (lerp ? lerp_from_ : copy_from_).push_back(model_params[i]);
    (lerp ? lerp_to_ : copy_to_).push_back(ema_params[i]);
  }
  copy_from_.insert(copy_from_.end(), model_buffers.begin(), model_buffers.end());
  copy_to_.insert(copy_to_.end(), ema_buffers.begin(), ema_buffers.end());
}

void EmaUpdate::operator()(double decay) const {
  at::NoGradGuard no_grad;
  if (!lerp_to_.empty()) at::_foreach_lerp_(lerp_to_, lerp_from_, 1.0 - decay);
  for (size_t i = 0; i < copy_to_.size(); ++i) copy_to_[i].copy_(copy_from_[i]);
}

}  // namespace gd
