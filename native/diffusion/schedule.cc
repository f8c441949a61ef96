#include "diffusion/schedule.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gd {

namespace {

at::Tensor linear_betas(int64_t T) {
  const double scale = 1000.0 / static_cast<double>(T);
  // T = 20 gives a last beta of exactly 1 (zero terminal SNR), which pred_x0 and pred_v sample.
  if (scale * 0.02 > 1.0) {
    std::ostringstream msg;
    msg << "betaSchedule 'linear' needs timesteps >= 20 (its last beta is 20 / timesteps, "
           "which must not exceed 1); got timesteps " << T;
    throw std::invalid_argument(msg.str());
  }
  return at::linspace(scale * 0.0001, scale * 0.02, T, at::kDouble);
}

// u = [0, 1/T, ..., 1] in float64.
at::Tensor unit_grid(int64_t T) {
  return at::linspace(0, static_cast<double>(T), T + 1, at::kDouble) / static_cast<double>(T);
}

at::Tensor betas_from_alphas_cumprod(at::Tensor ab) {
  ab = ab / ab[0];
  const int64_t n = ab.size(0);
  return at::clamp(1 - ab.slice(0, 1, n) / ab.slice(0, 0, n - 1), 0.0, 0.999);
}

at::Tensor cosine_betas(int64_t T, double s) {
  at::Tensor u = unit_grid(T);
  at::Tensor ab = at::cos((u + s) / (1 + s) * M_PI * 0.5).pow(2);
  return betas_from_alphas_cumprod(ab);
}

at::Tensor sigmoid_betas(int64_t T, double start, double end, double tau) {
  at::Tensor u = unit_grid(T);
  // The reference takes sigmoid(start/tau) and sigmoid(end/tau) of default-dtype (float32)
  // scalars and promotes them into the float64 formula. We round them the same way so the
  // buffers match the reference's, and a model trained in Python sees its own schedule:
  // computing them in float64 moves betas by up to 1.3e-5 (relative) at T = 1000 and
  // sqrt(1/ab) at t = T-1 from 1824.869 to 1824.893 (measured).
  auto sigmoid_f32 = [](double v) {
    return at::scalar_tensor(v, at::kFloat).sigmoid().to(at::kDouble);
  };
  at::Tensor v_start = sigmoid_f32(start / tau);
  at::Tensor v_end = sigmoid_f32(end / tau);
  at::Tensor ab = (-((u * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start);
  return betas_from_alphas_cumprod(ab);
}

void check_options(const ScheduleOptions& o) {
  std::ostringstream msg;
  if (o.timesteps < 1) {
    msg << "timesteps must be a positive integer; got " << o.timesteps;
  } else if (o.timesteps > kMaxTimesteps) {
    msg << "timesteps must be at most " << kMaxTimesteps << "; got " << o.timesteps;
  } else if (o.beta_schedule == BetaSchedule::Cosine && !(o.cosine_s > 0 && std::isfinite(o.cosine_s))) {
    msg << "cosine schedule offset s must be a positive number; got " << o.cosine_s;
  } else if (o.beta_schedule == BetaSchedule::Sigmoid &&
             !(o.sigmoid_tau > 0 && std::isfinite(o.sigmoid_tau))) {
    msg << "sigmoid schedule tau must be a positive number; got " << o.sigmoid_tau;
  } else if (o.beta_schedule == BetaSchedule::Sigmoid &&
             !(o.sigmoid_start < o.sigmoid_end && std::isfinite(o.sigmoid_start) &&
               std::isfinite(o.sigmoid_end))) {
    msg << "sigmoid schedule needs start < end; got start " << o.sigmoid_start << ", end "
        << o.sigmoid_end;
  } else {
    return;
  }
  throw std::invalid_argument(msg.str());
}

}  // namespace

BetaSchedule parse_beta_schedule(const std::string& name) {
  if (name == "linear") return BetaSchedule::Linear;
  if (name == "cosine") return BetaSchedule::Cosine;
  if (name == "sigmoid") return BetaSchedule::Sigmoid;
  throw std::invalid_argument("betaSchedule must be one of linear, cosine, sigmoid; got '" + name + "'");
}

const char* to_string(BetaSchedule schedule) {
  switch (schedule) {
    case BetaSchedule::Linear: return "linear";
    case BetaSchedule::Cosine: return "cosine";
    case BetaSchedule::Sigmoid: return "sigmoid";
  }
  return "?";
}

at::Tensor make_betas(const ScheduleOptions& o) {
  check_options(o);
  const int64_t T = o.timesteps;
  switch (o.beta_schedule) {
    case BetaSchedule::Linear: return linear_betas(T);
    case BetaSchedule::Cosine: return cosine_betas(T, o.cosine_s);
    case BetaSchedule::Sigmoid: return sigmoid_betas(T, o.sigmoid_start, o.sigmoid_end, o.sigmoid_tau);
  }
  return at::Tensor();
}

Schedule make_schedule(const ScheduleOptions& o) { return schedule_from_betas(make_betas(o)); }

Schedule schedule_from_betas(const at::Tensor& betas_in) {
  if (!betas_in.defined() || betas_in.dim() != 1 || betas_in.size(0) < 1) {
    throw std::invalid_argument("betas must be a non-empty 1-D tensor");
  }
  at::Tensor betas = betas_in.to(at::kDouble).contiguous();
  if (!(betas.gt(0).all().item<bool>() && betas.le(1).all().item<bool>())) {
    throw std::invalid_argument("every beta must be in (0, 1]");
  }
  const int64_t T = betas.size(0);
  at::Tensor alphas = 1. - betas;
  at::Tensor ab = at::cumprod(alphas, 0);
  at::Tensor ab_prev = at::cat({at::ones({1}, ab.options()), ab.slice(0, 0, T - 1)});
  at::Tensor posterior_variance = betas * (1. - ab_prev) / (1. - ab);
  // openai: t = 0 takes t = 1's posterior variance (0 there); a 1-step schedule has no t = 1.
  at::Tensor pv_first = T > 1 ? posterior_variance.slice(0, 1, 2) : betas.slice(0, 0, 1);
  at::Tensor pv_extended = at::cat({pv_first, posterior_variance.slice(0, 1, T)});
  at::Tensor large = at::cat({pv_first, betas.slice(0, 1, T)});

  auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat).contiguous(); };
  Schedule s;
  s.timesteps = T;
  s.betas = f32(betas);
  s.alphas_cumprod = f32(ab);
  s.alphas_cumprod_prev = f32(ab_prev);
  s.sqrt_alphas_cumprod = f32(at::sqrt(ab));
  s.sqrt_one_minus_alphas_cumprod = f32(at::sqrt(1. - ab));
  s.log_one_minus_alphas_cumprod = f32(at::log(1. - ab));
  s.sqrt_recip_alphas_cumprod = f32(at::sqrt(1. / ab));
  s.sqrt_recipm1_alphas_cumprod = f32(at::sqrt(1. / ab - 1));
  s.posterior_variance = f32(posterior_variance);
  s.posterior_log_variance_clipped = f32(at::log(posterior_variance.clamp_min(1e-20)));
  s.posterior_mean_coef1 = f32(betas * at::sqrt(ab_prev) / (1. - ab));
  s.posterior_mean_coef2 = f32((1. - ab_prev) * at::sqrt(alphas) / (1. - ab));
  s.snr = f32(ab / (1 - ab));
  s.posterior_log_variance_extended = f32(at::log(pv_extended));
  s.log_betas = f32(at::log(betas));
  s.fixed_large_variance = f32(large);
  s.fixed_large_log_variance = f32(at::log(large));
  s.zero_terminal_snr = ab[T - 1].item<double>() == 0.0;
  return s;
}

