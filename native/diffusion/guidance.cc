#include "diffusion/guidance.h"

#include <torch/csrc/autograd/autograd.h>

#include <sstream>
#include <stdexcept>

namespace gd {

ClassifierGuidance::ClassifierGuidance(torch::jit::Module classifier, at::Tensor y, double scale)
    : classifier_(std::move(classifier)), scale_(scale) {
  if (!y.defined()) throw std::invalid_argument("classifier guidance needs the target labels y");
  if (at::isFloatingType(y.scalar_type()) || at::isComplexType(y.scalar_type()) ||
      y.scalar_type() == at::kBool) {
    throw std::invalid_argument(std::string("classifier guidance labels y must be integers; got ") +
                                c10::toString(y.scalar_type()));
  }
  y_ = y.detach().reshape({-1}).to(at::kLong);
}

at::Tensor ClassifierGuidance::gradient(const at::Tensor& x, const at::Tensor& t) {
  // Samplers run with grad off; the classifier's graph is needed just here.
  at::AutoGradMode enable_grad(true);
  at::Tensor x_in = x.detach().requires_grad_(true);
  c10::IValue out = classifier_.forward({x_in, t});
  if (!out.isTensor()) {
    throw std::runtime_error("the classifier returned " + out.tagKind() + "; expected a tensor of logits");
  }
  at::Tensor logits = out.toTensor();
  const int64_t batch = x.size(0);
  if (logits.dim() != 2 || logits.size(0) != batch) {
    std::ostringstream msg;
    msg << "the classifier returned logits of shape " << logits.sizes() << "; expected [" << batch
        << ", num_classes]";
    throw std::runtime_error(msg.str());
  }
  if (y_.size(0) != batch) {
    std::ostringstream msg;
    msg << "classifier guidance has " << y_.size(0) << " label" << (y_.size(0) == 1 ? "" : "s")
        << " in y for a batch of " << batch;
    throw std::invalid_argument(msg.str());
  }
  at::Tensor y = y_.device() == logits.device() ? y_ : y_.to(logits.device());
  // Summing over the batch is exact: logit i depends on x_in[i] only.
  at::Tensor selected = at::log_softmax(logits, -1).gather(1, y.view({-1, 1})).sum();
  at::Tensor grad = torch::autograd::grad({selected}, {x_in}, /*grad_outputs=*/{},
                                          /*retain_graph=*/false, /*create_graph=*/false,
                                          /*allow_unused=*/true)[0];
  if (!grad.defined()) return at::zeros_like(x);  // a classifier that ignores x
  return grad * scale_;
}

at::Tensor checked_gradient(Guidance& guidance, const at::Tensor& input, const at::Tensor& model_t, int64_t step,
                            double t_value, const GuidanceContext& context) {
  at::Tensor g = guidance.gradient_in(input, model_t, context);
  auto fail = [&](const std::string& what) {
    std::ostringstream msg;
    msg << "condFn at step " << step << " (t=" << t_value << ") returned " << what;
    throw std::runtime_error(msg.str());
  };
  if (!g.defined()) fail("no tensor");
  if (g.sizes() != input.sizes()) {
    std::ostringstream what;
    what << "a tensor of shape " << g.sizes() << "; expected " << input.sizes();
    fail(what.str());
  }
  g = g.detach().to(input.device(), input.scalar_type());
  // The one host sync per step the samplers make: a NaN here would silently poison the image.
  if (!at::isfinite(g).all().item<bool>()) fail("NaN or Inf");
  return g;
}

at::Tensor condition_mean(const at::Tensor& mean, const at::Tensor& variance, const at::Tensor& gradient) {
  return mean + variance * gradient;
}

Prediction condition_score(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                           const Prediction& prediction, const at::Tensor& gradient) {
  Prediction p;
  p.eps = prediction.eps - extract(s.sqrt_one_minus_alphas_cumprod, t, x_t.dim()) * gradient;
  p.x0 = predict_start_from_noise(s, x_t, t, p.eps);
  return p;
}

}  // namespace gd
