// Native training loops: a diffusion model (p_losses) and a noise-aware classifier
// (cross-entropy at random t), with Adam/AdamW, gradient clipping, an EMA copy of the
// weights, periodic checkpoints and bit-exact resume (docs/diffusion-math.md,
// "Training"). The loops block: the caller runs them on a worker thread.
//
// Reproducibility: every random draw of a run (batch indices, timesteps, noise, the
// self-conditioning coin) comes from the trainer's own CPU generator, seeded by
// TrainOptions::seed and saved with the training state, so "N steps" and "N/2 steps, save,
// load into fresh objects, N/2 steps" give the same losses and the same weights (bit-exact,
// tested). Dropout inside a model draws from LibTorch's global generator, which the trainer
// does not own. During a run the calling thread has TorchScript's graph optimizer off
// (thread-local, restored afterwards): the profiling executor would otherwise switch a
// method to a differently-rounded differentiable graph after its first calls, so a module
// loaded to resume would not compute what the straight run computes at the same step.
//
// A TrainState is not thread-safe: one run at a time, and no save_training_state on a state
// while a run on it is in progress (except from its own on_step).
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diffusion/data_parallel.h"
#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"
#include "diffusion/training.h"

namespace gd {

struct TrainOptions {
  // Step count to reach: a run starts at the state's step (0 when fresh, the saved step when
  // resumed) and stops at `steps`. 0 is allowed (nothing to do).
  int64_t steps = 0;
  int64_t batch_size = 64;  // indices drawn with replacement, so it may exceed the data
  double lr = 2e-4;
  double weight_decay = 0;  // > 0: AdamW with this decoupled decay; 0: Adam
  std::pair<double, double> betas{0.9, 0.99};
  double eps = 1e-8;        // Adam's epsilon
  double grad_clip = 1.0;   // max global L2 norm of the gradients; <= 0: no clipping
  // After every ema_every-th step: ema = ema_decay * ema + (1 - ema_decay) * model, in [0, 1]
  // (0: the EMA copy is the model's latest weights). Buffers are copied.
  double ema_decay = 0.995;
  int64_t ema_every = 1;
  // With checkpoint_path set: every checkpoint_every steps (0: only) at the end of the run,
  // save_checkpoint(checkpoint_path, state), i.e. the EMA model as TorchScript at
  // checkpoint_path and the whole training state at checkpoint_path + ".state". Each file
  // is written to "<file>.tmp" first and renamed, so a crash leaves the previous one intact.
  int64_t checkpoint_every = 0;
  std::string checkpoint_path;
  // Seed of the trainer's generator when the overloads taking a bare module make a fresh
  // state (a resumed state keeps its saved generator).
  uint64_t seed = 0;
  // The mean_loss of the result is over the last loss_window steps of the run.
  int64_t loss_window = 100;
  // >= 0: timesteps are drawn from [0, max_timestep] rather than [0, timesteps): 0 trains on
  // (nearly) clean images, as a plain classifier. -1: the whole range.
  int64_t max_timestep = -1;
  // train_classifier only: t = 0 and the images as they are, without q_sample's noise (a
  // plain classifier of clean images; maxTimestep 0 still adds the noise of t = 0).
  bool clean = false;
  // train_diffusion with labels only: label dropout for classifier-free guidance (Ho &
  // Salimans): each image's label becomes null_class with this probability, in [0, 1), drawn
  // from the trainer's generator after the noise. null_class < 0: the model's `null_class`
  // attribute (the class-conditional Unet has one; openai's UNetModel trained with
  // num_classes + 1 labels needs it given).
  double cond_drop_prob = 0;
  int64_t null_class = -1;
  // After each step (optimizer, EMA and checkpoint done): step counts from 1 to total
  // (== steps). May throw to abort the run: the exception propagates out of the trainer and
  // the state holds every step finished so far.
  std::function<void(int64_t step, int64_t total, double loss)> on_step;
  // Asked before each step; true ends the run early (TrainResult::stopped).
  std::function<bool()> should_stop;
  // kBFloat16 or kHalf: each step's forward (model and loss) runs under autocast in this
  // dtype on the data's device, CPU or CUDA; backward follows it, and the weights, gradients,
  // Adam moments and EMA stay float32. Unset: float32 throughout.
  std::optional<at::ScalarType> autocast;