Schedule Schedule::to(at::Device device) const {
  if (betas.defined() && betas.device() == device) return *this;
  Schedule s = *this;
  for (at::Tensor* b : {&s.betas, &s.alphas_cumprod, &s.alphas_cumprod_prev, &s.sqrt_alphas_cumprod,
                        &s.sqrt_one_minus_alphas_cumprod, &s.log_one_minus_alphas_cumprod,
                        &s.sqrt_recip_alphas_cumprod, &s.sqrt_recipm1_alphas_cumprod,
                        &s.posterior_variance, &s.posterior_log_variance_clipped,
                        &s.posterior_mean_coef1, &s.posterior_mean_coef2, &s.snr,
                        &s.posterior_log_variance_extended, &s.log_betas, &s.fixed_large_variance,
                        &s.fixed_large_log_variance, &s.timestep_map.map}) {
    if (b->defined()) *b = b->to(device);
  }
  return s;
}

at::Tensor TimestepMap::apply(const at::Tensor& t) const {
  if (identity()) return t;
  at::Tensor mapped = map.defined() ? map.index_select(0, t.reshape(-1).to(at::kLong)) : t;
  return rescale > 0 ? mapped.to(at::kFloat) * rescale : mapped;
}

at::Tensor extract(const at::Tensor& buffer, const at::Tensor& t, int64_t ndim) {
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(ndim, 1)), 1);
  shape[0] = t.size(0);
  return buffer.index_select(0, t).view(shape);
}

}  // namespace gd
