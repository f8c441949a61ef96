// The native Unet against the reference case: same parameter names and shapes as the
// Python reference, same output from the same weights, save/load round trip.
//
//   models_unet_test [out_dir]
// Fixtures: $GD_REFERENCE_CASE, or test/fixtures/reference-case found above the working
// directory or the executable. The saved module goes to out_dir (default: next to the
// executable, models_test_out/) for scripts/fixtures/models_check_saved.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/jit_builder.h"
#include "models/unet.h"

namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  if (!ok) ++failures;
}

fs::path find_reference_case(const char* argv0) {
  if (const char* env = std::getenv("GD_REFERENCE_CASE")) return env;
  std::vector<fs::path> starts{fs::current_path()};
  std::error_code ec;
  fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  if (argv0) starts.push_back(fs::absolute(argv0).parent_path());
  for (fs::path dir : starts) {
    for (; !dir.empty(); dir = dir.parent_path()) {
      fs::path candidate = dir / "test" / "fixtures" / "reference-case";
      if (fs::exists(candidate / "case.json")) return candidate;
      if (dir == dir.parent_path()) break;
    }
  }
  throw std::runtime_error("reference case not found; set GD_REFERENCE_CASE");
}

at::Tensor read_f32(const fs::path& path, at::IntArrayRef shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  at::Tensor t = at::empty(shape, at::kFloat);
  const auto bytes = static_cast<std::streamsize>(t.numel() * sizeof(float));
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), bytes);
  if (in.gcount() != bytes) throw std::runtime_error("short file " + path.string());
  return t;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Runs fn and checks that it throws a c10::Error whose message contains `expected`.
void expect_error(const std::function<void()>& fn, const std::string& expected) {
  try {
    fn();
  } catch (const c10::Error& e) {
    // TORCH_CHECK failures: the message without LibTorch's C++ backtrace.
    const std::string msg = e.what_without_backtrace();
    const bool ok = msg.find(expected) != std::string::npos;
    check(ok, "error \"" + expected + "\"");
    if (!ok) std::cout << "     got: " << msg << "\n";
    return;
  } catch (const std::exception& e) {
    // Failures inside TorchScript (assert) come as torch::jit::JITException.
    const std::string msg = e.what();
    const bool ok = msg.find(expected) != std::string::npos;
    check(ok, "error \"" + expected + "\"");
    if (!ok) std::cout << "     got: " << msg << "\n";
    return;
  }
  check(false, "error \"" + expected + "\" (nothing thrown)");
}

