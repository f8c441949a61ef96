#include "diffusion/denoiser.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "diffusion/autocast_scope.h"
#include "diffusion/openai_checkpointed.h"

namespace gd {

Objective parse_objective(const std::string& name) {
  if (name == "pred_noise") return Objective::PredNoise;
  if (name == "pred_x0") return Objective::PredX0;
  if (name == "pred_v") return Objective::PredV;
  throw std::invalid_argument("objective must be one of pred_noise, pred_x0, pred_v; got '" + name + "'");
}

const char* to_string(Objective objective) {
  switch (objective) {
    case Objective::PredNoise: return "pred_noise";
    case Objective::PredX0: return "pred_x0";
    case Objective::PredV: return "pred_v";
  }
  return "?";
}

VarianceType parse_variance_type(const std::string& name) {
  if (name == "fixedSmall" || name == "fixed_small") return VarianceType::FixedSmall;
  if (name == "fixedLarge" || name == "fixed_large") return VarianceType::FixedLarge;
  if (name == "learned") return VarianceType::Learned;
  if (name == "learnedRange" || name == "learned_range") return VarianceType::LearnedRange;
  throw std::invalid_argument("modelVarType must be one of fixedSmall, fixedLarge, learned, learnedRange; got '" + name + "'");
}

const char* to_string(VarianceType type) {
  switch (type) {
    case VarianceType::FixedSmall: return "fixedSmall";
    case VarianceType::FixedLarge: return "fixedLarge";
    case VarianceType::Learned: return "learned";
    case VarianceType::LearnedRange: return "learnedRange";
  }
  return "?";
}

void check_objective_schedule(Objective objective, const Schedule& schedule) {
  if (objective == Objective::PredNoise && schedule.zero_terminal_snr) {
    throw std::invalid_argument(
        "objective 'pred_noise' cannot use a schedule whose last beta is 1 (zero terminal SNR): "
        "x0 = (x_t - sqrt(1 - ab_T) * eps) / sqrt(ab_T) divides by sqrt(ab_T) = 0 at the last "
        "timestep; use objective 'pred_x0' or 'pred_v', or a schedule whose betas stay below 1");
  }
}

Denoiser::Denoiser(torch::jit::Module model, Objective objective, std::optional<bool> self_condition)
    : model_(std::move(model)), objective_(objective) {
  auto forward = model_.find_method("forward");
  if (!forward) throw std::invalid_argument("the diffusion model has no forward method");
  const auto& args = forward->function().getSchema().arguments();  // args[0] is self
  const int64_t n = static_cast<int64_t>(args.size()) - 1;
  if (n != 2 && n != 3) {
    std::ostringstream msg;
    msg << "the diffusion model's forward must take (x, t) or (x, t, x_self_cond); it takes " << n
        << " argument" << (n == 1 ? "" : "s");
    throw std::invalid_argument(msg.str());
  }
  arity_ = n;
  if (n == 3 && args[3].name() == "y") {
    // openai's UNetModel.forward(x, timesteps, y=None): class labels, not self-conditioning.
    takes_labels_ = true;
    labels_optional_ = args[3].type()->kind() == c10::TypeKind::OptionalType;
    // Our native openai.UNetModel declares y optional whatever its flags (one schema for both
    // kinds); with num_classes set it needs y, so the probe and sample() must supply it.
    if (labels_optional_ && model_.hasattr("num_classes") && model_.attr("num_classes").isInt() &&
        model_.attr("num_classes").toInt() > 0) {
      labels_optional_ = false;
    }
  } else if (n == 3) {
    self_cond_optional_ = args[3].type()->kind() == c10::TypeKind::OptionalType;
    self_condition_ = true;
    if (model_.hasattr("self_condition")) {
      c10::IValue flag = model_.attr("self_condition");
      if (flag.isBool()) self_condition_ = flag.toBool();
    }
  }
  if (self_condition) {
    if (*self_condition && (n != 3 || takes_labels_)) {
      throw std::invalid_argument(
          "selfCondition needs a model whose forward takes (x, t, x_self_cond); it takes (x, t)");
    }
    self_condition_ = *self_condition;
  }
}

Denoiser Denoiser::with_labels(const at::Tensor& y) const {
  if (!takes_labels_) {
    throw std::invalid_argument("modelKwargs.y: this model's forward takes no class labels y");
  }
  if (at::isFloatingType(y.scalar_type()) || at::isComplexType(y.scalar_type()) || y.scalar_type() == at::kBool) {
    throw std::invalid_argument(std::string("modelKwargs.y must hold integer class labels; got ") +
                                c10::toString(y.scalar_type()));
  }
  Denoiser d = *this;
  d.labels_ = y.reshape({-1}).to(at::kLong);
  return d;
}

Denoiser Denoiser::with_cfg(const at::Tensor& null_labels, double scale, double rescaled_phi) const {
  if (!takes_labels_ || !labels_.defined()) {
    throw std::invalid_argument("classifier-free guidance needs a class-conditional model (forward(x, t, y)) and its labels: modelKwargs: { y }");
  }
  if (!std::isfinite(scale)) throw std::invalid_argument("cfgScale must be a finite number");
  if (!(rescaled_phi >= 0 && rescaled_phi <= 1)) throw std::invalid_argument("rescaledPhi must be in [0, 1]");
  if (at::isFloatingType(null_labels.scalar_type()) || null_labels.scalar_type() == at::kBool) {
    throw std::invalid_argument("the null labels of classifier-free guidance must be integers");
  }
  at::Tensor nulls = null_labels.reshape({-1}).to(at::kLong);
  if (nulls.size(0) != labels_.size(0)) {
    if (nulls.size(0) != 1) throw std::invalid_argument("one null label, or one per sample");
    nulls = nulls.expand({labels_.size(0)}).contiguous();
  }
  Denoiser d = *this;
  d.null_labels_ = nulls.to(labels_.device());
  d.cfg_scale_ = scale;
  d.rescaled_phi_ = rescaled_phi;
  return d;
}

at::Tensor Denoiser::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) const {
  if (!cfg_scale_ || *cfg_scale_ == 1) return forward_once(x, t, x_self_cond, labels_);
  const int64_t b = x.size(0);
  if (labels_.size(0) != b) {
    std::ostringstream msg;
    msg << "modelKwargs.y has " << labels_.size(0) << " labels for a batch of " << b;
    throw std::invalid_argument(msg.str());
  }
  // One forward of [cond, uncond].
  at::Tensor both = forward_once(at::cat({x, x}), at::cat({t, t}), at::Tensor(),
                                 at::cat({labels_, null_labels_.to(labels_.device())}));
  at::Tensor cond = both.narrow(0, 0, b), uncond = both.narrow(0, b, b), rest;
  if (learned_variance() && x.dim() > 1) {
    const int64_t c = x.size(1);
    rest = cond.narrow(1, c, c);
    cond = cond.narrow(1, 0, c);
    uncond = uncond.narrow(1, 0, c);
  }
  at::Tensor out = cond + (cond - uncond) * (*cfg_scale_ - 1.0);
  if (rescaled_phi_ > 0 && x.dim() > 1) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
    const at::Tensor rescaled = out * (cond.std(dims, /*unbiased=*/true, /*keepdim=*/true) /
                                       out.std(dims, /*unbiased=*/true, /*keepdim=*/true));
    out = rescaled * rescaled_phi_ + out * (1.0 - rescaled_phi_);
  }
  return rest.defined() ? at::cat({out, rest}, 1) : out.contiguous();
}

