// Noise schedules and every buffer derived from them (docs/diffusion-math.md, "Schedules").
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace gd {

enum class BetaSchedule { Linear, Cosine, Sigmoid };

// Throws std::invalid_argument: "betaSchedule must be one of linear, cosine, sigmoid; got 'foo'".
BetaSchedule parse_beta_schedule(const std::string& name);
const char* to_string(BetaSchedule schedule);

// The most timesteps a schedule may have: its buffers, and the work of building it (or of
// respacing it), grow with T (1e8 took > 60 s and 7 GB). GaussianDiffusion's MAX_TIMESTEPS
// (lib/diffusion.ts).
constexpr int64_t kMaxTimesteps = 100000;

struct ScheduleOptions {
  int64_t timesteps = 1000;
  BetaSchedule beta_schedule = BetaSchedule::Sigmoid;  // the reference's default
  double cosine_s = 0.008;
  double sigmoid_start = -3;
  double sigmoid_end = 3;
  double sigmoid_tau = 1;
};

// The timesteps a model (and a classifier) sees for a schedule's step index t: the base
// timestep a respaced step stands for, as float t * 1000 / base T when rescaled (openai's
// _WrappedModel and _scale_timesteps). Default: t itself.
struct TimestepMap {
  at::Tensor map;        // int64 [T]: base timestep of each step; undefined: the identity
  double rescale = 0;    // > 0: the model sees float(map[t]) * rescale
  bool identity() const { return !map.defined() && rescale == 0; }
  at::Tensor apply(const at::Tensor& t) const;
};

// All buffers are 1-D float32 tensors of length `timesteps`, computed in float64 and then
// rounded, as the reference registers them.
struct Schedule {
  int64_t timesteps = 0;
  at::Tensor betas;
  at::Tensor alphas_cumprod;                  // ab_t
  at::Tensor alphas_cumprod_prev;             // [1, ab_0 .. ab_{T-2}]
  at::Tensor sqrt_alphas_cumprod;             // sqrt(ab)
  at::Tensor sqrt_one_minus_alphas_cumprod;   // sqrt(1 - ab)
  at::Tensor log_one_minus_alphas_cumprod;    // log(1 - ab)
  at::Tensor sqrt_recip_alphas_cumprod;       // sqrt(1 / ab)
  at::Tensor sqrt_recipm1_alphas_cumprod;     // sqrt(1 / ab - 1)
  at::Tensor posterior_variance;              // betas * (1 - ab_prev) / (1 - ab)
  at::Tensor posterior_log_variance_clipped;  // log(max(posterior_variance, 1e-20))
  at::Tensor posterior_mean_coef1;            // betas * sqrt(ab_prev) / (1 - ab)
  at::Tensor posterior_mean_coef2;            // (1 - ab_prev) * sqrt(alphas) / (1 - ab)
  at::Tensor snr;                             // ab / (1 - ab), for the loss weights
  // openai/guided-diffusion's variances: its log posterior variance, which gives t = 0 the
  // value of t = 1 instead of clamping log(0) (the lower end of a learned range), log(betas)
  // (the upper end), and the fixed large variance [posterior_variance[1], betas[1:]].
  at::Tensor posterior_log_variance_extended;
  at::Tensor log_betas;
  at::Tensor fixed_large_variance;
  at::Tensor fixed_large_log_variance;
  // ab_{T-1} == 0 (the last beta is 1): x0 cannot be recovered from eps at the last step.
  bool zero_terminal_snr = false;
  TimestepMap timestep_map;

  // A copy with every buffer on `device` (the same tensors when already there).
  Schedule to(at::Device device) const;
  at::Device device() const { return betas.device(); }
};

// Throws std::invalid_argument naming the bad option (timesteps < 1, sigmoidTau == 0, ...).
Schedule make_schedule(const ScheduleOptions& options = {});

// The betas of make_schedule in float64 (respacing derives its betas from these).
at::Tensor make_betas(const ScheduleOptions& options = {});

// The schedule of 1-D float64 betas, each in (0, 1]; throws std::invalid_argument otherwise.
Schedule schedule_from_betas(const at::Tensor& betas);

// buffer[t] shaped [B, 1, ..., 1] (ndim dims in all) to broadcast against a batch of images.
at::Tensor extract(const at::Tensor& buffer, const at::Tensor& t, int64_t ndim);

}  // namespace gd
