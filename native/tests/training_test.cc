// The native trainers (native/diffusion/trainer.h) on real Fashion-MNIST: a tiny Unet and a
// small noise-aware classifier learn (their loss goes down), a run saved halfway and resumed
// in fresh objects equals the straight run, checkpoints load, options and errors.
//
//   training_test [dataset_dir]
// dataset_dir defaults to $GD_FASHION_MNIST or /usr/share/datasets/fashion-mnist.
// Exit status 0 when every check holds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/script.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "diffusion/fashion_mnist.h"
#include "diffusion/schedule.h"
#include "diffusion/trainer.h"
#include "diffusion/training.h"
#include "models/classifier.h"
#include "models/unet.h"

namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  if (!ok) ++failures;
}

template <typename E>
void expect_error(const std::string& what, const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
  } catch (const E& e) {
    const std::string msg = e.what();
    const bool ok = msg.find(part) != std::string::npos;
    check(ok, what);
    if (!ok) std::cout << "     got: " << msg << "\n";
    return;
  } catch (const std::exception& e) {
    check(false, what);
    std::cout << "     wrong exception type: " << e.what() << "\n";
    return;
  }
  check(false, what + " (no exception)");
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + static_cast<long>(from), v.begin() + static_cast<long>(to), 0.0) /
         static_cast<double>(to - from);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Largest absolute difference over all parameters and buffers (same architecture).
double max_weight_diff(const torch::jit::Module& a, const torch::jit::Module& b) {
  std::vector<at::Tensor> ta, tb;
  for (const auto& p : a.named_parameters(true)) ta.push_back(p.value);
  for (const auto& p : b.named_parameters(true)) tb.push_back(p.value);
  for (const auto& p : a.named_buffers(true)) ta.push_back(p.value);
  for (const auto& p : b.named_buffers(true)) tb.push_back(p.value);
  if (ta.size() != tb.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < ta.size(); ++i) m = std::max(m, (ta[i] - tb[i]).abs().max().item<double>());
  return m;
}

std::string fmt(const char* f, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

gd::UnetOptions tiny_unet_options(bool self_condition = false) {
  gd::UnetOptions o;
  o.dim = 8;
  o.dim_mults = {1, 2};
  o.channels = 1;
  o.self_condition = self_condition;
  return o;
}

torch::jit::Module tiny_unet(int seed, bool self_condition = false) {
  at::manual_seed(seed);
  return gd::make_unet(tiny_unet_options(self_condition));
}

torch::jit::Module small_classifier(int seed) {
  gd::ClassifierOptions o;
  o.image_size = 28;
  o.channels = 1;
  o.num_classes = 10;
  o.dim = 8;
  o.dim_mults = {1, 2};
  o.attention_resolutions = {};
  o.pool = "avg";
  o.heads = 2;
  o.dim_head = 8;
  at::manual_seed(seed);
  return gd::make_classifier(o);
}

// "N steps straight" against "N/2 steps, save, load into a fresh module, N/2 more".
struct ResumeCase {
  std::string name;
  std::function<torch::jit::Module(int seed)> build;
  std::function<gd::TrainResult(gd::TrainState&, const gd::TrainOptions&)> train;
  gd::TrainOptions options;
  bool via_checkpoint = false;  // save_checkpoint/load_checkpoint instead of the state functions
};

void check_resume(const ResumeCase& c, const fs::path& dir) {
  const int64_t n = c.options.steps;
  gd::TrainOptions full = c.options;
  gd::TrainState straight = gd::make_train_state(c.build(1), full.seed);
  const gd::TrainResult a = c.train(straight, full);

  gd::TrainOptions half = c.options;
  half.steps = n / 2;
  gd::TrainState first = gd::make_train_state(c.build(1), half.seed);
  const gd::TrainResult b1 = c.train(first, half);
  gd::TrainState resumed;
  static int counter = 0;
  const std::string path = (dir / ("resume" + std::to_string(++counter) + ".pt")).string();
  if (c.via_checkpoint) {
    gd::save_checkpoint(path, first);
    resumed = gd::load_checkpoint(path);
  } else {
    gd::save_training_state(path, first);
    resumed = gd::load_training_state(path, c.build(99));  // other initial weights: all must be loaded
  }
  check(resumed.step == n / 2, c.name + ": resumed state is at step " + std::to_string(n / 2));
  const gd::TrainResult b2 = c.train(resumed, full);

  std::vector<double> losses = b1.losses;
  losses.insert(losses.end(), b2.losses.begin(), b2.losses.end());
  double loss_diff = losses.size() == a.losses.size() ? 0 : INFINITY;
  for (size_t i = 0; i < losses.size() && i < a.losses.size(); ++i) {
    loss_diff = std::max(loss_diff, std::abs(losses[i] - a.losses[i]));
  }
  const double model_diff = max_weight_diff(straight.model, resumed.model);
  const double ema_diff = max_weight_diff(straight.ema, resumed.ema);
  const bool same_rng = at::equal(straight.generator.get_state(), resumed.generator.get_state());
  std::printf("     %s: %zu losses, max |loss diff| %.3g, max |weight diff| %.3g, max |ema diff| %.3g\n",
              c.name.c_str(), losses.size(), loss_diff, model_diff, ema_diff);
  check(loss_diff == 0, c.name + ": same losses step for step (bit-exact)");
  check(model_diff == 0, c.name + ": same final weights (bit-exact)");
  check(ema_diff == 0, c.name + ": same final EMA weights (bit-exact)");
  check(same_rng && b2.steps == n, c.name + ": same generator state and step count");
  check(max_weight_diff(straight.model, c.build(1)) > 0, c.name + ": the weights did move");
}

}  // namespace

