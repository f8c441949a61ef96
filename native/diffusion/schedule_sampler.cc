#include "diffusion/schedule_sampler.h"

#include <cmath>
#include <stdexcept>

namespace gd {

ScheduleSampler::ScheduleSampler(const std::string& name, int64_t timesteps, int64_t history, double uniform_prob)
    : timesteps_(timesteps), history_(history), uniform_prob_(uniform_prob) {
  if (name == "uniform") {
    loss_aware_ = false;
  } else if (name == "loss-second-moment") {
    loss_aware_ = true;
  } else {
    throw std::invalid_argument("scheduleSampler must be 'uniform' or 'loss-second-moment'; got '" + name + "'");
  }
  if (timesteps < 1) throw std::invalid_argument("a schedule sampler needs at least one timestep; got " + std::to_string(timesteps));
  if (history < 1) throw std::invalid_argument("historyPerTerm must be >= 1; got " + std::to_string(history));
  if (!(uniform_prob >= 0 && uniform_prob <= 1)) throw std::invalid_argument("uniformProb must be in [0, 1]");
  if (loss_aware_) {
    history_losses_.assign(static_cast<size_t>(timesteps * history), 0.0);
    counts_.assign(static_cast<size_t>(timesteps), 0);
  }
}

bool ScheduleSampler::warmed_up() const {
  if (!loss_aware_) return true;
  for (int64_t c : counts_) {
    if (c < history_) return false;
  }
  return true;
}

at::Tensor ScheduleSampler::weights() const {
  at::Tensor w = at::ones({timesteps_}, at::kDouble);
  if (!loss_aware_ || !warmed_up()) return w;
  double* out = w.data_ptr<double>();
  double total = 0;
  for (int64_t t = 0; t < timesteps_; ++t) {
    double sq = 0;
    for (int64_t k = 0; k < history_; ++k) {
      const double l = history_losses_[static_cast<size_t>(t * history_ + k)];
      sq += l * l;
    }
    out[t] = std::sqrt(sq / static_cast<double>(history_));
    total += out[t];
  }
  for (int64_t t = 0; t < timesteps_; ++t) {
    out[t] = out[t] / total * (1 - uniform_prob_) + uniform_prob_ / static_cast<double>(timesteps_);
  }
  return w;
}

std::pair<at::Tensor, at::Tensor> ScheduleSampler::sample(int64_t batch, at::Generator generator) const {
  const at::Tensor w = weights();
  const at::Tensor p = w / w.sum();
  const at::Tensor t = at::multinomial(p, batch, /*replacement=*/true, generator);
  const at::Tensor loss_weights = (1.0 / (static_cast<double>(timesteps_) * p.index_select(0, t))).to(at::kFloat);
  return {t, loss_weights};
}

void ScheduleSampler::update(const std::vector<int64_t>& ts, const std::vector<double>& losses) {
  if (ts.size() != losses.size()) throw std::invalid_argument("a schedule sampler update needs one loss per timestep");
  if (!loss_aware_) return;
  for (size_t i = 0; i < ts.size(); ++i) {
    const int64_t t = ts[i];
    if (t < 0 || t >= timesteps_) {
      throw std::invalid_argument("timestep " + std::to_string(t) + " is outside 0.." + std::to_string(timesteps_ - 1));
    }
    double* row = &history_losses_[static_cast<size_t>(t * history_)];
    int64_t& count = counts_[static_cast<size_t>(t)];
    if (count == history_) {
      for (int64_t k = 0; k + 1 < history_; ++k) row[k] = row[k + 1];
      row[history_ - 1] = losses[i];
    } else {
      row[count++] = losses[i];
    }
  }
}

}  // namespace gd
