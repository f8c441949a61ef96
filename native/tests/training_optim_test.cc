// The trainer's multi-tensor updates (native/diffusion/optim.h: fused Adam/AdamW, foreach
// gradient clipping, foreach EMA) against the per-parameter implementation they replaced:
// torch::optim::Adam / AdamW, torch::nn::utils::clip_grad_norm_ and one lerp_ per tensor,
// driven step by step from the same draws as train_diffusion makes. Both must give the same
// losses and weights to float rounding (1e-6), with clipping active and inactive.
//
//   training_optim_test        exit status 0 when every check holds
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"
#include "diffusion/trainer.h"
#include "diffusion/training.h"
#include "models/unet.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  if (!ok) ++failures;
}

torch::jit::Module tiny_unet(int seed) {
  gd::UnetOptions o;
  o.dim = 8;
  o.dim_mults = {1, 2};
  o.channels = 1;
  at::manual_seed(seed);
  return gd::make_unet(o);
}

std::vector<at::Tensor> tensors_of(const torch::jit::Module& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out.push_back(p.value);
  return out;
}

double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

struct Reference {
  std::vector<double> losses;
  std::vector<double> norms;  // the global gradient norm before clipping, per step
  torch::jit::Module model, ema;
};

// train_diffusion's loop written out with the per-parameter updates: draws (indices, t,
// noise) from a generator seeded like the trainer's, p_losses, backward, clip_grad_norm_,
// torch::optim's step, an EMA lerp_ per parameter.
Reference reference_run(const gd::Schedule& schedule, const at::Tensor& data, const gd::TrainOptions& o) {
  Reference r;
  r.model = tiny_unet(5);
  {
    at::NoGradGuard no_grad;
    r.ema = r.model.deepcopy();
  }
  r.model.train();
  std::vector<at::Tensor> params = tensors_of(r.model);
  std::vector<at::Tensor> ema = tensors_of(r.ema);
  std::unique_ptr<torch::optim::Optimizer> opt;
  const auto betas = std::make_tuple(o.betas.first, o.betas.second);
  if (o.weight_decay > 0) {
    opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(o.lr).betas(betas).eps(o.eps).weight_decay(o.weight_decay));
  } else {
    opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr).betas(betas).eps(o.eps));
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const gd::Denoiser denoiser(r.model, gd::Objective::PredNoise);
  torch::jit::GraphOptimizerEnabledGuard no_jit_optimizer(false);  // as the trainer runs
  const auto cpu_long = at::TensorOptions().dtype(at::kLong);
  for (int64_t step = 0; step < o.steps; ++step) {
    const at::Tensor idx = at::randint(data.size(0), {o.batch_size}, gen, cpu_long);
    const at::Tensor t = at::randint(schedule.timesteps, {o.batch_size}, gen, cpu_long);
    const at::Tensor x0 = data.index_select(0, idx);
    const at::Tensor noise = at::randn(x0.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
    opt->zero_grad();
    at::Tensor loss = gd::p_losses(denoiser, schedule, x0, t, noise);
    r.losses.push_back(loss.item<double>());
    loss.backward();
    r.norms.push_back(torch::nn::utils::clip_grad_norm_(params, o.grad_clip));
    opt->step();
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) ema[i].lerp_(params[i], 1.0 - o.ema_decay);
  }
  return r;
}

void compare(const std::string& name, const gd::Schedule& schedule, const at::Tensor& data, const gd::TrainOptions& o,
             bool expect_clipping) {
  const Reference ref = reference_run(schedule, data, o);
  gd::TrainState state = gd::make_train_state(tiny_unet(5), o.seed);
  const gd::TrainResult got = gd::train_diffusion(state, schedule, gd::Objective::PredNoise, data, o);
  double loss_diff = 0;
  for (size_t i = 0; i < ref.losses.size() && i < got.losses.size(); ++i) {
    loss_diff = std::max(loss_diff, std::abs(ref.losses[i] - got.losses[i]));
  }
  const double w = max_diff(tensors_of(got.model), tensors_of(ref.model));
  const double e = max_diff(tensors_of(got.ema), tensors_of(ref.ema));
  const double moved = max_diff(tensors_of(got.model), tensors_of(tiny_unet(5)));
  const double ema_moved = max_diff(tensors_of(got.ema), tensors_of(tiny_unet(5)));
  bool clipped = false;
  for (double n : ref.norms) clipped = clipped || n > o.grad_clip;
  char buf[200];
  std::snprintf(buf, sizeof buf, " (losses %.2e, weights %.2e, EMA %.2e; weights moved %.2e, EMA %.2e)", loss_diff, w, e, moved,
                ema_moved);
  check(got.losses.size() == ref.losses.size() && loss_diff <= 1e-6, name + ": the same losses step for step" + buf);
  check(w <= 1e-6 && e <= 1e-6, name + ": the same weights and EMA weights after " + std::to_string(o.steps) + " steps");
  check(moved > 100 * std::max(w, 1e-7) && ema_moved > 100 * std::max(e, 1e-7), name + ": the updates are far larger than the difference");
  check(clipped == expect_clipping, name + (expect_clipping ? ": the gradient norm was above gradClip (clipping ran)" : ": no step was clipped"));
}

int run() {
  const gd::Schedule schedule = gd::make_schedule();
  at::manual_seed(11);
  const at::Tensor data = at::rand({32, 1, 16, 16}) * 2 - 1;
  gd::TrainOptions o;
  o.steps = 4;
  o.batch_size = 8;
  o.lr = 1e-3;
  o.seed = 3;
  o.ema_decay = 0.9;
  o.grad_clip = 0.05;
  compare("Adam, clipped", schedule, data, o, /*expect_clipping=*/true);
  o.grad_clip = 1e6;
  compare("Adam, not clipped", schedule, data, o, /*expect_clipping=*/false);
  o.grad_clip = 0.05;
  o.weight_decay = 0.1;
  o.betas = {0.8, 0.95};
  o.eps = 1e-6;
  compare("AdamW (weight decay 0.1, betas 0.8/0.95, eps 1e-6), clipped", schedule, data, o, /*expect_clipping=*/true);
  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  at::set_num_threads(1);
  try {
    return run();
  } catch (const c10::Error& e) {
    std::printf("FAIL uncaught: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::printf("FAIL uncaught: %s\n", e.what());
  }
  return 1;
}
