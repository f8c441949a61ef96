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

at::Tensor EpsModel::eps(const at::Tensor& x, const at::Tensor& t, float alpha, float sigma) {
  at::Tensor out = call_(x, t, at::Tensor());
  if (denoiser_.learned_variance()) out = out.narrow(1, 0, x.size(1));
  switch (denoiser_.objective()) {
    case Objective::PredNoise: return out;
    case Objective::PredX0: return (x - alpha * out) / sigma;
    case Objective::PredV: return alpha * out + sigma * x;
  }
  return out;
}

at::Tensor EpsModel::operator()(const at::Tensor& x, float step, float alpha, float sigma) {
  const float timestep = model_time_(step);
  last_timestep_ = timestep;
  at::Tensor t = at::full({x.size(0)}, timestep, at::TensorOptions().dtype(at::kFloat).device(x.device()));
  // Samplers count model calls, not steps, in errors: a call is what ran the condFn.
  GuidanceContext context;
  context.alpha_bar = double(alpha) * alpha;
  context.sigma = sigma;
  context.step = calls_;
  context.total = total_steps_;
  at::Tensor e;
  if (guidance_ && x0_options_) {
    if (x0_guides(step)) {
      auto predict = [&](const at::Tensor& x_in) {
        Prediction p;
        p.eps = eps(x_in, t, alpha, sigma);
        p.x0 = (x_in - sigma * p.eps) / alpha;  // the fast samplers' data prediction, unclipped
        return p;
      };
      const X0Gradient g = x0_loss_gradient(*guidance_, x, t, last_timestep_, predict, x0_options_->gradient_norm, context);
      e = x0_guided_eps(g, x0_options_->scale, sigma);
    } else {
      e = eps(x, t, alpha, sigma);
    }
  } else {
    e = eps(x, t, alpha, sigma);
    if (guidance_) {
      context.eps = e;
      context.x0 = (x - sigma * e) / alpha;  // the fast samplers' data prediction, unclipped
      at::Tensor g = checked_gradient(*guidance_, x, t, calls_, last_timestep_, context);
      e = e - sigma * g;
    }
  }
  ++calls_;
  return e;
}

}  // namespace gd
