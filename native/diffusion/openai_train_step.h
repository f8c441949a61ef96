// One step of openai/guided-diffusion's TrainLoop (train_util.py, fp32): the batch in
// microbatches (each: timesteps and loss weights from the schedule sampler, training_losses,
// the sampler told the losses, backward of the weighted mean: gradients accumulate as theirs,
// a sum of the microbatches' means), the gradient and parameter norms, AdamW, one EMA copy of
// the weights per rate, and their lr annealing. Blocks: a caller runs it on a worker thread.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/data_parallel.h"
#include "diffusion/denoiser.h"
#include "diffusion/mixed_precision.h"
#include "diffusion/openai_losses.h"
#include "diffusion/optim.h"
#include "diffusion/schedule.h"
#include "diffusion/schedule_sampler.h"
#include "diffusion/train_loop_common.h"

namespace gd {

struct OpenaiTrainOptions {
  double lr = 1e-4;
  double weight_decay = 0;      // AdamW's, betas (0.9, 0.999), eps 1e-8 (torch's defaults, theirs)
  int64_t lr_anneal_steps = 0;  // > 0: after step s, lr = lr * (1 - s / lr_anneal_steps)
  int64_t microbatch = 0;       // <= 0: the whole batch at once
  std::vector<double> ema_rate{0.9999};
  // Their TrainLoop under DDP: each rank steps on its own batch, the gradients are averaged
  // over the ranks before the norms and AdamW (so N ranks of batch b step as one process of
  // batch N*b), the first step starts from rank 0's weights and EMA, and only rank 0 saves.
  // The loss-second-moment sampler is refused here (theirs all-gathers its losses).
  DataParallel parallel;
  // Their use_fp16 / fp16_scale_growth (diffusion/mixed_precision.h): the model as given (its
  // torso's convolutions float16 when built with use_fp16), trained through float32 masters
  // with dynamic loss scaling. A skipped step still counts (their step, lr annealing, logs).
  MixedPrecisionOptions fp16;
};

// What their logger gets from one step: loss, mse, vb (as training_losses gives them, times the
// sampler's weights, averaged over the microbatches), <key>_q0..3 (the same per quartile of t),
// grad_norm, param_norm, step, samples (StepLog: diffusion/train_loop_common.h); with use_fp16
// lg_loss_scale, and no grad_norm / param_norm from a skipped step.

// Their logger's logkv_mean: each call one value; a dump gives each key's mean since the last.
class MeanLog {
 public:
  void add(const std::string& key, double value) {
    auto& [sum, count] = acc_[key];
    sum += value;
    ++count;
  }
  void add(const MeanLog& other) {
    for (const auto& [key, acc] : other.acc_) {
      acc_[key].first += acc.first;
      acc_[key].second += acc.second;
    }
  }
  void into(StepLog& log) const {
    for (const auto& [key, acc] : acc_) log[key] = acc.first / static_cast<double>(acc.second);
  }
  void clear() { acc_.clear(); }

 private:
  std::map<std::string, std::pair<double, int64_t>> acc_;
};

// The module's parameters in named_parameters order (what their optimizer gets).
std::vector<at::Tensor> model_parameters(const torch::jit::Module& model);
// Their log_loss_dict: each term's mean, and each sample's value under its quartile of t
// (int(4 t / timesteps)), into log as logkv_mean does.
void log_loss_dict(MeanLog& log, const std::vector<std::pair<std::string, at::Tensor>>& terms, const at::Tensor& t,
                   int64_t timesteps);
// Their _compute_norms (fp32): the global L2 norms of the gradients (parameters without one
// skipped) and of the parameters.
std::pair<double, double> grad_and_param_norm(const std::vector<at::Tensor>& params);

class OpenaiTrainStep {
 public:
  // Trains denoiser.module()'s parameters (all of them, in named_parameters order).
  OpenaiTrainStep(Denoiser denoiser, Schedule schedule, LossType loss_type, OpenaiTrainOptions options,
                  std::shared_ptr<ScheduleSampler> sampler, at::Generator generator);

  // One step on x0 [B, C, H, W] in [-1, 1] with class labels y (undefined: none). t, weights and
  // noise undefined: drawn (t and weights by the sampler, noise randn, from the generator).
  StepLog run(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t = at::Tensor(),
              const at::Tensor& weights = at::Tensor(), const at::Tensor& noise = at::Tensor());

  // Steps taken by this trainer (their self.step), and the step it resumed from (their
  // resume_step, parsed from the checkpoint's name): their logs and file names count both.
  int64_t step() const { return step_; }
  int64_t resume_step() const { return resume_step_; }
  // Their dumpkvs: the logged keys averaged over every step since the last dump (step and
  // samples: the last step's), then forgotten.
  StepLog dump_log();
  at::Generator generator() const { return generator_; }
  int64_t lr_anneal_steps() const { return options_.lr_anneal_steps; }
  // This process's rank in the data-parallel run (0 when there is none): rank 0 alone saves.
  int64_t rank() const { return options_.parallel.rank; }

  // Their save() (openai_train_checkpoint.cc): model{N:06d}.pt (the model's state dict),
  // ema_{rate}_{N:06d}.pt per rate (rate as Python's str(float)), opt{N:06d}.pt (AdamW's
  // state_dict as torch.optim writes it) in dir, N = number. Returns the paths written.
  std::vector<std::string> save(const std::string& dir, int64_t number) const;
  // Their resume_checkpoint: loads the model's weights from model_path, takes the step from its
  // name as parse_resume_step_from_filename does, and when that step is not 0, the optimizer
  // state (opt{N:06d}.pt) and each rate's EMA (ema_{rate}_{N:06d}.pt) found beside it; a missing
  // one starts fresh (an EMA as a copy of the loaded weights), as theirs.
  void resume(const std::string& model_path);
  const std::vector<double>& ema_rate() const { return options_.ema_rate; }
  // Their mp_trainer.lg_loss_scale (the next step's; use_fp16 only).
  double lg_loss_scale() const { return mp_.lg_loss_scale(); }
  // The EMA weights of rate i, in the model's named_parameters order.
  const std::vector<at::Tensor>& ema_params(size_t i) const { return ema_.at(i); }
  std::vector<std::string> param_names() const;

 private:
  Denoiser denoiser_;
  Schedule schedule_;
  LossType loss_type_;
  OpenaiTrainOptions options_;
  std::shared_ptr<ScheduleSampler> sampler_;
  at::Generator generator_;
  MixedPrecision mp_;
  std::vector<at::Tensor> params_;  // what AdamW steps and the EMA follows: mp_.master()
  FusedAdam adam_;
  std::vector<std::vector<at::Tensor>> ema_;
  AdamHyper hyper_;  // lr annealed; all of it replaced by a resumed optimizer's param_group
  int64_t step_ = 0;
  int64_t resume_step_ = 0;
  bool synced_ = false;  // data parallel: rank 0's weights and EMA copied to every rank
  MeanLog window_;  // since the last dump_log
  StepLog last_counts_;  // step and samples of the last step
};

}  // namespace gd
