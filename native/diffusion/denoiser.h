// The denoiser: one model call turned into (eps, x0) (docs: guided-diffusion-math.md,
// "Model output -> (eps, x0)"). Samplers and training losses see the model only through it.
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

struct Prediction {
  at::Tensor eps;  // predicted noise
  at::Tensor x0;   // predicted clean image, in [-1, 1] when clipped
};

class Denoiser {
 public:
  // `model.forward` must take (x, t) or (x, t, x_self_cond); the arity is read from its
  // schema. A three-argument model self-conditions unless it has a bool attribute
  // `self_condition` saying otherwise; `self_condition` overrides both.
  // Throws std::invalid_argument when the model has no usable forward.
  Denoiser(torch::jit::Module model, Objective objective,
           std::optional<bool> self_condition = std::nullopt);

  // The raw model output for x (float32 [B, ...]) at t (int64 [B]). x_self_cond undefined
  // means none: the model gets None where its schema allows, zeros otherwise (what the
  // reference Unet does with None). Grad mode is the caller's: samplers hold a NoGradGuard,
  // training needs the graph. Throws when the output is not a tensor shaped like x.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& x_self_cond = at::Tensor()) const;

  // eps and x0 from one model call. With clip, x0 is clamped to [-1, 1]; for pred_x0 and
  // pred_v eps is then derived from the clamped x0, for pred_noise eps stays the output.
  Prediction predict(const Schedule& schedule, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& x_self_cond, bool clip) const;
  // The same from a model output already computed (by forward() or a replay of it).
  Prediction prediction(const Schedule& schedule, const at::Tensor& x, const at::Tensor& t,
                        const at::Tensor& out, bool clip) const;

  // Runs forward() under CUDA autocast with this dtype (kHalf or kBFloat16) when x is on
  // CUDA; the output is cast back to float32. Guidance stays in float32.
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
  std::optional<at::ScalarType> autocast_;
};

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
