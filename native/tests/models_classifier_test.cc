// The classifiers: the linear one against the reference's classifier.pt (same parameter
// names, same logits, same guidance gradient), and the encoder Classifier with both pool
// kinds (shape, gradient to the input, dropout, save/load, option errors).
//
//   models_classifier_test [out_dir]
// Fixtures: $GD_REFERENCE_CASE, or test/fixtures/reference-case found above the working
// directory or the executable. Saved modules, with an input and the logits they gave, go
// to out_dir (default: next to the executable, models_test_out/) for
// scripts/fixtures/models_check_saved.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "models/classifier.h"
#include "models/jit_builder.h"

namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  if (!ok) ++failures;
}

fs::path find_reference_case() {
  if (const char* env = std::getenv("GD_REFERENCE_CASE")) return env;
  std::vector<fs::path> starts{fs::current_path()};
  std::error_code ec;
  fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
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

void write_f32(const fs::path& path, const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kFloat).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr<float>()),
            static_cast<std::streamsize>(c.numel() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

void expect_error(const std::function<void()>& fn, const std::string& expected) {
  std::string msg;
  try {
    fn();
    check(false, "error \"" + expected + "\" (nothing thrown)");
    return;
  } catch (const c10::Error& e) {
    msg = e.what_without_backtrace();  // TORCH_CHECK, without the C++ backtrace
  } catch (const std::exception& e) {
    msg = e.what();  // TorchScript assert: torch::jit::JITException
  }
  const bool ok = msg.find(expected) != std::string::npos;
  check(ok, "error \"" + expected + "\"");
  if (!ok) std::cout << "     got: " << msg << "\n";
}

std::vector<std::pair<std::string, at::Tensor>> named_params(const torch::jit::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.name, p.value);
  return out;
}

// The seed's classifier_cond_fn: grad of sum(log_softmax(logits)[i, y_i]) w.r.t. x, * scale.
at::Tensor cond_grad(torch::jit::Module& classifier, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& y, double scale) {
  at::Tensor xi = x.detach().clone().requires_grad_(true);
  at::Tensor logits = classifier.forward({xi, t}).toTensor();
  at::Tensor selected = logits.log_softmax(-1).gather(1, y.view({-1, 1})).sum();
  selected.backward();
  return xi.grad() * scale;
}

void test_linear(const fs::path& ref, const fs::path& out_dir) {
  const at::Tensor x = read_f32(ref / "forward_x.f32", {2, 3, 16, 16});
  const at::Tensor t = at::tensor(std::vector<int64_t>{3, 17}, at::kLong);
  const at::Tensor y = at::tensor(std::vector<int64_t>{1, 3}, at::kLong);

  torch::jit::Module reference = torch::jit::load((ref / "classifier.pt").string());
  gd::LinearClassifierOptions o;
  o.image_size = 16;
  o.num_classes = 5;
  torch::jit::Module ours = gd::make_linear_classifier(o);

  std::set<std::string> a, b;
  for (const auto& [n, _] : named_params(ours)) a.insert(n);
  for (const auto& [n, _] : named_params(reference)) b.insert(n);
  check(a == b && a.size() == 4, "linear classifier parameter names equal classifier.pt's");
  gd::load_named_tensors(ours, named_params(reference));

  at::Tensor logits, expected;
  {
    at::NoGradGuard no_grad;
    logits = ours.forward({x, t}).toTensor();
    expected = reference.forward({x, t}).toTensor();
  }
  const double err = max_abs(logits, expected);
  std::printf("     linear classifier logits vs classifier.pt: max abs error %.3g\n", err);
  check(logits.sizes() == at::IntArrayRef({2, 5}) && err < 1e-5,
        "linear classifier logits match classifier.pt");

  const at::Tensor grad_expected = read_f32(ref / "cond_grad.f32", {2, 3, 16, 16});
  const double gerr = max_abs(cond_grad(ours, x, t, y, 2.5), grad_expected);
  std::printf("     classifier_cond_fn gradient vs cond_grad.f32: max abs error %.3g\n", gerr);
  check(gerr < 1e-5, "guidance gradient through the linear classifier matches cond_grad.f32");

  check(ours.attr("gd_kind").toStringRef() == "classifier" &&
            ours.attr("num_classes").toInt() == 5,
        "linear classifier attributes");

  ours.eval();
  const fs::path saved = out_dir / "linear_classifier.pt";
  ours.save(saved.string());
  torch::jit::Module loaded = torch::jit::load(saved.string());
  at::NoGradGuard no_grad;
  check(max_abs(loaded.forward({x, t}).toTensor(), logits) == 0.0,
        "linear classifier saves and reloads");

  gd::LinearClassifierOptions bad;
  bad.image_size = 16;
  expect_error([&] { gd::make_linear_classifier(bad); },
               "LinearClassifier: num_classes must be a positive integer, got 0");
}

