#include "diffusion/eps_model.h"

namespace gd {

namespace {

Schedule without_map(Schedule s) {
  s.timestep_map = TimestepMap{};
  return s;
}

}  // namespace

EpsModel::EpsModel(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance, bool cuda_graph)
    : denoiser_(denoiser),
      model_time_(schedule.timestep_map),
      unmapped_(without_map(schedule)),
      call_(denoiser, unmapped_, cuda_graph),
      guidance_(guidance) {}

at::Tensor EpsModel::operator()(const at::Tensor& x, float step, float alpha, float sigma) {
  const float timestep = model_time_(step);
  last_timestep_ = timestep;
  at::Tensor t = at::full({x.size(0)}, timestep, at::TensorOptions().dtype(at::kFloat).device(x.device()));
  at::Tensor out = call_(x, t, at::Tensor());
  if (denoiser_.learned_variance()) out = out.narrow(1, 0, x.size(1));
  at::Tensor eps;
  switch (denoiser_.objective()) {
    case Objective::PredNoise: eps = out; break;
    case Objective::PredX0: eps = (x - alpha * out) / sigma; break;
    case Objective::PredV: eps = alpha * out + sigma * x; break;
  }
  if (guidance_) {
    // Samplers count model calls, not steps, in errors: a call is what ran the condFn.
    GuidanceContext context;
    context.eps = eps;
    context.x0 = (x - sigma * eps) / alpha;  // the fast samplers' data prediction, unclipped
    context.alpha_bar = double(alpha) * alpha;
    context.sigma = sigma;
    context.step = calls_;
    context.total = total_steps_;
    at::Tensor g = checked_gradient(*guidance_, x, t, calls_, last_timestep_, context);
    eps = eps - sigma * g;
  }
  ++calls_;
  return eps;
}

}  // namespace gd
