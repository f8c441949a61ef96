// The denoiser: one model call turned into (eps, x0) (docs/diffusion-math.md,
// "From the model's output to (eps, x0)"). Samplers and training losses see the model only through it.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <optional>
#include <string>

#include "diffusion/schedule.h"

namespace gd {

enum class Objective { PredNoise, PredX0, PredV };

// Throws std::invalid_argument: "objective must be one of pred_noise, pred_x0, pred_v; got 'foo'".
Objective parse_objective(const std::string& name);
const char* to_string(Objective objective);

// The variance of p(x_{t-1} | x_t) (openai/guided-diffusion's ModelVarType). Fixed small is
// the posterior variance (the seed's); fixed large is beta_t (posterior_variance[1] at t = 0);
// learned and learned range take a second half of the model's output channels: the log
// variance itself, or v in [-1, 1] interpolating log(small) .. log(beta_t).
enum class VarianceType { FixedSmall, FixedLarge, Learned, LearnedRange };

// Throws std::invalid_argument: "modelVarType must be one of fixedSmall, fixedLarge, learned,
// learnedRange; got 'foo'". Accepts openai's snake_case names too (fixed_small ...).
VarianceType parse_variance_type(const std::string& name);
const char* to_string(VarianceType type);

struct Prediction {
  at::Tensor eps;           // predicted noise
  at::Tensor x0;            // predicted clean image, in [-1, 1] when clipped
  at::Tensor variance;      // of p(x_{t-1} | x_t), broadcastable to x
  at::Tensor log_variance;
};

class Denoiser {
 public:
  // `model.forward` must take (x, t) or (x, t, x_self_cond); the arity is read from its
  // schema. A three-argument model self-conditions unless it has a bool attribute
  // `self_condition` saying otherwise; `self_condition` overrides both.
  // Throws std::invalid_argument when the model has no usable forward.
  // A model whose third argument is named `y` is class-conditional instead (openai's
  // forward(x, timesteps, y=None)): with_labels() binds the labels it gets.
  Denoiser(torch::jit::Module model, Objective objective,
           std::optional<bool> self_condition = std::nullopt);

  // A copy whose forward passes these class labels (int64 [B]) as y: model kwargs ride with
  // the denoiser of one sampling run. Throws std::invalid_argument for a model without y.
  Denoiser with_labels(const at::Tensor& y) const;
  // Classifier-free guidance (Ho & Salimans 2022; docs/guidance.md): a copy whose forward runs
  // the model once on [x, x] with labels [y, null_labels] (the labels bound by with_labels) and
  // returns cond + (cond - uncond) * (scale - 1), as lucidrains' forward_with_cond_scale; with
  // rescaled_phi > 0 that is mixed with itself rescaled to the std of cond (per sample, over all
  // other dims, unbiased), rescaled_phi of the one and 1 - rescaled_phi of the other. Learned
  // variance channels are not mixed: they are the conditional half's. scale 1: the conditional
  // output alone, one forward of the batch. Needs with_labels first; throws std::invalid_argument.
  Denoiser with_cfg(const at::Tensor& null_labels, double scale, double rescaled_phi = 0) const;
  bool cfg() const { return cfg_scale_.has_value(); }

  // forward takes class labels y; and whether it accepts None for them.
  bool takes_labels() const { return takes_labels_; }
  bool labels_optional() const { return labels_optional_; }

  // How the variance is made (default fixed small). Learned types expect 2 * C output channels.
  void set_variance_type(VarianceType type) { variance_type_ = type; }
  VarianceType variance_type() const { return variance_type_; }
  bool learned_variance() const {
    return variance_type_ == VarianceType::Learned || variance_type_ == VarianceType::LearnedRange;
  }
  // pred_noise: take eps from the clipped x0 rather than the model output, as openai's
  // p_mean_variance + ddim_sample do (the seed keeps the output). Other objectives always do.
  void set_eps_from_x0(bool on) { eps_from_x0_ = on; }

  // The raw model output for x (float32 [B, ...]) at t (the model's timesteps: a schedule's
  // timestep_map applied; int64 [B], or float when rescaled). x_self_cond undefined
  // means none: the model gets None where its schema allows, zeros otherwise (what the
  // reference Unet does with None). Grad mode is the caller's: samplers hold a NoGradGuard,
  // training needs the graph. Throws when the output is not a tensor shaped like x.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& x_self_cond = at::Tensor()) const;

  // eps, x0 and the variance from one model call at step t of the schedule (mapped to the
  // model's timesteps here). With clip, x0 is clamped to [-1, 1]; for pred_x0 and pred_v eps
  // is then derived from the clamped x0, for pred_noise eps stays the output (unless
  // set_eps_from_x0).
  Prediction predict(const Schedule& schedule, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& x_self_cond, bool clip) const;
  // The same from a model output already computed (by forward() or a replay of it), with
  // the variance values in its second half of channels when learned.
  Prediction prediction(const Schedule& schedule, const at::Tensor& x, const at::Tensor& t,
                        const at::Tensor& out, bool clip) const;

  // Runs forward() under autocast with this dtype on x's device (CUDA: kHalf or kBFloat16;
  // the CPU: kBFloat16); the output is cast back to float32. Guidance stays in float32.
  void set_autocast(std::optional<at::ScalarType> dtype) { autocast_ = dtype; }
  std::optional<at::ScalarType> autocast() const { return autocast_; }

  Objective objective() const { return objective_; }
  bool self_condition() const { return self_condition_; }
  // 2 or 3: the number of forward arguments besides self.
  int64_t arity() const { return arity_; }
  const torch::jit::Module& module() const { return model_; }

 private:
  mutable torch::jit::Module model_;  // a handle; forward() is not const in LibTorch
  Objective objective_;
  int64_t arity_ = 2;
  bool self_cond_optional_ = false;  // third argument typed Optional[Tensor]
  bool self_condition_ = false;
  bool takes_labels_ = false;
  bool labels_optional_ = false;
  at::Tensor labels_;  // y for forward; undefined: None (or refused when not optional)
  // Classifier-free guidance: the labels of the unconditional half, the scale and rescaled phi.
  at::Tensor null_labels_;
  std::optional<double> cfg_scale_;
  double rescaled_phi_ = 0;
  at::Tensor forward_once(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond,
                          const at::Tensor& labels) const;
  VarianceType variance_type_ = VarianceType::FixedSmall;
  bool eps_from_x0_ = false;
  std::optional<at::ScalarType> autocast_;
};

// Throws std::invalid_argument when this objective cannot sample this schedule: pred_noise on
// a zero-terminal-SNR schedule divides by sqrt(ab_T) = 0 to recover x0.
void check_objective_schedule(Objective objective, const Schedule& schedule);

// The posterior mean c1_t * x0 + c2_t * x_t of q(x_{t-1} | x_t, x0).
at::Tensor posterior_mean(const Schedule& s, const at::Tensor& x0, const at::Tensor& x_t, const at::Tensor& t);

// x0 and eps conversions of the math doc, over buffers gathered at t.
at::Tensor predict_start_from_noise(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                    const at::Tensor& eps);
at::Tensor predict_noise_from_start(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                    const at::Tensor& x0);
at::Tensor predict_start_from_v(const Schedule& s, const at::Tensor& x_t, const at::Tensor& t,
                                const at::Tensor& v);
at::Tensor predict_v(const Schedule& s, const at::Tensor& x0, const at::Tensor& t,
                     const at::Tensor& noise);

}  // namespace gd
