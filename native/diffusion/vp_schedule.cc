#include "diffusion/vp_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gd {

namespace {

std::vector<float> to_floats(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// torch.linspace in float32 with the endpoints as Python passes them (doubles).
std::vector<float> linspace(double start, double end, int64_t n) {
  return to_floats(at::linspace(start, end, n, at::kFloat));
}

float logaddexp0(float y) {  // log(1 + e^y), as torch.logaddexp(0, y)
  const float m = std::max(0.0f, y);
  return m + std::log1p(std::exp(-std::fabs(y)));
}

}  // namespace

float interpolate(float x, const std::vector<float>& xs, const std::vector<float>& ys) {
  const size_t k = xs.size();
  // Segment [i, i + 1]: the one holding x, or the end segment x lies beyond. A knot belongs
  // to the segment on its left, as in the reference (its stable sort puts x before an equal knot).
  size_t i = static_cast<size_t>(std::lower_bound(xs.begin(), xs.end(), x) - xs.begin());
  i = i == 0 ? 0 : std::min(i - 1, k - 2);
  return ys[i] + (x - xs[i]) * (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]);
}

VpSchedule::VpSchedule(const Schedule& schedule, bool clip_alpha) : base_n_(schedule.timesteps) {
  at::Tensor log_alphas = 0.5 * schedule.alphas_cumprod.detach().to(at::kCPU, at::kDouble).log();
  if (clip_alpha) {
    at::Tensor log_sigmas = 0.5 * (1 - (2 * log_alphas).exp()).log();
    at::Tensor lambdas = (log_alphas - log_sigmas).flip(0);  // ascending
    const int64_t clipped = (lambdas < -5.1).sum().item<int64_t>();
    if (clipped > 0) log_alphas = log_alphas.slice(0, 0, log_alphas.size(0) - clipped);
  }
  total_n_ = log_alphas.size(0);
  if (!at::isfinite(log_alphas).all().item<bool>()) {
    throw std::invalid_argument(
        "this sampler cannot use a schedule whose last alphas_cumprod is 0 (zero terminal SNR): its log-SNR is "
        "infinite; use 'dpm-solver++' (which clips it) or an ancestral sampler");
  }
  if (total_n_ < 2) {
    throw std::invalid_argument("the fast samplers need a schedule of at least 2 steps with a finite log-SNR; this one has " +
                                std::to_string(total_n_));
  }
  log_alpha_array_ = to_floats(log_alphas);
  t_array_ = linspace(0.0, 1.0, total_n_ + 1);
  t_array_.erase(t_array_.begin());
  log_alpha_ascending_.assign(log_alpha_array_.rbegin(), log_alpha_array_.rend());
  t_descending_.assign(t_array_.rbegin(), t_array_.rend());
}

float VpSchedule::log_alpha(float t) const { return interpolate(t, t_array_, log_alpha_array_); }

float VpSchedule::alpha(float t) const { return std::exp(log_alpha(t)); }

float VpSchedule::sigma(float t) const { return std::sqrt(1.0f - std::exp(2.0f * log_alpha(t))); }

float VpSchedule::lambda(float t) const {
  const float la = log_alpha(t);
  return la - 0.5f * std::log(1.0f - std::exp(2.0f * la));
}

float VpSchedule::inverse_lambda(float lambda) const {
  const float la = -0.5f * logaddexp0(-2.0f * lambda);
  return interpolate(la, log_alpha_ascending_, t_descending_);
}

float VpSchedule::step_index(float t) const {
  return (t - static_cast<float>(1.0 / static_cast<double>(total_n_))) * static_cast<float>(base_n_);
}