  // Data-parallel training (native/distributed provides the collectives): this process is
  // rank `rank` of `world_size`. Every rank draws the global batch (world_size * batch_size
  // indices, timesteps and noise, from the same generator) and keeps its slice, gradients
  // (and the step's loss) are averaged before clipping, so N ranks of batch b take the steps
  // one process of batch N*b takes. The run starts by copying rank 0's weights, EMA and
  // generator to every rank; only rank 0 writes checkpoints.
  using Parallel = DataParallel;  // diffusion/data_parallel.h
  Parallel parallel;
};

namespace detail {
struct OptimizerSlot;  // the fused Adam/AdamW of diffusion/optim.h, kept out of this header
}

// Everything a run continues from. Copies share the same modules, generator and optimizer.
struct TrainState {
  torch::jit::Module model;  // trained in place
  torch::jit::Module ema;    // a separate copy (deepcopy) of the model, EMA weights
  int64_t step = 0;          // optimizer steps done
  at::Generator generator;   // the trainer's CPU generator
  // Adam/AdamW over the model's parameters that require grad; made by the first training
  // call (or by load_training_state), null until then.
  std::shared_ptr<detail::OptimizerSlot> optimizer;
};

// A fresh state: ema = model.deepcopy() (parameters keep their requires_grad), step 0, a
// CPU generator seeded with `seed`, no optimizer yet.
TrainState make_train_state(torch::jit::Module model, uint64_t seed = 0);

struct TrainResult {
  torch::jit::Module model;  // the trained module (the state's; trained in place)
  torch::jit::Module ema;    // the EMA copy, in eval mode (use it for sampling)
  int64_t steps = 0;         // the state's step count after the run
  int64_t steps_run = 0;     // steps done by this call
  bool stopped = false;      // should_stop ended the run before options.steps
  double final_loss = 0;     // NaN when no step ran
  double mean_loss = 0;      // over the last options.loss_window steps of this run; NaN if none
  std::vector<double> losses;  // every step's loss, this run
  // train_classifier only: fraction of the batch classified right (on the noisy inputs,
  // before the step); NaN / empty for diffusion.
  double final_accuracy = 0;
  double mean_accuracy = 0;  // over the same window as mean_loss
  std::vector<double> accuracies;
};

// Trains a denoising model (forward(x, t[, x_self_cond])) on `data`, float [N, C, H, W] in
// [-1, 1]. Each step: batch = data[randint(N, {B})], t = randint(T, {B}), noise = randn
// (in that order, from the state's generator); with labels (int64 [N], a class-conditional
// model forward(x, t, y)) the batch's labels, dropped to the null class where rand(B) <
// cond_drop_prob (drawn only when cond_drop_prob > 0); with loss_options.self_condition and a
// self-conditioning model, one uniform draw u then decides self-conditioning (u < 0.5, the
// reference's coin); loss = p_losses(...); backward; clip; optimizer step; EMA update.
// The model is in training mode during the run and gets its previous mode back afterwards.
// Throws std::invalid_argument for bad options or data, std::runtime_error when the loss
// turns non-finite (the step is not applied), and whatever the model, on_step or a
// checkpoint write throws.
TrainResult train_diffusion(TrainState& state, const Schedule& schedule, Objective objective,
                            const at::Tensor& data, const TrainOptions& options,
                            const LossOptions& loss_options = {}, const at::Tensor& labels = at::Tensor());
// The same on make_train_state(model, options.seed).
TrainResult train_diffusion(torch::jit::Module model, const Schedule& schedule, Objective objective,
                            const at::Tensor& data, const TrainOptions& options,
                            const LossOptions& loss_options = {}, const at::Tensor& labels = at::Tensor());

// Trains a noise-aware classifier (forward(x, t) -> logits [B, classes]): each step
// batch and labels = data/labels[randint(N, {B})], t = randint(T, {B}), noise = randn;
// loss = cross-entropy of classifier(q_sample(batch, t, noise), t) (what classifier_loss
// computes). labels: int64 [N].
TrainResult train_classifier(TrainState& state, const Schedule& schedule, const at::Tensor& data,
                             const at::Tensor& labels, const TrainOptions& options);
TrainResult train_classifier(torch::jit::Module classifier, const Schedule& schedule,
                             const at::Tensor& data, const at::Tensor& labels,
                             const TrainOptions& options);

// Writes the whole state to one file (a torch::serialize archive): model and EMA parameters
// and buffers by name, the optimizer (kind, options, Adam moments and step counts), the step
// and the generator state. The file is written to "<path>.tmp" and renamed.
void save_training_state(const std::string& path, const TrainState& state);

// Reads a file of save_training_state into `model`, a module of the same architecture
// (e.g. built again with the same options, any weights): its parameters and buffers get the
// saved ones, the EMA copy is model.deepcopy() with the saved EMA weights, the optimizer is
// rebuilt over model's parameters with the saved moments. The next training call continues
// exactly where the saved run was; its TrainOptions (lr, betas, weight_decay, eps) then
// apply, but switching between Adam and AdamW throws. Throws std::runtime_error for a
// missing or unreadable file and when the names or shapes do not match the model (naming
// the first that differs, and `what` the model is: "model", "classifier").
TrainState load_training_state(const std::string& path, torch::jit::Module model, const std::string& what = "model");

// The periodic checkpoint: state.ema saved as TorchScript at `path` (loads in Python with
// torch.jit.load) and save_training_state(path + ".state", state).
void save_checkpoint(const std::string& path, const TrainState& state);
// Resumes from save_checkpoint's two files into `model` (trained in place from then on):
// load_training_state(path + ".state", model, what), after checking that path exists.
TrainState load_checkpoint(const std::string& path, torch::jit::Module model, const std::string& what = "model");
// The same with torch::jit::load(path) as the model.
TrainState load_checkpoint(const std::string& path);

}  // namespace gd