at::Tensor Denoiser::forward_once(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond,
                                  const at::Tensor& labels) const {
  std::vector<c10::IValue> inputs{x, t};
  if (takes_labels_) {
    if (labels.defined()) {
      if (labels.size(0) != x.size(0)) {
        std::ostringstream msg;
        msg << "modelKwargs.y has " << labels.size(0) << " labels for a batch of " << x.size(0);
        throw std::invalid_argument(msg.str());
      }
      inputs.emplace_back(labels.device() == x.device() ? labels : labels.to(x.device()));
    } else if (labels_optional_) {
      inputs.emplace_back(c10::IValue());
    } else {
      throw std::invalid_argument("this model is class-conditional (its forward takes y): pass modelKwargs: { y }");
    }
  } else if (arity_ == 3) {
    if (x_self_cond.defined()) {
      inputs.emplace_back(x_self_cond);
    } else if (self_cond_optional_) {
      inputs.emplace_back(c10::IValue());
    } else {
      inputs.emplace_back(at::zeros_like(x));
    }
  }
  std::optional<AutocastScope> autocast;
  if (autocast_ && (x.is_cuda() || x.is_cpu())) autocast.emplace(x.device().type(), *autocast_);
  // An openai net with use_checkpoint that is being trained runs its blocks checkpointed.
  c10::IValue out = openai::forward_net(model_, std::move(inputs));
  autocast.reset();  // the cast back to x's dtype below runs outside autocast
  if (!out.isTensor()) {
    throw std::runtime_error("the diffusion model returned " + out.tagKind() + "; expected a tensor");
  }
  at::Tensor y = out.toTensor();
  if (autocast_ && y.scalar_type() != x.scalar_type()) y = y.to(x.scalar_type());
  std::vector<int64_t> expected = x.sizes().vec();
  if (learned_variance() && expected.size() > 1) expected[1] *= 2;
  if (y.sizes() != at::IntArrayRef(expected)) {
    std::ostringstream msg;
    msg << "the diffusion model returned a tensor of shape " << y.sizes() << "; expected "
        << at::IntArrayRef(expected)
        << (learned_variance() ? " (its input's, with twice the channels: modelVarType " + std::string(to_string(variance_type_)) + ")"
                               : std::string(" (the shape of its input)"));
    throw std::runtime_error(msg.str());
  }
  return y;
}

