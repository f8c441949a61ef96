// k-diffusion's samplers (Karras et al. 2022 and Crowson's k_diffusion/sampling.py): Euler,
// Euler ancestral, Heun and DPM++ 2M over a sigma schedule, with the model seen through
// DiscreteEpsDDPMDenoiser: x_k = x / sqrt(ab), denoised = x_k - sigma * eps(x_k * c_in, t(sigma)).
// Classifier guidance enters through eps (eps_model.h), which in these variables is
// denoised + sigma^2 * grad_{x_k} log p(y | x) (docs/fast-samplers.md).
#include <cmath>
#include <stdexcept>
#include <vector>

#include "diffusion/fast_samplers.h"
#include "diffusion/vp_schedule.h"

namespace gd {

namespace {

class KDiffusion {
 public:
  KDiffusion(FastSampling& run, const SigmaSchedule& sched) : run_(run), sched_(sched) {}

  at::Tensor denoised(const at::Tensor& x, float sigma) {
    const float c_in = 1.0f / std::sqrt(sigma * sigma + 1.0f);
    at::Tensor eps = run_.model(x * c_in, sched_.sigma_to_t(sigma), c_in, sigma * c_in);
    return x + eps * (-sigma);
  }

  static at::Tensor to_d(const at::Tensor& x, float sigma, const at::Tensor& denoised) { return (x - denoised) / sigma; }

  at::Tensor euler(at::Tensor x, const std::vector<float>& s, bool heun) {
    const int64_t total = static_cast<int64_t>(s.size()) - 1;
    for (int64_t i = 0; i < total; ++i) {
      const float sigma = s[static_cast<size_t>(i)], next = s[static_cast<size_t>(i) + 1];
      const int64_t takes = run_.takes(sched_.sigma_to_t(sigma));
      for (int64_t r = 0; r < takes; ++r) {
        if (r > 0) x = run_.retake(x, 1.0, next, 1.0, sigma);
        at::Tensor d = to_d(x, sigma, denoised(x, sigma));
        const float dt = next - sigma;
        if (!heun || next == 0) {
          x = x + d * dt;
        } else {
          at::Tensor x_2 = x + d * dt;
          at::Tensor d_2 = to_d(x_2, next, denoised(x_2, next));
          x = x + ((d + d_2) / 2) * dt;
        }
      }
      x = run_.step_done(i, total, x, 1.0, next);
    }
    return x;
  }

  at::Tensor euler_ancestral(at::Tensor x, const std::vector<float>& s) {
    const int64_t total = static_cast<int64_t>(s.size()) - 1;
    for (int64_t i = 0; i < total; ++i) {
      const float from = s[static_cast<size_t>(i)], to = s[static_cast<size_t>(i) + 1];
      // get_ancestral_step with eta 1.
      const float up = std::min(to, std::sqrt(to * to * (from * from - to * to) / (from * from)));
      const float down = std::sqrt(to * to - up * up);
      const int64_t takes = run_.takes(sched_.sigma_to_t(from));
      for (int64_t r = 0; r < takes; ++r) {
        if (r > 0) x = run_.retake(x, 1.0, to, 1.0, from);  // draws: step, renoise, step, ...
        at::Tensor den = denoised(x, from);
        x = x + to_d(x, from, den) * (down - from);
        if (to > 0) x = x + run_.noise(x.sizes()) * up;
      }
      x = run_.step_done(i, total, x, 1.0, to);
    }
    return x;
  }

  at::Tensor dpmpp_2m(at::Tensor x, const std::vector<float>& s) {
    const int64_t total = static_cast<int64_t>(s.size()) - 1;
    at::Tensor old;
    for (int64_t i = 0; i < total; ++i) {
      const float sigma = s[static_cast<size_t>(i)], next = s[static_cast<size_t>(i) + 1];
      const int64_t takes = run_.takes(sched_.sigma_to_t(sigma));
      at::Tensor den;
      // Every take uses the previous step's denoised (`old`, the history before the step); the
      // last take's denoised becomes the next step's.
      for (int64_t r = 0; r < takes; ++r) {
        if (r > 0) x = run_.retake(x, 1.0, next, 1.0, sigma);
        den = denoised(x, sigma);
        if (next == 0) {
          x = den;  // sigma_fn(inf) = 0 and expm1(-inf) = -1: the reference's update gives denoised
        } else {
          const float t = -std::log(sigma), t_next = -std::log(next), h = t_next - t;
          const float ratio = std::exp(-t_next) / std::exp(-t);
          at::Tensor target = den;
          if (old.defined()) {
            const float r_h = (t - -std::log(s[static_cast<size_t>(i) - 1])) / h;
            target = (1 + 1 / (2 * r_h)) * den - (1 / (2 * r_h)) * old;
          }
          x = ratio * x - std::expm1(-h) * target;
        }
      }
      old = den;
      x = run_.step_done(i, total, x, 1.0, next);
    }
    return x;
  }

 private:
  FastSampling& run_;
  const SigmaSchedule& sched_;
};

}  // namespace

at::Tensor sample_k_diffusion(FastSampling& run, const Schedule& schedule, at::Tensor x) {
  const SampleOptions::Fast& o = run.options.fast;
  const SigmaSchedule sched(schedule);
  if (o.steps > schedule.timesteps) {
    throw std::invalid_argument("steps (" + std::to_string(o.steps) + ") cannot exceed the schedule's " +
                                std::to_string(schedule.timesteps) + " steps");
  }
  std::vector<float> sigmas = o.karras ? sched.karras(o.steps, o.rho) : sched.model_sigmas(o.steps);
  // An edit runs the last run.edit.steps(n) of the n sigma intervals, from init + sigma * z.
  const int64_t n = static_cast<int64_t>(sigmas.size()) - 1, steps = run.edit.steps(n);
  if (steps == 0) return run.begin(run.edit.init());
  if (steps < n) {
    sigmas.erase(sigmas.begin(), sigmas.begin() + (n - steps));
    x = run.edit.start(x, 1.0, sigmas[0]);
    run.begin(x);
  } else {
    run.begin(x);  // x_T itself, unscaled, as before editing existed
    x = x * sigmas[0];
  }
  KDiffusion k(run, sched);
  switch (run.options.method) {
    case SampleOptions::Method::Euler: return k.euler(std::move(x), sigmas, /*heun=*/false);
    case SampleOptions::Method::Heun: return k.euler(std::move(x), sigmas, /*heun=*/true);
    case SampleOptions::Method::EulerAncestral: return k.euler_ancestral(std::move(x), sigmas);
    case SampleOptions::Method::Dpmpp2m: return k.dpmpp_2m(std::move(x), sigmas);
    default: throw std::invalid_argument("not a k-diffusion sampler");
  }
}

}  // namespace gd