std::vector<std::pair<std::string, at::Tensor>> named_params(const torch::jit::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.name, p.value);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    at::set_num_threads(1);
    // NNPACK warns on every convolution on CPUs it does not support; it is not used anyway.
    at::globalContext().setUserEnabledNNPACK(false);
    const fs::path ref = find_reference_case(argc > 0 ? argv[0] : nullptr);
    std::error_code ec;
    const fs::path exe_dir = fs::canonical("/proc/self/exe", ec).parent_path();
    const fs::path out_dir = argc > 1 ? fs::path(argv[1]) : exe_dir / "models_test_out";
    fs::create_directories(out_dir);
    std::cout << "reference case: " << ref << "\n";

    // --- Option checks -------------------------------------------------------------------
    {
      gd::UnetOptions o;
      o.dim = -3;
      expect_error([&] { gd::make_unet(o); }, "Unet: dim must be a positive integer, got -3");
      o.dim = 6;
      o.dim_mults = {1, 0};
      expect_error([&] { gd::make_unet(o); },
                   "Unet: dim_mults must hold positive integers, got 0 at index 1");
      o.dim_mults = {};
      expect_error([&] { gd::make_unet(o); }, "Unet: dim_mults must not be empty");
      o = gd::UnetOptions{};
      o.dim = 3;
      expect_error([&] { gd::make_unet(o); },
                   "Unet: dim must be even and at least 4 for the sinusoidal time embedding, got 3");
      o.dim = 8;
      o.channels = 0;
      expect_error([&] { gd::make_unet(o); }, "Unet: channels must be a positive integer, got 0");
      o.channels = 3;
      o.learned_sinusoidal_cond = true;
      o.learned_sinusoidal_dim = 15;
      expect_error([&] { gd::make_unet(o); },
                   "Unet: learned_sinusoidal_dim must be a positive even integer, got 15");
    }

    // --- The reference case --------------------------------------------------------------
    gd::UnetOptions opts;
    opts.dim = 8;
    opts.dim_mults = {1, 2};
    opts.channels = 3;
    torch::jit::Module unet = gd::make_unet(opts);
    torch::jit::Module traced = torch::jit::load((ref / "unet_traced.pt").string());

    const auto ours = named_params(unet);
    const auto theirs = named_params(traced);
    std::set<std::string> our_names, their_names;
    for (const auto& [n, _] : ours) our_names.insert(n);
    for (const auto& [n, _] : theirs) their_names.insert(n);
    check(ours.size() == theirs.size(), "parameter count " + std::to_string(ours.size()) +
                                            " == reference " + std::to_string(theirs.size()));
    check(our_names == their_names, "parameter names equal the reference's");
    for (const auto& n : their_names) {
      if (!our_names.count(n)) std::cout << "     missing: " << n << "\n";
    }
    for (const auto& n : our_names) {
      if (!their_names.count(n)) std::cout << "     unexpected: " << n << "\n";
    }
    bool shapes_ok = true;
    {
      std::map<std::string, at::Tensor> mine(ours.begin(), ours.end());
      for (const auto& [n, t] : theirs) {
        auto it = mine.find(n);
        if (it != mine.end() && it->second.sizes() != t.sizes()) {
          shapes_ok = false;
          std::cout << "     shape of " << n << ": " << it->second.sizes() << " vs " << t.sizes()
                    << "\n";
        }
      }
    }
    check(shapes_ok, "parameter shapes equal the reference's");
    gd::load_named_tensors(unet, theirs);

    const at::Tensor x = read_f32(ref / "forward_x.f32", {2, 3, 16, 16});
    const at::Tensor expected = read_f32(ref / "forward_out.f32", {2, 3, 16, 16});
    const at::Tensor t = at::tensor(std::vector<int64_t>{3, 17}, at::kLong);
    at::Tensor out;
    {
      at::NoGradGuard no_grad;
      out = unet.forward({x, t}).toTensor();
    }
    const double err = max_abs(out, expected);
    std::printf("     unet forward vs forward_out.f32: max abs error %.3g\n", err);
    check(out.sizes() == expected.sizes() && err < 1e-5, "unet forward matches the reference");

    // Same thing, through the traced reference itself, as a sanity check of the fixture.
    {
      at::NoGradGuard no_grad;
      const double ref_err = max_abs(traced.forward({x, t}).toTensor(), expected);
      std::printf("     traced reference vs forward_out.f32: max abs error %.3g\n", ref_err);
    }

    // Attributes that tell how it was built.
    check(unet.attr("gd_kind").toStringRef() == "unet", "gd_kind == unet");
    check(unet.attr("channels").toInt() == 3 && unet.attr("out_dim").toInt() == 3 &&
              !unet.attr("self_condition").toBool() && unet.attr("dim").toInt() == 8,
          "option attributes");

    // Save, load back, same output.
    const fs::path saved = out_dir / "unet.pt";
    unet.save(saved.string());
    torch::jit::Module loaded = torch::jit::load(saved.string());
    {
      at::NoGradGuard no_grad;
      const double e2 = max_abs(loaded.forward({x, t}).toTensor(), out);
      std::printf("     reloaded unet vs built unet: max abs error %.3g\n", e2);
      check(e2 == 0.0, "saved and reloaded unet gives the same output");
    }
    check(named_params(loaded).size() == theirs.size(), "reloaded unet keeps its parameters");
    check(loaded.attr("gd_kind").toStringRef() == "unet", "reloaded gd_kind");

    // Gradients flow to the input and to every parameter.
    {
      at::Tensor xg = x.clone().requires_grad_(true);
      at::Tensor y = unet.forward({xg, t}).toTensor();
      y.pow(2).sum().backward();
      bool all_grads = true;
      for (const auto& p : unet.parameters()) all_grads = all_grads && p.grad().defined();
      check(xg.grad().defined() && xg.grad().abs().sum().item<double>() > 0 && all_grads,
            "backward reaches the input and every parameter");
    }

    // Clear error on a bad image size.
    expect_error([&] { unet.forward({at::randn({1, 3, 15, 15}), at::tensor({1}, at::kLong)}); },
                 "Unet: image height and width must be divisible by 2, got 15x15");

    // train()/eval() work on the whole tree.
    unet.eval();
    check(!unet.is_training(), "eval() clears training");
    unet.train();

    // Same seed, same weights.
    {
      at::manual_seed(7);
      torch::jit::Module a = gd::make_unet(opts);
      at::manual_seed(7);
      torch::jit::Module b = gd::make_unet(opts);
      bool same = true;
      auto pa = named_params(a), pb = named_params(b);
      for (size_t i = 0; i < pa.size(); ++i) same = same && pa[i].second.equal(pb[i].second);
      check(same, "manual_seed makes the built weights reproducible");
      // For the Python check: the same seed must give what torch.nn's default init gives.
      at::manual_seed(0);
      gd::UnetOptions seeded = opts;
      seeded.learned_sinusoidal_cond = true;
      gd::make_unet(seeded).save((out_dir / "unet_seeded.pt").string());
    }

    // Variant: self-conditioning, learned variance, learned sinusoidal time embedding.
    {
      gd::UnetOptions v;
      v.dim = 8;
      v.dim_mults = {1, 2, 2};
      v.self_condition = true;
      v.learned_variance = true;
      v.learned_sinusoidal_cond = true;
      torch::jit::Module m = gd::make_unet(v);
      at::NoGradGuard no_grad;
      at::Tensor xi = at::randn({2, 3, 16, 16});
      at::Tensor ti = at::tensor(std::vector<int64_t>{0, 999}, at::kLong);
      at::Tensor y0 = m.forward({xi, ti}).toTensor();
      at::Tensor y1 = m.forward({xi, ti, at::zeros_like(xi)}).toTensor();
      at::Tensor y2 = m.forward({xi, ti, xi}).toTensor();
      check(y0.sizes() == at::IntArrayRef({2, 6, 16, 16}), "learned-variance output has 6 channels");
      check(max_abs(y0, y1) == 0.0 && max_abs(y0, y2) > 0.0,
            "absent x_self_cond means zeros; a given one is used");
      bool has_weights = false;
      for (const auto& p : m.named_parameters()) {
        if (p.name == "time_mlp.0.weights") has_weights = p.value.sizes() == at::IntArrayRef({8});
      }
      check(has_weights, "learned sinusoidal weights are time_mlp.0.weights (8,)");
      check(m.attr("init_conv").toModule().attr("weight").toTensor().size(1) == 6,
            "self-conditioning doubles the input channels");
      const fs::path p = out_dir / "unet_selfcond.pt";
      m.save(p.string());
      torch::jit::Module l = torch::jit::load(p.string());
      check(max_abs(l.forward({xi, ti, xi}).toTensor(), y2) == 0.0,
            "self-conditioned unet saves and reloads");
      check(l.attr("out_dim").toInt() == 6 && l.attr("self_condition").toBool(),
            "reloaded option attributes");
    }

    // Variant: random Fourier features (frozen), init_dim != dim.
    {
      gd::UnetOptions v;
      v.dim = 8;
      v.init_dim = 12;
      v.dim_mults = {1, 2};
      v.random_fourier_features = true;
      torch::jit::Module m = gd::make_unet(v);
      bool frozen = false;
      for (const auto& p : m.named_parameters()) {
        if (p.name == "time_mlp.0.weights") frozen = !p.value.requires_grad();
      }
      check(frozen, "random Fourier weights are not trained");
      at::NoGradGuard no_grad;
      at::Tensor y = m.forward({at::randn({1, 3, 8, 8}), at::tensor({5}, at::kLong)}).toTensor();
      check(y.sizes() == at::IntArrayRef({1, 3, 8, 8}), "init_dim != dim runs");
    }

    // The seed's size: Unet(dim=64, dim_mults=(1, 2, 4, 8)); how long building takes.
    {
      gd::UnetOptions big;
      big.dim = 64;
      const auto start = std::chrono::steady_clock::now();
      torch::jit::Module m = gd::make_unet(big);
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start).count();
      int64_t count = 0;
      for (const auto& p : m.parameters()) count += p.numel();
      std::printf("     Unet(dim=64, dim_mults=(1,2,4,8)): %lld parameters, built in %.0f ms\n",
                  static_cast<long long>(count), ms);
      at::NoGradGuard no_grad;
      at::Tensor y = m.forward({at::randn({1, 3, 32, 32}), at::tensor({10}, at::kLong)}).toTensor();
      check(y.sizes() == at::IntArrayRef({1, 3, 32, 32}), "default-size Unet runs");
    }
  } catch (const std::exception& e) {
    std::cout << "FAIL exception: " << e.what() << "\n";
    return 1;
  }
  std::cout << (failures ? "FAILED " : "PASSED ") << failures << " failure(s)\n";
  return failures ? 1 : 0;
}
