// Two continuous views of one discrete schedule, for the fast samplers
// (docs/fast-samplers.md): DPM-Solver's NoiseScheduleVP('discrete') (log alpha interpolated
// piecewise linearly in t in (0, 1]) and k-diffusion's DiscreteSchedule (log sigma
// interpolated in a fractional step index). Both map back to the model's own timestep, which
// for these samplers is fractional.
//
// Scalars are float32, computed as the references compute them on float32 tensors of one
// element: their samplers step all images with one time, so the coefficients are host values.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "diffusion/schedule.h"

namespace gd {

// y at x on the polyline through (xs, ys) (xs ascending), extended past both ends by the end
// segments: DPM-Solver's interpolate_fn.
float interpolate(float x, const std::vector<float>& xs, const std::vector<float>& ys);

class VpSchedule {
 public:
  // From the schedule's alphas_cumprod. clip_alpha drops the steps whose half-log-SNR is below
  // -5.1 (DPM-Solver's numerical_clip_alpha, which trims the cosine schedule's last steps);
  // UniPC's copy of the class does not.
  VpSchedule(const Schedule& schedule, bool clip_alpha);

  float log_alpha(float t) const;  // marginal_log_mean_coeff
  float alpha(float t) const;
  float sigma(float t) const;      // marginal_std
  float lambda(float t) const;     // log alpha - log sigma
  float inverse_lambda(float lambda) const;

  // The samplers' time range: [1 / total_n, 1].
  float t_end() const { return 1.0f / static_cast<float>(total_n_); }
  int64_t total_n() const { return total_n_; }

  // The schedule step (fractional) the model is evaluated at for time t: DPM-Solver's
  // (t - 1 / N) * 1000 for a 1000-step schedule, (t - 1 / N) * base steps in general.
  float step_index(float t) const;

  // The time steps from t_start down to t_end, n intervals: DPM-Solver's get_time_steps for
  // 'time_uniform', 'logSNR', 'time_quadratic'.
  std::vector<float> time_steps(const std::string& skip_type, float t_start, float t_end, int64_t n) const;

 private:
  std::vector<float> t_array_;
  std::vector<float> log_alpha_array_;
  // Both reversed: inverse_lambda interpolates t over ascending log alpha.
  std::vector<float> log_alpha_ascending_;
  std::vector<float> t_descending_;
  int64_t total_n_ = 0;
  int64_t base_n_ = 0;
};

// k-diffusion's sigma view: sigma_k = sqrt((1 - ab_k) / ab_k) per step k.
class SigmaSchedule {
 public:
  explicit SigmaSchedule(const Schedule& schedule);

  float sigma_min() const { return sigmas_.front(); }
  float sigma_max() const { return sigmas_.back(); }
  // The fractional step of a sigma (log-sigma interpolation, not quantized) and back.
  float sigma_to_t(float sigma) const;
  float t_to_sigma(float t) const;

  // n sigmas from sigma_max down, then 0: get_sigmas_karras(n, sigma_min, sigma_max, rho) or
  // the model's own (get_sigmas(n): n steps evenly spaced in t, mapped to sigma).
  std::vector<float> karras(int64_t n, double rho) const;
  std::vector<float> model_sigmas(int64_t n) const;

 private:
  std::vector<float> sigmas_;
  std::vector<float> log_sigmas_;
};

// The model's timestep for a fractional schedule step: the identity, or for a respaced
// schedule its timestep map interpolated between neighbouring kept steps (then rescaled, as
// openai's rescale_timesteps). The map is read to the host once, not at every model call.
class ModelTime {
 public:
  explicit ModelTime(const TimestepMap& map);
  float operator()(float step) const;

 private:
  std::vector<float> map_;  // empty: the identity
  double rescale_ = 0;
};

}  // namespace gd
