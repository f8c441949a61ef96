// The native sampler and classifier guidance against the Python reference's numbers
// (test/fixtures/reference-case, see its README). Run from the repository root, or pass the
// root as the first argument. Exit status 0 when every check holds.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"

namespace {

std::string root = ".";
int failures = 0;

at::Tensor read_f32(const std::string& name, std::vector<int64_t> shape) {
  const std::string path = root + "/test/fixtures/reference-case/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  at::Tensor t = at::empty(shape, at::kFloat);
  const auto bytes = static_cast<std::streamsize>(t.numel() * 4);
  in.read(static_cast<char*>(t.data_ptr()), bytes);
  if (in.gcount() != bytes || in.peek() != std::char_traits<char>::eof()) {
    throw std::runtime_error(path + " does not hold " + std::to_string(t.numel()) + " floats");
  }
  return t;
}

void check(const char* what, const at::Tensor& got, const at::Tensor& want, double tol) {
  double err = INFINITY;
  if (got.sizes() == want.sizes()) err = (got - want).abs().max().item<double>();
  const bool ok = err < tol;
  std::printf("%s %-44s max abs err %.3e (tolerance %.0e)\n", ok ? "ok  " : "FAIL", what, err, tol);
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) root = argv[1];
  try {
    at::set_num_threads(1);
    // NNPACK cannot start on CPUs without AVX2 and says so on every convolution; the
    // fallback it takes is what this turns on directly (same numbers, quiet log).
    at::globalContext().setUserEnabledNNPACK(false);
    const std::vector<int64_t> shape{2, 3, 16, 16};
    torch::jit::Module unet = torch::jit::load(root + "/test/fixtures/reference-case/unet_traced.pt");
    torch::jit::Module classifier = torch::jit::load(root + "/test/fixtures/reference-case/classifier.pt");
    unet.eval();
    classifier.eval();
    const at::Tensor x = read_f32("forward_x.f32", shape);
    const at::Tensor t = at::tensor(std::vector<int64_t>{3, 17});
    const at::Tensor y = at::tensor(std::vector<int64_t>{1, 3});

    gd::Denoiser denoiser(unet, gd::Objective::PredNoise);
    {
      at::NoGradGuard no_grad;
      check("unet forward vs forward_out", denoiser.forward(x, t), read_f32("forward_out.f32", shape), 1e-5);
    }

    gd::ClassifierGuidance guidance(classifier, y, 2.5);
    {
      at::NoGradGuard no_grad;  // as the samplers call it
      check("classifier guidance vs cond_grad", guidance.gradient(x, t), read_f32("cond_grad.f32", shape), 1e-5);
    }

    gd::ScheduleOptions so;
    so.timesteps = 20;
    so.beta_schedule = gd::BetaSchedule::Sigmoid;
    const gd::Schedule schedule = gd::make_schedule(so);
    gd::SampleOptions opts;
    opts.shape = shape;
    opts.sampling_timesteps = 20;
    int64_t steps_seen = 0;
    opts.on_step = [&](int64_t step, int64_t total, int64_t tv) {
      if (step != steps_seen || total != 20 || tv != 19 - step) ++failures;
      ++steps_seen;
    };
    const at::Tensor want = read_f32("ddpm_guided.f32", shape);

    at::manual_seed(42);
    check("guided 20-step sample vs ddpm_guided", gd::sample(denoiser, schedule, &guidance, opts), want, 1e-4);
    if (steps_seen != 20) {
      std::printf("FAIL on_step was called %lld times; expected 20\n", static_cast<long long>(steps_seen));
      ++failures;
    }

    // The same draws from a generator of our own instead of the global one.
    opts.on_step = nullptr;
    opts.generator = at::make_generator<at::CPUGeneratorImpl>(42);
    check("same, from a seeded at::Generator", gd::sample(denoiser, schedule, &guidance, opts), want, 1e-4);
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf(failures ? "%d check(s) failed\n" : "all reference checks passed\n", failures);
  return failures ? 1 : 0;
}
