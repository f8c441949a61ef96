#include "diffusion/training.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gd {

void check_training_batch(const at::Tensor& x0, const at::Tensor& t) {
  std::ostringstream msg;
  if (!x0.defined() || x0.dim() < 1) {
    msg << "x0 must be a batch of images";
  } else if (!t.defined() || t.dim() != 1 || t.size(0) != x0.size(0)) {
    msg << "t must be a 1-D tensor of " << x0.size(0) << " timesteps (one per image); got shape "
        << (t.defined() ? t.sizes() : at::IntArrayRef{});
  } else if (t.scalar_type() != at::kLong) {
    msg << "t must be an int64 tensor; got " << c10::toString(t.scalar_type());
  } else {
    return;  // an out-of-range t is reported by index_select, naming the index
  }
  throw std::invalid_argument(msg.str());
}

at::Tensor training_noise(const at::Tensor& noise, const at::Tensor& x0) {
  if (!noise.defined()) return at::randn_like(x0);
  if (noise.sizes() != x0.sizes()) {
    std::ostringstream msg;
    msg << "noise must have the shape of x0 " << x0.sizes() << "; got " << noise.sizes();
    throw std::invalid_argument(msg.str());
  }
  return noise;
}

at::Tensor q_sample(const Schedule& schedule, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  const Schedule s = schedule.to(x0.device());
  const int64_t nd = x0.dim();
  return extract(s.sqrt_alphas_cumprod, t, nd) * x0 + extract(s.sqrt_one_minus_alphas_cumprod, t, nd) * noise;
}

at::Tensor loss_weight(const Schedule& schedule, Objective objective, const LossOptions& o) {
  if (o.min_snr_loss_weight && !(o.min_snr_gamma > 0 && std::isfinite(o.min_snr_gamma))) {
    // Throws std::invalid_argument: gamma 0 weights every timestep 0 (pred_noise, pred_x0),
    // the loss is 0 and nothing trains.
    std::ostringstream msg;
    msg << "minSnrGamma must be a positive finite number; got " << o.min_snr_gamma;
    throw std::invalid_argument(msg.str());
  }
  at::Tensor snr = schedule.snr.to(at::kDouble);
  at::Tensor clipped = o.min_snr_loss_weight ? snr.clamp_max(o.min_snr_gamma) : snr;
  at::Tensor w;
  switch (objective) {
    case Objective::PredNoise: w = clipped / snr; break;
    case Objective::PredX0: w = clipped; break;
    case Objective::PredV: w = clipped / (snr + 1); break;
  }
  return w.to(at::kFloat);
}

at::Tensor p_losses(const Denoiser& denoiser, const Schedule& schedule, const at::Tensor& x0,
                    const at::Tensor& t, const at::Tensor& noise, const LossOptions& o) {
  check_training_batch(x0, t);
  const Schedule s = schedule.to(x0.device());
  at::Tensor n = training_noise(noise, x0);
  at::Tensor x = q_sample(s, x0, t, n);

  at::Tensor self_cond;
  if (o.self_condition && denoiser.self_condition()) {
    at::NoGradGuard no_grad;
    self_cond = denoiser.predict(s, x, t, at::Tensor(), /*clip=*/false).x0.detach();
  }
  if (denoiser.learned_variance()) {
    throw std::invalid_argument("pLosses: training a learned variance (openai's hybrid loss) is not implemented");
  }
  at::Tensor out = denoiser.forward(x, s.timestep_map.apply(t), self_cond);

  at::Tensor target;
  switch (denoiser.objective()) {
    case Objective::PredNoise: target = n; break;
    case Objective::PredX0: target = x0; break;
    case Objective::PredV: target = predict_v(s, x0, t, n); break;
  }
  at::Tensor loss = at::mse_loss(out, target, at::Reduction::None);
  loss = loss.reshape({loss.size(0), -1}).mean(1);
  loss = loss * extract(loss_weight(s, denoiser.objective(), o), t, 1);
  return loss.mean();
}

at::Tensor classifier_loss(torch::jit::Module classifier, const Schedule& schedule, const at::Tensor& x0,
                           const at::Tensor& t, const at::Tensor& y, const at::Tensor& noise) {
  check_training_batch(x0, t);
  at::Tensor x = q_sample(schedule, x0, t, training_noise(noise, x0));
  c10::IValue out = classifier.forward({x, t});
  if (!out.isTensor()) {
    throw std::runtime_error("the classifier returned " + out.tagKind() + "; expected a tensor of logits");
  }
  const at::Tensor logits = out.toTensor();
  if (logits.dim() == 2) check_class_labels(label_range(y), logits.size(1));
  return at::cross_entropy_loss(logits, y.to(x.device(), at::kLong));
}

std::pair<int64_t, int64_t> label_range(const at::Tensor& y) {
  if (y.numel() == 0) return {0, -1};
  const at::Tensor both = at::stack({y.min(), y.max()}).to(at::kCPU, at::kLong);
  return {both[0].item<int64_t>(), both[1].item<int64_t>()};
}

void check_class_labels(std::pair<int64_t, int64_t> range, int64_t classes) {
  const auto [lo, hi] = range;
  if (lo > hi) return;  // no labels
  if (lo < 0 || hi >= classes) {
    throw std::invalid_argument("a class label of " + std::to_string(lo < 0 ? lo : hi) + " for a classifier of " + std::to_string(classes) +
                                " classes: labels must be in [0, " + std::to_string(classes) + ")");
  }
}

}  // namespace gd