Prediction Denoiser::predict(const Schedule& s, const at::Tensor& x, const at::Tensor& t,
                             const at::Tensor& x_self_cond, bool clip) const {
  return prediction(s, x, t, forward(x, s.timestep_map.apply(t), x_self_cond), clip);
}

Prediction Denoiser::prediction(const Schedule& s, const at::Tensor& x, const at::Tensor& t,
                                const at::Tensor& model_output, bool clip) const {
  Prediction p;
  at::Tensor out = model_output;
  const int64_t nd = x.dim();
  switch (variance_type_) {
    case VarianceType::FixedSmall:
      p.variance = extract(s.posterior_variance, t, nd);
      p.log_variance = extract(s.posterior_log_variance_extended, t, nd);
      break;
    case VarianceType::FixedLarge:
      p.variance = extract(s.fixed_large_variance, t, nd);
      p.log_variance = extract(s.fixed_large_log_variance, t, nd);
      break;
    case VarianceType::Learned:
    case VarianceType::LearnedRange: {
      const int64_t c = x.size(1);
      out = model_output.narrow(1, 0, c);
      at::Tensor values = model_output.narrow(1, c, c);
      if (variance_type_ == VarianceType::Learned) {
        p.log_variance = values;
      } else {
        // values in [-1, 1] span log(posterior variance) .. log(beta_t).
        at::Tensor frac = (values + 1) / 2;
        p.log_variance = frac * extract(s.log_betas, t, nd) + (1 - frac) * extract(s.posterior_log_variance_extended, t, nd);
      }
      p.variance = p.log_variance.exp();
      break;
    }
  }
  switch (objective_) {
    case Objective::PredNoise:
      p.eps = out;
      p.x0 = predict_start_from_noise(s, x, t, out);
      if (clip) p.x0 = p.x0.clamp(-1., 1.);
      if (eps_from_x0_) p.eps = predict_noise_from_start(s, x, t, p.x0);
      return p;
    case Objective::PredX0:
      p.x0 = clip ? out.clamp(-1., 1.) : out;
      break;
    case Objective::PredV:
      p.x0 = predict_start_from_v(s, x, t, out);
      if (clip) p.x0 = p.x0.clamp(-1., 1.);
      break;
  }
  p.eps = predict_noise_from_start(s, x, t, p.x0);
  return p;
}

at::Tensor predict_start_from_noise(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                    const at::Tensor& eps) {
  const int64_t nd = x_t.dim();
  return extract(s.sqrt_recip_alphas_cumprod, t, nd) * x_t -
         extract(s.sqrt_recipm1_alphas_cumprod, t, nd) * eps;
}

at::Tensor predict_noise_from_start(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                    const at::Tensor& x0) {
  const int64_t nd = x_t.dim();
  if (s.zero_terminal_snr) {
    // sqrt(1/ab) is infinite at the last step; this form is the same eps and finite there.
    return (x_t - extract(s.sqrt_alphas_cumprod, t, nd) * x0) / extract(s.sqrt_one_minus_alphas_cumprod, t, nd);
  }
  return (extract(s.sqrt_recip_alphas_cumprod, t, nd) * x_t - x0) /
         extract(s.sqrt_recipm1_alphas_cumprod, t, nd);
}

at::Tensor posterior_mean(const Schedule& s, const at::Tensor& x0, const at::Tensor& x_t, const at::Tensor& t) {
  const int64_t nd = x_t.dim();
  return extract(s.posterior_mean_coef1, t, nd) * x0 + extract(s.posterior_mean_coef2, t, nd) * x_t;
}

at::Tensor predict_start_from_v(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                const at::Tensor& v) {
  const int64_t nd = x_t.dim();
  return extract(s.sqrt_alphas_cumprod, t, nd) * x_t -
         extract(s.sqrt_one_minus_alphas_cumprod, t, nd) * v;
}

at::Tensor predict_v(const Schedule& s, const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  const int64_t nd = x0.dim();
  return extract(s.sqrt_alphas_cumprod, t, nd) * noise -
         extract(s.sqrt_one_minus_alphas_cumprod, t, nd) * x0;
}

}  // namespace gd
