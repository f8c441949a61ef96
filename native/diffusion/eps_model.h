// The one model interface of the fast samplers: the (guided) noise prediction at a fractional
// schedule step, as DPM-Solver's model_wrapper gives it (docs/fast-samplers.md). Learned
// variance channels are dropped; pred_x0 and pred_v outputs are converted to eps with the
// continuous alpha and sigma of that time; classifier guidance shifts eps by -sigma * grad
// (openai's condition_score), the gradient taken at the same x and model timestep; a loss on
// x0 (guidanceInput 'x0') shifts it by + scale * sigma * its gradient through the model.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/model_call.h"
#include "diffusion/schedule.h"
#include "diffusion/vp_schedule.h"
#include "diffusion/x0_guidance.h"

namespace gd {

class EpsModel {
 public:
  // schedule: the one sampled (its timestep map turns a step into the model's timestep).
  EpsModel(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance, bool cuda_graph);
  EpsModel(const EpsModel&) = delete;
  EpsModel& operator=(const EpsModel&) = delete;

  // eps for x at schedule step `step` (fractional), where x = alpha * x0 + sigma * eps.
  at::Tensor operator()(const at::Tensor& x, float step, float alpha, float sigma);

  // The model timestep of the latest call (for progress reports) and the number of calls.
  double last_timestep() const { return last_timestep_; }
  int64_t calls() const { return calls_; }
  // The sampler's step count, given to the guidance as its context's total.
  void set_total_steps(int64_t steps) { total_steps_ = steps; }
  // guidanceInput 'x0': the guidance gives a loss on the data prediction x0 = (x - sigma eps) / alpha
  // (unclipped), and eps is shifted by options.scale * sigma * d loss / dx through the model
  // (x0_guidance.h), at the calls whose schedule step is in the options' interval.
  void set_x0_guidance(const X0GuidanceOptions& options) { x0_options_ = options; }
  // Whether a call at schedule step `step` takes the gradient of a loss on x0 (guidanceInput
  // 'x0' and the step in the interval): the steps that self-recurrence repeats.
  bool x0_guides(float step) const { return guidance_ && x0_options_ && x0_options_->guides(step); }

 private:
  const Denoiser& denoiser_;
  ModelTime model_time_;
  Schedule unmapped_;  // the schedule without its map: ModelCall gets model timesteps
  ModelCall call_;
  Guidance* guidance_;
  double last_timestep_ = 0;
  int64_t calls_ = 0;
  int64_t total_steps_ = 0;
  std::optional<X0GuidanceOptions> x0_options_;
  // The unguided eps at (x, model timestep t): the model's output converted.
  at::Tensor eps(const at::Tensor& x, const at::Tensor& t, float alpha, float sigma);
};

}  // namespace gd