int run(int argc, char** argv) {
  std::string dir = gd::kFashionMnistDir;
  if (const char* env = std::getenv("GD_FASHION_MNIST")) dir = env;
  if (argc > 1) dir = argv[1];
  const auto start = std::chrono::steady_clock::now();
  const fs::path tmp = fs::temp_directory_path() / ("gd_training_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  gd::Dataset fm = gd::load_fashion_mnist(dir, /*train=*/true, 256);
  const at::Tensor data = gd::normalize_images(fm.images);  // [256, 1, 28, 28] in [-1, 1]
  const gd::Schedule schedule = gd::make_schedule();   // 1000 steps, sigmoid (the reference's default)

  // ---- (a) a tiny Unet learns ----
  {
    gd::TrainOptions o;
    o.steps = 30;
    o.batch_size = 16;
    o.lr = 1e-3;
    o.seed = 1;
    o.loss_window = 5;
    int64_t calls = 0, last_step = 0, total = 0;
    o.on_step = [&](int64_t step, int64_t t, double) { ++calls; last_step = step; total = t; };
    torch::jit::Module unet = tiny_unet(0);
    const bool was_training = unet.is_training();
    const auto t0 = std::chrono::steady_clock::now();
    gd::TrainResult r = gd::train_diffusion(unet, schedule, gd::Objective::PredNoise, data, o);
    const double secs = seconds_since(t0);
    const double before = mean(r.losses, 0, 5), after = mean(r.losses, r.losses.size() - 5, r.losses.size());
    std::printf("     Unet dim 8 [1,2], 28x28, batch 16, lr 1e-3: mean loss steps 1-5 %.4f, steps 26-30 %.4f "
                "(%.1f s, %.0f ms/step)\n", before, after, secs, 1000 * secs / 30);
    check(r.steps == 30 && r.steps_run == 30 && r.losses.size() == 30 && !r.stopped, "Unet: 30 steps done");
    check(after < 0.8 * before, "Unet: loss of the last 5 steps < 0.8 x the first 5 " + fmt("(%.4f vs %.4f)", after, before));
    check(calls == 30 && last_step == 30 && total == 30, "on_step called once per step with (step, total)");
    check(r.final_loss == r.losses.back() && std::abs(r.mean_loss - after) < 1e-12, "final_loss, mean_loss over loss_window");
    check(std::isnan(r.final_accuracy) && r.accuracies.empty(), "no accuracy for diffusion");
    check(unet.is_training() == was_training && !r.ema.is_training(), "model mode restored, EMA in eval mode");
    check(max_weight_diff(r.ema, r.model) > 0 && max_weight_diff(r.model, tiny_unet(0)) > 0,
          "model trained in place, EMA a separate copy");
    bool ema_grad = true;
    for (const auto& p : r.ema.parameters(true)) ema_grad = ema_grad && p.requires_grad() && p.is_leaf();
    check(ema_grad, "EMA parameters are leaves that keep requires_grad (trainable copy)");

    // The EMA model samples-ready: one no-grad forward on noise gives finite output.
    at::NoGradGuard no_grad;
    at::Tensor out = r.ema.forward({at::randn({2, 1, 28, 28}), at::tensor({5, 500}, at::kLong)}).toTensor();
    check(out.sizes() == at::IntArrayRef({2, 1, 28, 28}) && out.isfinite().all().item<bool>(), "EMA model runs");
  }

  // ---- (b) a noise-aware classifier learns ----
  {
    gd::TrainOptions o;
    o.steps = 60;
    o.batch_size = 32;
    o.lr = 3e-3;
    o.ema_decay = 0.9;
    o.seed = 2;
    o.loss_window = 10;
    const gd::Schedule& s100 = schedule;
    const auto t0 = std::chrono::steady_clock::now();
    gd::TrainResult r = gd::train_classifier(small_classifier(0), s100, data, fm.labels, o);
    const double secs = seconds_since(t0);
    const double before = mean(r.losses, 0, 10), after = r.mean_loss;
    std::printf("     classifier dim 8 [1,2], avg pool, batch 32, lr 3e-3: mean loss steps 1-10 %.4f, steps 51-60 %.4f; "
                "batch accuracy steps 1-10 %.3f, 51-60 %.3f (%.1f s)\n",
                before, after, mean(r.accuracies, 0, 10), r.mean_accuracy, secs);
    check(r.accuracies.size() == 60 && !std::isnan(r.final_accuracy), "classifier: accuracy per step");
    check(after < 0.9 * before, "classifier: mean loss of the last 10 steps < 0.9 x the first 10 " + fmt("(%.4f vs %.4f)", after, before));
    check(r.mean_accuracy > mean(r.accuracies, 0, 10), "classifier: batch accuracy rises");

    // Its loss is classifier_loss's: same value for the same inputs.
    at::Tensor x0 = data.slice(0, 0, 4), t = at::tensor({0, 10, 50, 99}, at::kLong), noise = at::randn_like(x0);
    at::Tensor y = fm.labels.slice(0, 0, 4);
    at::NoGradGuard no_grad;
    const double l1 = gd::classifier_loss(r.model, s100, x0, t, y, noise).item<double>();
    const at::Tensor logits = r.model.forward({gd::q_sample(s100, x0, t, noise), t}).toTensor();
    check(std::abs(l1 - at::cross_entropy_loss(logits, y).item<double>()) < 1e-6, "classifier loss == classifier_loss");
  }

  // ---- (c) resume == straight ----
  {
    const at::Tensor small = data.slice(0, 0, 64);
    const at::Tensor small_labels = fm.labels.slice(0, 0, 64);
    auto diffusion = [&](gd::Objective objective, bool self_cond) {
      return [&, objective, self_cond](gd::TrainState& s, const gd::TrainOptions& o) {
        gd::LossOptions lo;
        lo.self_condition = self_cond;
        lo.min_snr_loss_weight = true;
        return gd::train_diffusion(s, schedule, objective, small, o, lo);
      };
    };
    gd::TrainOptions o;
    o.steps = 6;
    o.batch_size = 8;
    o.lr = 1e-3;
    o.seed = 7;
    o.ema_decay = 0.9;
    o.ema_every = 2;
    o.grad_clip = 0.5;

    ResumeCase adamw{"AdamW Unet, pred_v, save/load_training_state", [](int seed) { return tiny_unet(seed); },
                     diffusion(gd::Objective::PredV, false), o};
    adamw.options.weight_decay = 0.05;
    check_resume(adamw, tmp);

    ResumeCase adam{"Adam self-conditioning Unet, pred_noise, save/load_checkpoint",
                    [](int seed) { return tiny_unet(seed, /*self_condition=*/true); },
                    diffusion(gd::Objective::PredNoise, true), o, /*via_checkpoint=*/true};
    check_resume(adam, tmp);

    ResumeCase cls{"Adam classifier, save/load_training_state", [](int seed) { return small_classifier(seed); },
                   [&](gd::TrainState& s, const gd::TrainOptions& opt) {
                     return gd::train_classifier(s, schedule, small, small_labels, opt);
                   },
                   o};
    cls.options.steps = 4;
    check_resume(cls, tmp);
  }

  // ---- checkpoints, stopping, errors ----
  {
    const at::Tensor small = data.slice(0, 0, 16);
    gd::TrainOptions o;
    o.steps = 5;
    o.batch_size = 4;
    o.checkpoint_every = 2;
    o.checkpoint_path = (tmp / "periodic.pt").string();
    std::vector<int64_t> seen;
    o.on_step = [&](int64_t step, int64_t, double) {
      if (step == 2 || step == 4) {
        // The checkpoint of this step is on disk before on_step runs.
        gd::TrainState s = gd::load_checkpoint(o.checkpoint_path);
        seen.push_back(s.step);
      }
    };
    gd::TrainState state = gd::make_train_state(tiny_unet(3), 0);
    gd::TrainResult r = gd::train_diffusion(state, schedule, gd::Objective::PredNoise, small, o);
    check(seen == std::vector<int64_t>({2, 4}), "checkpoints at steps 2 and 4, before on_step");
    gd::TrainState last = gd::load_checkpoint(o.checkpoint_path);
    check(last.step == 5, "a final checkpoint at the end of the run (step 5)");
    check(!fs::exists(o.checkpoint_path + ".tmp") && !fs::exists(o.checkpoint_path + ".state.tmp"), "no .tmp left");
    torch::jit::Module saved = torch::jit::load(o.checkpoint_path);
    at::NoGradGuard no_grad;
    at::Tensor x = at::randn({1, 1, 28, 28}), t = at::tensor({10}, at::kLong);
    check(at::equal(saved.forward({x, t}).toTensor(), r.ema.forward({x, t}).toTensor()),
          "the checkpoint .pt is the EMA model (same output)");
    check(max_weight_diff(last.model, state.model) == 0 && max_weight_diff(last.ema, state.ema) == 0,
          "the .state holds the model and EMA weights");
  }
  {
    const at::Tensor small = data.slice(0, 0, 16);
    gd::TrainOptions o;
    o.steps = 10;
    o.batch_size = 4;
    int64_t asked = 0;
    o.should_stop = [&] { return ++asked > 3; };
    gd::TrainState state = gd::make_train_state(tiny_unet(4), 0);
    gd::TrainResult r = gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o);
    check(r.stopped && r.steps == 3 && state.step == 3 && r.losses.size() == 3, "should_stop ends the run after 3 steps");

    o.should_stop = nullptr;
    o.on_step = [](int64_t step, int64_t, double) {
      if (step == 5) throw std::runtime_error("abort from on_step");
    };
    expect_error<std::runtime_error>("on_step's exception propagates",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o); }, "abort from on_step");
    check(state.step == 5, "the state keeps the steps done before the abort");
    o.on_step = nullptr;
    o.steps = 5;
    check(gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o).steps_run == 0,
          "steps already reached: nothing to do");

    o.steps = 6;
    o.weight_decay = 0.1;
    expect_error<std::invalid_argument>("Adam state cannot continue as AdamW",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o); }, "trained with Adam");
    o.weight_decay = 0;
    o.batch_size = 0;
    expect_error<std::invalid_argument>("batch_size 0",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o); }, "batchSize must be >= 1");
    o.batch_size = 4;
    o.checkpoint_every = 3;
    expect_error<std::invalid_argument>("checkpoint_every without a path",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, small, o); }, "checkpointPath");
    o.checkpoint_every = 0;
    expect_error<std::invalid_argument>("integer data",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, fm.images, o); }, "floating");
    at::Tensor bad = small.clone();
    bad[0].fill_(NAN);
    bad = bad.slice(0, 0, 1);
    expect_error<std::runtime_error>("non-finite loss",
        [&] { gd::train_diffusion(state, schedule, gd::Objective::PredX0, bad, o); }, "loss is not finite");
    check(state.step == 5, "the non-finite step was not applied");
    expect_error<std::invalid_argument>("labels of another length",
        [&] { gd::train_classifier(small_classifier(0), schedule, small, fm.labels, o); }, "one class index per image");
    expect_error<std::runtime_error>("missing state file",
        [&] { gd::load_training_state((tmp / "none.state").string(), tiny_unet(0)); }, "not found");
    gd::save_training_state((tmp / "unet.state").string(), state);
    expect_error<std::runtime_error>("a Unet state into a classifier names the first shape that differs",
        [&] { gd::load_training_state((tmp / "unet.state").string(), small_classifier(0), "classifier"); },
        "the checkpoint does not match the classifier: 'init_conv.weight' has shape [8, 1, 7, 7] in the checkpoint and [8, 1, 3, 3] in the classifier");
    gd::UnetOptions wider = tiny_unet_options();
    wider.dim = 16;
    expect_error<std::runtime_error>("state into a wider Unet names the first shape",
        [&] { gd::load_training_state((tmp / "unet.state").string(), gd::make_unet(wider)); },
        "the checkpoint does not match the model: 'init_conv.weight' has shape [8, 1, 7, 7] in the checkpoint and [16, 1, 7, 7] in the model");
    {
      std::FILE* f = std::fopen((tmp / "junk.state").c_str(), "wb");
      std::fputs("not a zip archive", f);
      std::fclose(f);
    }
    expect_error<std::runtime_error>("corrupt state file",
        [&] { gd::load_training_state((tmp / "junk.state").string(), tiny_unet(0)); }, "cannot load training state");
  }

  fs::remove_all(tmp);
  std::printf("%s (%.1f s)\n", failures ? "FAILED" : "all checks passed", seconds_since(start));
  return failures ? 1 : 0;
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  std::cout << std::unitbuf;
  at::globalContext().setUserEnabledNNPACK(false);
  // One intra-op thread: on a busy 2-core machine two OpenMP threads fighting other
  // processes made each step ~6x slower (measured: 7 s vs 0.8 s per Unet step).
  if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(1);
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    std::printf("FAIL uncaught: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::printf("FAIL uncaught: %s\n", e.what());
  }
  return 1;
}
