// The fast samplers: DPM-Solver(++), UniPC and k-diffusion's Euler, Euler ancestral, Heun and
// DPM++ 2M (docs/fast-samplers.md). Each is one function over the guided eps model of
// eps_model.h; they share the step report and the noise source with the DDPM samplers.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "diffusion/editing.h"
#include "diffusion/eps_model.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"

namespace gd {

struct FastSampling {
  EpsModel& model;
  const SampleOptions& options;
  std::function<at::Tensor(at::IntArrayRef)> noise;  // standard normal, in the reference's order
  const Edit& edit;                                   // SDEdit's start, RePaint's known region
  std::vector<at::Tensor> trajectory;                 // x after each step, with return_all_timesteps

  // The sampler's start x (x_T, or an edit's start): the trajectory's first entry. Returns x.
  at::Tensor begin(const at::Tensor& x);
  // After each solver step, x at its new time (x = alpha * x0 + sigma * eps there): the known
  // region replaced (with a mask), the trajectory and options.on_step (step from 0, the model
  // timestep of the step's last model call). Returns x as the sampler goes on with it.
  at::Tensor step_done(int64_t step, int64_t total, const at::Tensor& x, double alpha, double sigma);

  // Universal Guidance's self-recurrence (guidanceInput 'x0' with recurrence k; fast_recurrence.cc):
  // how many times the step that starts at schedule step `step` is taken: k when the guidance
  // interval holds that step, else 1. Each take is the sampler's step from the history as it
  // was before the step (docs/guidance.md); only the last take's values enter the history.
  int64_t takes(float step) const;
  // Between two takes of a step from level s to level t (x = alpha * x0 + sigma * eps at each):
  // x_t's known region replaced (with a mask), then x_t renoised back to s by q(x_s | x_t) with a
  // draw from the sampler's noise. Returns x_s.
  at::Tensor retake(const at::Tensor& x_t, double alpha_t, double sigma_t, double alpha_s, double sigma_s);
};

// The last `order` times and model values of a multistep solver (DPM-Solver, UniPC), oldest first.
struct MultistepHistory {
  int64_t order;
  std::deque<float> t;
  std::deque<at::Tensor> m;

  // The order of step `step` (1-based) of `steps`: the warm-up steps take what the history
  // holds; with lower_final the last steps drop towards order 1.
  int64_t step_order(int64_t step, int64_t steps, bool lower_final) const {
    if (step < order) return step;
    return lower_final ? std::min(order, steps + 1 - step) : order;
  }
  // After a step to t_new: the oldest pair leaves when the history is full; the caller then
  // appends the model value at t_new (unless it was the last step).
  void advance(float t_new) {
    if (static_cast<int64_t>(t.size()) == order) {
      t.pop_front();
      m.pop_front();
    }
    t.push_back(t_new);
  }
};

// Each starts from x_T (standard normal) and returns x_0 (k-diffusion scales x_T by sigma_max
// itself). With run.edit editing, each picks the start of the last edit.steps(n) of its n steps
// on its own time grid and noises init there from x_T's draw (DPM-Solver's and UniPC's t_start,
// k-diffusion's sigma tail). Throws std::invalid_argument for options the sampler cannot run.
at::Tensor sample_dpm_solver(FastSampling& run, const Schedule& schedule, at::Tensor x);
at::Tensor sample_unipc(FastSampling& run, const Schedule& schedule, at::Tensor x);
at::Tensor sample_k_diffusion(FastSampling& run, const Schedule& schedule, at::Tensor x);

// Imagen's dynamic thresholding as DPM-Solver applies it to x0: s = max(quantile(|x0|, ratio)
// per image, max_val); x0 clamped to [-s, s] and divided by s.
at::Tensor dynamic_threshold(const at::Tensor& x0, double ratio, double max_val);

}  // namespace gd
