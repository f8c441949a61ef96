#include "diffusion/x0_guidance.h"

#include <torch/csrc/autograd/autograd.h>

#include <sstream>
#include <stdexcept>
#include <vector>

namespace gd {

void check_x0_guidance_options(const X0GuidanceOptions& o) {
  std::ostringstream msg;
  if (o.recurrence < 1) {
    msg << "recurrence must be an integer >= 1; got " << o.recurrence;
  } else if (!(o.t_lo <= o.t_hi)) {
    msg << "guidanceInterval must have tLo <= tHi; got [" << o.t_lo << ", " << o.t_hi << "]";
  } else if (!std::isfinite(o.scale)) {
    msg << "guidanceScale must be a finite number; got " << o.scale;
  } else {
    return;
  }
  throw std::invalid_argument(msg.str());
}

X0Gradient x0_loss_gradient(Guidance& guidance, const at::Tensor& x, const at::Tensor& model_t, double t_value,
                            const std::function<Prediction(const at::Tensor&)>& predict, bool gradient_norm,
                            GuidanceContext context) {
  at::Tensor grad, norm;
  Prediction p;
  {
    // Samplers run with grad off; the model's graph from x_t to x0 is needed for this step only.
    at::AutoGradMode enable_grad(true);
    at::Tensor x_in = x.detach().requires_grad_(true);
    p = predict(x_in);
    context.x0 = p.x0;
    context.eps = p.eps.detach();
    at::Tensor loss = guidance.loss(p.x0, model_t, context);
    auto fail = [&](const std::string& what) {
      std::ostringstream msg;
      msg << "condFn at step " << context.step << " (t=" << t_value << ") returned " << what;
      throw std::runtime_error(msg.str());
    };
    if (!loss.defined()) fail("no tensor");
    if (!(loss.numel() == 1 || (loss.dim() == 1 && loss.size(0) == x.size(0)))) {
      std::ostringstream what;
      what << "a loss of shape " << loss.sizes() << "; with guidanceInput 'x0' expected a scalar or [" << x.size(0) << "]";
      fail(what.str());
    }
    if (!at::isfinite(loss.detach()).all().item<bool>()) fail("a NaN or Inf loss");
    if (!loss.requires_grad()) fail("a loss that does not depend on x0 (it requires no grad)");
    if (gradient_norm && loss.numel() != x.size(0)) fail("a scalar loss; gradientNorm needs one loss per image");
    if (gradient_norm && !(loss.detach() > 0).all().item<bool>()) fail("a loss <= 0; gradientNorm divides by its square root");
    norm = gradient_norm ? loss.detach().reshape({-1, 1}).sqrt() : at::Tensor();
    // Summing per-image losses is exact: image i's loss depends on x_t[i] only.
    grad = torch::autograd::grad({loss.sum()}, {x_in}, {}, false, false, true)[0];
  }
  if (!grad.defined()) grad = at::zeros_like(x);
  if (norm.defined()) {
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);  // [B, 1, 1, 1]: one norm per image
    shape[0] = x.size(0);
    grad = grad / norm.to(grad.device()).reshape(shape);
  }
  auto detached = [](const at::Tensor& a) { return a.defined() ? a.detach() : a; };
  X0Gradient out;
  out.prediction.eps = detached(p.eps);
  out.prediction.x0 = detached(p.x0);
  out.prediction.variance = detached(p.variance);
  out.prediction.log_variance = detached(p.log_variance);
  out.grad = grad.detach();
  return out;
}

at::Tensor x0_guided_eps(const X0Gradient& g, double scale, double sigma) {
  return g.prediction.eps + scale * sigma * g.grad;
}

Prediction x0_guided_prediction(const Denoiser& denoiser, ModelCall& model, const Schedule& s, Guidance& guidance,
                                const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond, bool clip,
                                const X0GuidanceOptions& options, GuidanceContext context) {
  const int64_t t_value = t.reshape(-1)[0].item<int64_t>();
  context.alpha_bar = s.alphas_cumprod[t_value].item<double>();
  context.sigma = std::sqrt(1 - context.alpha_bar);
  auto predict = [&](const at::Tensor& x_in) {
    return denoiser.prediction(s, x_in, t, model(x_in, t, x_self_cond), clip);
  };
  const X0Gradient g = x0_loss_gradient(guidance, x, s.timestep_map.apply(t), static_cast<double>(t_value), predict,
                                        options.gradient_norm, context);
  Prediction out = g.prediction;
  out.eps = x0_guided_eps(g, options.scale, context.sigma);
  out.x0 = predict_start_from_noise(s, x, t, out.eps);
  if (clip) out.x0 = out.x0.clamp(-1.0, 1.0);
  return out;
}

at::Tensor renoise(const at::Tensor& x, double ab_from, double ab_to, const at::Tensor& z) {
  const double ratio = ab_to / ab_from;
  return std::sqrt(ratio) * x + std::sqrt(1 - ratio) * z;
}

}  // namespace gd
