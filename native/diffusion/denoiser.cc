#include "diffusion/denoiser.h"

#include <ATen/autocast_mode.h>

#include <sstream>
#include <stdexcept>

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
  if (n == 3) {
    self_cond_optional_ = args[3].type()->kind() == c10::TypeKind::OptionalType;
    self_condition_ = true;
    if (model_.hasattr("self_condition")) {
      c10::IValue flag = model_.attr("self_condition");
      if (flag.isBool()) self_condition_ = flag.toBool();
    }
  }
  if (self_condition) {
    if (*self_condition && n != 3) {
      throw std::invalid_argument(
          "selfCondition needs a model whose forward takes (x, t, x_self_cond); it takes (x, t)");
    }
    self_condition_ = *self_condition;
  }
}

namespace {

// Autocast for CUDA ops on this thread while in scope (the setting is thread-local).
class CudaAutocast {
 public:
  explicit CudaAutocast(at::ScalarType dtype)
      : was_enabled_(at::autocast::is_autocast_enabled(at::kCUDA)),
        was_dtype_(at::autocast::get_autocast_dtype(at::kCUDA)) {
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    // Casts of the weights are cached for the scope; drop them when the outermost one ends.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
  }

 private:
  bool was_enabled_;
  at::ScalarType was_dtype_;
};

}  // namespace

at::Tensor Denoiser::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) const {
  std::vector<c10::IValue> inputs{x, t};
  if (arity_ == 3) {
    if (x_self_cond.defined()) {
      inputs.emplace_back(x_self_cond);
    } else if (self_cond_optional_) {
      inputs.emplace_back(c10::IValue());
    } else {
      inputs.emplace_back(at::zeros_like(x));
    }
  }
  std::optional<CudaAutocast> autocast;
  if (autocast_ && x.is_cuda()) autocast.emplace(*autocast_);
  c10::IValue out = model_.forward(std::move(inputs));
  autocast.reset();  // the cast back to x's dtype below runs outside autocast
  if (!out.isTensor()) {
    throw std::runtime_error("the diffusion model returned " + out.tagKind() + "; expected a tensor");
  }
  at::Tensor y = out.toTensor();
  if (autocast_ && y.scalar_type() != x.scalar_type()) y = y.to(x.scalar_type());
  if (y.sizes() != x.sizes()) {
    std::ostringstream msg;
    msg << "the diffusion model returned a tensor of shape " << y.sizes() << "; expected "
        << x.sizes() << " (the shape of its input)";
    throw std::runtime_error(msg.str());
  }
  return y;
}

Prediction Denoiser::predict(const Schedule& s, const at::Tensor& x, const at::Tensor& t,
                             const at::Tensor& x_self_cond, bool clip) const {
  return prediction(s, x, t, forward(x, t, x_self_cond), clip);
}

Prediction Denoiser::prediction(const Schedule& s, const at::Tensor& x, const at::Tensor& t,
                                const at::Tensor& out, bool clip) const {
  Prediction p;
  switch (objective_) {
    case Objective::PredNoise:
      p.eps = out;
      p.x0 = predict_start_from_noise(s, x, t, out);
      if (clip) p.x0 = p.x0.clamp(-1., 1.);
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
  return (extract(s.sqrt_recip_alphas_cumprod, t, nd) * x_t - x0) /
         extract(s.sqrt_recipm1_alphas_cumprod, t, nd);
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
