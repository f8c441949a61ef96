#include "diffusion/openai_losses.h"

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "diffusion/likelihood.h"
#include "diffusion/training.h"

namespace gd {

namespace {

// Mean over every dimension but the batch (their mean_flat).
at::Tensor mean_per_sample(const at::Tensor& x) {
  std::vector<int64_t> dims(static_cast<size_t>(x.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  return dims.empty() ? x : x.mean(dims);
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  if (name == "mse") return LossType::Mse;
  if (name == "rescaledMse" || name == "rescaled_mse") return LossType::RescaledMse;
  if (name == "kl") return LossType::Kl;
  if (name == "rescaledKl" || name == "rescaled_kl") return LossType::RescaledKl;
  throw std::invalid_argument("lossType must be one of mse, rescaledMse, kl, rescaledKl; got '" + name + "'");
}

const char* to_string(LossType type) {
  switch (type) {
    case LossType::Mse: return "mse";
    case LossType::RescaledMse: return "rescaledMse";
    case LossType::Kl: return "kl";
    case LossType::RescaledKl: return "rescaledKl";
  }
  return "?";
}

at::Tensor vb_terms_bpd(const Denoiser& denoiser, const Schedule& s, const at::Tensor& x0, const at::Tensor& x_t,
                        const at::Tensor& t, const at::Tensor& model_output) {
  const int64_t nd = x_t.dim();
  const at::Tensor true_mean = posterior_mean(s, x0, x_t, t);
  const at::Tensor true_log_variance = extract(s.posterior_log_variance_extended, t, nd);
  const Prediction p = denoiser.prediction(s, x_t, t, model_output, /*clip=*/false);
  const at::Tensor mean = posterior_mean(s, p.x0, x_t, t);
  const at::Tensor log_variance = p.log_variance.expand_as(x_t);
  const double ln2 = std::log(2.0);
  const at::Tensor kl = mean_per_sample(normal_kl(true_mean, true_log_variance, mean, log_variance)) / ln2;
  const at::Tensor nll =
      mean_per_sample(-discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)) / ln2;
  return at::where(t == 0, nll, kl);
}

LossTerms training_losses(const Denoiser& denoiser, const Schedule& schedule, const at::Tensor& x0,
                          const at::Tensor& t, const at::Tensor& noise, LossType type) {
  check_training_batch(x0, t);
  const Schedule s = schedule.to(x0.device());
  const at::Tensor n = training_noise(noise, x0);
  const at::Tensor x_t = q_sample(s, x0, t, n);
  const at::Tensor out = denoiser.forward(x_t, s.timestep_map.apply(t));
  const double steps = static_cast<double>(s.timesteps);

  LossTerms terms;
  if (type == LossType::Kl || type == LossType::RescaledKl) {
    terms.loss = vb_terms_bpd(denoiser, s, x0, x_t, t, out);
    if (type == LossType::RescaledKl) terms.loss = terms.loss * steps;
    return terms;
  }
  at::Tensor mean_out = out;
  if (denoiser.learned_variance()) {
    const int64_t c = x_t.size(1);
    mean_out = out.narrow(1, 0, c);
    // The bound trains the variance only: its gradient does not reach the mean half.
    const at::Tensor frozen = at::cat({mean_out.detach(), out.narrow(1, c, c)}, 1);
    terms.vb = vb_terms_bpd(denoiser, s, x0, x_t, t, frozen);
    // Their factor 1/1000 keeps the bound from swamping the MSE (T/1000: 1 at T = 1000).
    if (type == LossType::RescaledMse) terms.vb = terms.vb * (steps / 1000.0);
  }
  at::Tensor target;
  switch (denoiser.objective()) {
    case Objective::PredNoise: target = n; break;
    case Objective::PredX0: target = x0; break;
    case Objective::PredV: target = predict_v(s, x0, t, n); break;
  }
  terms.mse = mean_per_sample((target - mean_out).pow(2));
  terms.loss = terms.vb.defined() ? terms.mse + terms.vb : terms.mse;
  return terms;
}

}  // namespace gd
