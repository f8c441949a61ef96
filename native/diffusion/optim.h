// The trainer's parameter updates as multi-tensor ops: Adam/AdamW through ATen's fused kernel
// (_fused_adam_ / _fused_adamw_: one pass over each parameter, CPU and CUDA), gradient
// clipping by the global L2 norm (_foreach_norm, _foreach_mul_), and the EMA update
// (_foreach_lerp_). They compute what torch::optim::Adam / AdamW, clip_grad_norm_ and a
// per-tensor lerp_ compute, to float rounding (native/tests/training_optim_test.cc checks it),
// with a few ops per step instead of several per parameter.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <memory>
#include <vector>

namespace gd {

struct AdamHyper {
  double lr = 2e-4;
  double beta1 = 0.9, beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;  // AdamW's decoupled decay (used only by an AdamW optimizer)
};

// Adam, or AdamW, over a fixed list of parameters. The moments and step counts are kept in a
// torch::optim::Adam / AdamW's per-parameter state, so save/load write and read the format of
// torch::optim (training-state files of earlier versions load as they are).
class FusedAdam {
 public:
  FusedAdam(std::vector<at::Tensor> params, bool adamw);
  bool adamw() const { return adamw_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  // Sets every gradient to undefined (as zero_grad(set_to_none=true)).
  void zero_grad();
  // The hyper-parameters of the next steps (also what save() writes as the group's options).
  void set_hyper(const AdamHyper& h);
  // One step on the parameters that have a gradient; the others keep their state.
  void step();
  // Parameter i's state as torch.optim keeps it: the step count (a float32 scalar tensor; 0
  // before its first step) and the moments. These are the live tensors: copy_ into them to
  // restore a state.
  struct ParamState {
    at::Tensor step, exp_avg, exp_avg_sq;
  };
  ParamState state(size_t i) const { return {slots_.at(i).step, slots_.at(i).exp_avg, slots_.at(i).exp_avg_sq}; }
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  // Per parameter: its state in holder_, the state's moment tensors, and the step count as the
  // float32 scalar tensor the fused kernel reads (the holder's int64 step is set from it on save).
  struct Slot {
    torch::optim::OptimizerParamState* state = nullptr;
    at::Tensor exp_avg, exp_avg_sq, step;
  };
  void bind_states();

  bool adamw_;
  AdamHyper hyper_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> holder_;
  std::vector<Slot> slots_;
};

// Scales the gradients in place so that their global L2 norm is at most max_norm (by
// max_norm / (norm + 1e-6), as torch's clip_grad_norm_), and returns the norm before
// clipping. Parameters without a gradient are skipped.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// ema = decay * ema + (1 - decay) * model for the floating-point parameters; the model's
// buffers (and any integer parameters) are copied. Model and EMA lists pair up by position.
class EmaUpdate {
 public:
  EmaUpdate(const std::vector<at::Tensor>& model_params, const std::vector<at::Tensor>& ema_params,
            const std::vector<at::Tensor>& model_buffers, const std::vector<at::Tensor>& ema_buffers);
  void operator()(double decay) const;

 private:
  std::vector<at::Tensor> lerp_from_, lerp_to_, copy_from_, copy_to_;
};

}  // namespace gd
