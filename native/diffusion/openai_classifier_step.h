// One step of openai/guided-diffusion's classifier_train.py (fp32): their forward_backward_log
// (t from the schedule sampler and x_t = q_sample(x0, t, noise) when noised, else t = 0;
// logits = classifier(x_t, t); cross entropy; the batch in microbatches whose losses are scaled
// by their share of the batch, so the gradient is the full batch's mean) and AdamW's step after
// their set_annealed_lr. evaluate() is their "val" pass: the same losses, no gradient, no step.
// Blocks: a caller runs it on a worker thread (or synchronously, as the JS runStep does).
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <memory>

#include "diffusion/mixed_precision.h"
#include "diffusion/openai_train_step.h"
#include "diffusion/optim.h"
#include "diffusion/schedule.h"
#include "diffusion/schedule_sampler.h"

namespace gd {

struct OpenaiClassifierTrainOptions {
  double lr = 3e-4;
  double weight_decay = 0;  // AdamW's; betas (0.9, 0.999), eps 1e-8 (torch's defaults, theirs)
  int64_t microbatch = 0;   // <= 0: the whole batch at once
  bool noised = true;
  int64_t iterations = 150000;
  bool anneal_lr = false;   // lr * (1 - step / iterations), set before each step
  // Their classifier_use_fp16 (diffusion/mixed_precision.h), from lg_loss_scale 16 as their
  // script; fp16_scale_growth is MixedPrecisionTrainer's default (the script has no such flag).
  MixedPrecisionOptions fp16{false, 1e-3, 16.0};
  // Their DDP (as OpenaiTrainOptions.parallel): the ranks' gradients averaged before the norms
  // and AdamW, the first step from rank 0's weights, samples counting every rank's batch, rank 0
  // alone saving (in the loop).
  DataParallel parallel;
};

class OpenaiClassifierStep {
 public:
  // Trains all of classifier's parameters (named_parameters order); forward(x, t) -> logits.
  OpenaiClassifierStep(torch::jit::Module classifier, Schedule schedule, OpenaiClassifierTrainOptions options,
                       std::shared_ptr<ScheduleSampler> sampler, at::Generator generator);

  // One training step on x0 [B, C, H, W] in [-1, 1] with labels y int64 [B]. t and noise
  // undefined: drawn (t by the sampler, noise randn, from the generator). Returns their logged
  // keys: train_loss, train_acc@1, train_acc@5 (5 classes or more), each also per quartile of t
  // (_q0.._q3, as their log_loss_dict), grad_norm, param_norm, step, samples; with use_fp16
  // lg_loss_scale, and no grad_norm / param_norm when the step was skipped.
  StepLog run(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t = at::Tensor(),
              const at::Tensor& noise = at::Tensor());
  // Their val pass (model.eval(), no_grad): val_loss, val_acc@1, val_acc@5 and their quartiles.
  StepLog evaluate(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t = at::Tensor(),
                   const at::Tensor& noise = at::Tensor());

  // Steps taken by this trainer (their loop variable `step` before the next one), and the step
  // it resumed from (their resume_step): their logs, lr annealing and file names count both.
  int64_t step() const { return step_; }
  int64_t resume_step() const { return resume_step_; }
  int64_t iterations() const { return options_.iterations; }
  // This process's rank in the data-parallel run (0 when there is none): rank 0 alone saves.
  int64_t rank() const { return options_.parallel.rank; }
  // Their mp_trainer.lg_loss_scale (the next step's; use_fp16 only).
  double lg_loss_scale() const { return mp_.lg_loss_scale(); }
  at::Generator generator() const { return generator_; }
  // Their dumpkvs: every key run() and evaluate() logged since the last dump, averaged (step and
  // samples: the last step's), then forgotten.
  StepLog dump_log();
  // Their save_model after the steps taken: model{N:06d}.pt (the state dict) and opt{N:06d}.pt
  // (AdamW's state_dict, lr as the last step's) in dir, N = the last step's index plus the resumed
  // step (their step + resume_step: 1 after two steps). Returns the paths written; throws before
  // the first step.
  std::vector<std::string> save(const std::string& dir) const;
  // Their resume_checkpoint: the classifier's weights from model_path, the step from its name
  // (parse_resume_step_from_filename), and AdamW's state and param_group from opt{N:06d}.pt beside
  // it (theirs requires that file; here a missing one starts AdamW fresh, so a released
  // classifier's weights can be fine-tuned). Before the first step only.
  void resume(const std::string& model_path);

 private:
  // forward_backward_log: logs into `log` under prefix; backward when training.
  void forward_backward_log(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t_given,
                            const at::Tensor& noise_given, const std::string& prefix, MeanLog& log);

  torch::jit::Module classifier_;
  Schedule schedule_;
  OpenaiClassifierTrainOptions options_;
  std::shared_ptr<ScheduleSampler> sampler_;
  at::Generator generator_;
  MixedPrecision mp_;
  std::vector<at::Tensor> params_;  // what AdamW steps: mp_.master()
  FusedAdam adam_;
  AdamHyper hyper_;  // the next step's: the flags', or a resumed param_group's; lr annealed before each step
  int64_t step_ = 0;
  int64_t resume_step_ = 0;
  bool synced_ = false;   // data parallel: rank 0's weights copied to every rank
  double bad_loss_ = 0;   // data parallel: this step's non-finite loss, told to the ranks before throwing
  MeanLog window_;       // since the last dump_log
  StepLog last_counts_;  // step and samples of the last step
};

}  // namespace gd