void test_encoder(const std::string& pool, const fs::path& out_dir) {
  at::manual_seed(0);
  gd::ClassifierOptions o;
  o.image_size = 16;
  o.num_classes = 7;
  o.dim = 16;
  o.dim_mults = {1, 2, 2};
  o.num_res_blocks = 2;
  o.attention_resolutions = {8, 4};
  o.pool = pool;
  o.dropout = 0.1;
  torch::jit::Module m = gd::make_classifier(o);
  const std::string tag = "classifier (" + pool + " pool)";

  // Parameter layout.
  std::set<std::string> names;
  for (const auto& [n, _] : named_params(m)) names.insert(n);
  check(names.count("downs.0.blocks.1.block1.proj.weight") &&
            names.count("downs.1.attns.0.fn.fn.to_qkv.weight") &&
            !names.count("downs.0.attns.0.fn.fn.to_qkv.weight") &&
            names.count("downs.1.downsample.1.weight") && !names.count("downs.2.downsample.1.weight") &&
            names.count("mid_attn.fn.norm.g") && names.count("to_logits.weight") &&
            names.count("pool.pos_emb") == (pool == "attention" ? 1u : 0u),
        tag + " parameter names");

  at::manual_seed(1);
  const at::Tensor x = at::randn({3, 3, 16, 16});
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 10, 999}, at::kLong);

  // Gradient to the input (what guidance needs) and to every parameter.
  m.eval();
  at::Tensor xi = x.clone().requires_grad_(true);
  at::Tensor logits = m.forward({xi, t}).toTensor();
  check(logits.sizes() == at::IntArrayRef({3, 7}), tag + " logits are (B, num_classes)");
  logits.log_softmax(-1).select(1, 2).sum().backward();
  bool all = true;
  for (const auto& p : m.parameters()) all = all && p.grad().defined();
  check(xi.grad().defined() && xi.grad().abs().sum().item<double>() > 0 && all,
        tag + " backward reaches the input and every parameter");

  // Timesteps matter; float timesteps work too.
  {
    at::NoGradGuard no_grad;
    at::Tensor other = m.forward({x, t + 1}).toTensor();
    check(max_abs(other, logits.detach()) > 0, tag + " logits depend on t");
    at::Tensor as_float = m.forward({x, t.to(at::kFloat)}).toTensor();
    check(max_abs(as_float, logits.detach()) < 1e-5, tag + " accepts float timesteps");
  }

  // Dropout acts in training only.
  {
    at::NoGradGuard no_grad;
    m.train();
    at::Tensor a = m.forward({x, t}).toTensor(), b = m.forward({x, t}).toTensor();
    m.eval();
    at::Tensor c = m.forward({x, t}).toTensor(), d = m.forward({x, t}).toTensor();
    check(max_abs(a, b) > 0 && max_abs(c, d) == 0, tag + " dropout only in training");
  }

  // Save, reload, same logits; leave an input and its logits for the Python check.
  const std::string stem = "classifier_" + pool;
  m.save((out_dir / (stem + ".pt")).string());
  torch::jit::Module loaded = torch::jit::load((out_dir / (stem + ".pt")).string());
  at::NoGradGuard no_grad;
  at::Tensor again = loaded.forward({x, t}).toTensor();
  check(max_abs(again, logits.detach()) == 0.0, tag + " saves and reloads");
  check(loaded.attr("gd_kind").toStringRef() == "classifier" &&
            loaded.attr("num_classes").toInt() == 7 && loaded.attr("pool_type").toStringRef() == pool,
        tag + " attributes survive saving");
  write_f32(out_dir / (stem + ".x.f32"), x);
  write_f32(out_dir / (stem + ".logits.f32"), logits);

  if (pool == "attention") {
    expect_error([&] { m.forward({at::randn({1, 3, 32, 32}), at::tensor({1}, at::kLong)}); },
                 "Classifier: attention pooling was built for 4x4 feature maps, got 8x8");
  } else {
    at::Tensor big = m.forward({at::randn({1, 3, 32, 32}), at::tensor({1}, at::kLong)}).toTensor();
    check(big.sizes() == at::IntArrayRef({1, 7}), tag + " takes other image sizes");
  }
  expect_error([&] { m.forward({at::randn({1, 3, 18, 18}), at::tensor({1}, at::kLong)}); },
               "Classifier: image height and width must be divisible by 4, got 18x18");
}

