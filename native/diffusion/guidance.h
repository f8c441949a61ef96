// Guidance: a gradient of log p(y | x_t) that samplers add to the mean (ancestral) or to the
// score (DDIM). docs/diffusion-math.md, "An ancestral (DDPM) step, with guidance",
// "A DDIM step, with guidance", "The seed's classifier guidance function".
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"

namespace gd {

// What the sampler knows of the step a gradient is asked for (condFn's fourth argument):
// x0 as the sampler uses it (clipped when it clips), eps, alphaBar of the step's timestep and
// sigma = sqrt(1 - alphaBar), so that x_t = sqrt(alphaBar) x0 + sigma eps; step counts the
// gradients asked for so far, total how many the sample asks for (fast samplers: their
// steps, which a multistep solver of order 1 calls once each).
struct GuidanceContext {
  at::Tensor x0, eps;
  double alpha_bar = 0, sigma = 0;
  int64_t step = 0, total = 0;
};

// Samplers call gradient() on their own thread, with grad mode off; an implementation that
// needs autograd turns it on itself. Any exception it throws propagates out of the sampler.
// The sampler checks the result (shape of x, finite) and converts it to x's dtype/device.
class Guidance {
 public:
  virtual ~Guidance() = default;
  // x: float32 [B, ...] (the posterior mean or x_t); t: int64 [B]. Returns d log p / dx,
  // already multiplied by the guidance scale.
  virtual at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) = 0;
  // The same with the step's context; a guidance that needs it (the JS condFn) overrides this.
  virtual at::Tensor gradient_in(const at::Tensor& x, const at::Tensor& t, const GuidanceContext& /*context*/) {
    return gradient(x, t);
  }
  // guidanceInput 'x0': a loss on x0 (a tensor that requires grad), a scalar or one per image.
  virtual at::Tensor loss(const at::Tensor& /*x0*/, const at::Tensor& /*t*/, const GuidanceContext& /*context*/) {
    throw std::invalid_argument("guidanceInput 'x0' needs a condFn that returns a loss; this guidance gives a gradient");
  }
};

// The seed's classifier_cond_fn, natively: grad of sum_i log_softmax(classifier(x, t))[i, y_i]
// with respect to x, times scale. The classifier's forward takes (x, t) and returns [B, classes].
class ClassifierGuidance : public Guidance {
 public:
  ClassifierGuidance(torch::jit::Module classifier, at::Tensor y, double scale = 1.0);
  at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) override;

 private:
  torch::jit::Module classifier_;
  at::Tensor y_;  // int64 [B]
  double scale_;
};

// guidance.gradient(input, model_t), checked: a tensor shaped like input, finite, returned in
// input's dtype and device (the reference takes gradient.float()). Otherwise throws
// std::runtime_error "condFn at step {step} (t={t_value}) returned ...".
at::Tensor checked_gradient(Guidance& guidance, const at::Tensor& input, const at::Tensor& model_t, int64_t step,
                            double t_value, const GuidanceContext& context);

// mean + variance * gradient (Sohl-Dickstein et al. 2015; the reference's condition_mean).
at::Tensor condition_mean(const at::Tensor& mean, const at::Tensor& variance, const at::Tensor& gradient);

// Dhariwal & Nichol Algorithm 2: eps <- eps - sqrt(1 - ab_t) * gradient, and x0 re-derived
// from the new eps (not clamped again).
Prediction condition_score(const Schedule& schedule, const at::Tensor& x_t, const at::Tensor& t,
                           const Prediction& prediction, const at::Tensor& gradient);

}  // namespace gd
