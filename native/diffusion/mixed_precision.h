// openai/guided-diffusion's fp16_util.MixedPrecisionTrainer, for the openai trainers: with
// use_fp16 the optimizer steps float32 master copies of the model's parameters (whose torso
// convolutions are float16), the loss is multiplied by 2**lg_loss_scale before backward, and
// optimize() copies the gradients to the masters, skips the step and lowers lg_loss_scale by 1
// when their norm is not finite, else unscales them, steps, copies the masters back into the
// model and raises lg_loss_scale by fp16_scale_growth. Without use_fp16 the masters are the
// model's own parameters and nothing is scaled.
// Their masters are two flattened tensors (vectors, matrices); AdamW, its weight decay and the
// EMA are elementwise, so masters kept per parameter step to the same values.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace gd {

class FusedAdam;
class MeanLog;

// Their master tensors as groups of our parameter indices (get_param_groups_and_shapes): first
// the parameters of ndim <= 1 (their flat master of shape (-1)), then the others ((1, -1)).
// Their optimizer's state_dict holds one entry per group, so checkpoints go through these.
using FlatGroups = std::vector<std::vector<size_t>>;

struct MixedPrecisionOptions {
  bool use_fp16 = false;
  double fp16_scale_growth = 1e-3;     // their default (image_train.py's flag)
  double initial_lg_loss_scale = 20.0;  // their INITIAL_LOG_LOSS_SCALE (classifier_train.py: 16)
};

class MixedPrecision {
 public:
  // model_params: the model's parameters in named_parameters order (the float16 ones included).
  MixedPrecision(std::vector<at::Tensor> model_params, MixedPrecisionOptions options);
  bool use_fp16() const { return options_.use_fp16; }
  // What the optimizer and the EMA work on: float32 masters with use_fp16, else the model's.
  const std::vector<at::Tensor>& master() const { return master_; }
  const std::vector<at::Tensor>& model_params() const { return model_; }
  // With use_fp16 their two flat masters' groups (what opt{N}.pt is laid out by), else null.
  const FlatGroups* flat_groups() const { return options_.use_fp16 ? &groups_ : nullptr; }
  double lg_loss_scale() const { return lg_loss_scale_; }
  // Their backward(): the loss to call backward() on (times 2**lg_loss_scale with use_fp16).
  at::Tensor scale(const at::Tensor& loss) const;
  // Their zero_grad(): the model's gradients and the masters' undefined.
  void zero_grad();
  // Their model_grads_to_master_grads (use_fp16; else nothing to do): each master's gradient a
  // float32 copy of its parameter's, zeros where it has none.
  void grads_to_master();
  // Their optimize(opt) up to the step, on the masters' gradients: with use_fp16 logs
  // lg_loss_scale and returns false (the masters' gradients dropped, lg_loss_scale - 1) when
  // their norm overflowed, else unscales them. Logs grad_norm and param_norm (of the masters)
  // when it returns true; the caller then steps the optimizer and calls finish_step().
  bool unscale_or_skip(MeanLog& log);
  // After the optimizer's step: masters into the model, lg_loss_scale + fp16_scale_growth.
  void finish_step();
  // The masters set from the model's parameters (after weights were loaded into the model).
  void master_from_model();
  // The model's parameters set from the masters (after weights were loaded into the masters).
  void model_from_master();
  // "Found NaN, decreased lg_loss_scale to X", as their log line; empty before any overflow.
  const std::string& last_overflow() const { return last_overflow_; }

 private:
  MixedPrecisionOptions options_;
  std::vector<at::Tensor> model_;
  std::vector<at::Tensor> master_;
  FlatGroups groups_;
  double lg_loss_scale_;
  std::string last_overflow_;
};

}  // namespace gd