void test_options() {
  gd::ClassifierOptions o;
  o.image_size = 16;
  o.num_classes = 3;
  expect_error([&] { auto c = o; c.image_size = -1; gd::make_classifier(c); },
               "Classifier: image_size must be a positive integer, got -1");
  expect_error([&] { auto c = o; c.num_classes = 0; gd::make_classifier(c); },
               "Classifier: num_classes must be a positive integer, got 0");
  expect_error([&] { auto c = o; c.pool = "max"; gd::make_classifier(c); },
               "Classifier: pool must be \"attention\" or \"avg\", got \"max\"");
  expect_error([&] { auto c = o; c.image_size = 18; gd::make_classifier(c); },
               "Classifier: image_size must be divisible by 4 (2^(len(dim_mults)-1)), got 18");
  expect_error([&] { auto c = o; c.dropout = 1.0; gd::make_classifier(c); },
               "Classifier: dropout must be in [0, 1), got 1");
  expect_error([&] { auto c = o; c.num_res_blocks = 0; gd::make_classifier(c); },
               "Classifier: num_res_blocks must be a positive integer, got 0");
  expect_error([&] { auto c = o; c.dim = 6; c.dim_mults = {}; gd::make_classifier(c); },
               "Classifier: dim_mults must not be empty");
  expect_error([&] { auto c = o; c.dim = 5; gd::make_classifier(c); },
               "Classifier: dim must be an even integer of at least 4, got 5");

  // Defaults build and run: 16 x 16 images get attention at the first level.
  torch::jit::Module m = gd::make_classifier(o);
  at::NoGradGuard no_grad;
  at::Tensor logits = m.forward({at::randn({2, 3, 16, 16}), at::tensor({1, 2}, at::kLong)}).toTensor();
  bool attn0 = false;
  for (const auto& p : m.named_parameters()) {
    attn0 = attn0 || p.name == "downs.0.attns.0.fn.fn.to_qkv.weight";
  }
  check(logits.sizes() == at::IntArrayRef({2, 3}) && attn0, "default classifier options");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    at::set_num_threads(1);
    // NNPACK warns on every convolution on CPUs it does not support; it is not used anyway.
    at::globalContext().setUserEnabledNNPACK(false);
    const fs::path ref = find_reference_case();
    std::error_code ec;
    const fs::path exe_dir = fs::canonical("/proc/self/exe", ec).parent_path();
    const fs::path out_dir = argc > 1 ? fs::path(argv[1]) : exe_dir / "models_test_out";
    fs::create_directories(out_dir);
    std::cout << "reference case: " << ref << "\n";
    test_linear(ref, out_dir);
    test_encoder("attention", out_dir);
    test_encoder("avg", out_dir);
    test_options();
  } catch (const std::exception& e) {
    std::cout << "FAIL exception: " << e.what() << "\n";
    return 1;
  }
  std::cout << (failures ? "FAILED " : "PASSED ") << failures << " failure(s)\n";
  return failures ? 1 : 0;
}