std::vector<float> VpSchedule::time_steps(const std::string& skip_type, float t_start, float t_end, int64_t n) const {
  if (skip_type == "time_uniform") return linspace(t_start, t_end, n + 1);
  if (skip_type == "time_quadratic") {
    std::vector<float> t = linspace(std::sqrt(static_cast<double>(t_start)), std::sqrt(static_cast<double>(t_end)), n + 1);
    for (float& v : t) v = v * v;
    return t;
  }
  if (skip_type == "logSNR") {
    std::vector<float> lambdas = linspace(lambda(t_start), lambda(t_end), n + 1);
    for (float& v : lambdas) v = inverse_lambda(v);
    return lambdas;
  }
  throw std::invalid_argument("skipType must be one of time_uniform, logSNR, time_quadratic; got '" + skip_type + "'");
}

SigmaSchedule::SigmaSchedule(const Schedule& schedule) {
  at::Tensor ab = schedule.alphas_cumprod.detach().to(at::kCPU, at::kFloat);
  at::Tensor sigmas = ((1 - ab) / ab).pow(0.5);
  if (!at::isfinite(sigmas).all().item<bool>() || sigmas.size(0) < 2) {
    throw std::invalid_argument(
        "the k-diffusion samplers need a schedule of at least 2 steps whose alphas_cumprod stays above 0 "
        "(a zero-terminal-SNR schedule has an infinite sigma_max)");
  }
  sigmas_ = to_floats(sigmas);
  log_sigmas_ = to_floats(sigmas.log());
}

float SigmaSchedule::sigma_to_t(float sigma) const {
  const float log_sigma = std::log(sigma);
  const int64_t k = static_cast<int64_t>(log_sigmas_.size());
  int64_t low = 0;
  for (int64_t i = 0; i < k; ++i) {
    if (log_sigma - log_sigmas_[static_cast<size_t>(i)] >= 0) low = i;
  }
  low = std::min(low, k - 2);
  const float lo = log_sigmas_[static_cast<size_t>(low)], hi = log_sigmas_[static_cast<size_t>(low + 1)];
  const float w = std::clamp((lo - log_sigma) / (lo - hi), 0.0f, 1.0f);
  return (1 - w) * static_cast<float>(low) + w * static_cast<float>(low + 1);
}

float SigmaSchedule::t_to_sigma(float t) const {
  const float low = std::floor(t), high = std::ceil(t), w = t - low;
  const float ls = (1 - w) * log_sigmas_[static_cast<size_t>(low)] + w * log_sigmas_[static_cast<size_t>(high)];
  return std::exp(ls);
}

std::vector<float> SigmaSchedule::karras(int64_t n, double rho) const {
  std::vector<float> ramp = linspace(0.0, 1.0, n);
  // The reference takes sigma_min and sigma_max as Python floats: these two powers are float64.
  const float min_inv_rho = static_cast<float>(std::pow(static_cast<double>(sigma_min()), 1.0 / rho));
  const float max_inv_rho = static_cast<float>(std::pow(static_cast<double>(sigma_max()), 1.0 / rho));
  std::vector<float> out;
  for (float r : ramp) out.push_back(std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), static_cast<float>(rho)));
  out.push_back(0.0f);
  return out;
}

std::vector<float> SigmaSchedule::model_sigmas(int64_t n) const {
  std::vector<float> t = linspace(static_cast<double>(sigmas_.size() - 1), 0.0, n);
  std::vector<float> out;
  for (float v : t) out.push_back(t_to_sigma(v));
  out.push_back(0.0f);
  return out;
}

ModelTime::ModelTime(const TimestepMap& map) : rescale_(map.rescale) {
  if (map.map.defined()) map_ = to_floats(map.map);
}

float ModelTime::operator()(float step) const {
  float value = step;
  if (!map_.empty()) {
    const int64_t n = static_cast<int64_t>(map_.size());
    const int64_t low = std::clamp<int64_t>(static_cast<int64_t>(std::floor(step)), 0, n - 1);
    const int64_t high = std::min<int64_t>(low + 1, n - 1);
    const float w = step - static_cast<float>(low);
    value = (1 - w) * map_[static_cast<size_t>(low)] + w * map_[static_cast<size_t>(high)];
  }
  if (rescale_ > 0) value = value * static_cast<float>(rescale_);
  return value;
}

}  // namespace gd
