// Which timesteps a training batch draws, and how each one's loss is weighted (openai's
// resample.py): uniform, or loss-second-moment importance sampling, which draws t with
// probability ~ sqrt(E[loss_t^2]) over the last `history` losses seen at t (mixed with a
// uniform_prob share of the uniform distribution) and weights the loss by 1 / (T p_t), so the
// objective's mean is unchanged. Until every t has `history` losses it samples uniformly.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gd {

class ScheduleSampler {
 public:
  // name: "uniform" or "loss-second-moment" (their create_named_schedule_sampler); throws
  // std::invalid_argument naming an unknown one.
  ScheduleSampler(const std::string& name, int64_t timesteps, int64_t history = 10, double uniform_prob = 0.001);

  // The unnormalised weights, float64 [T] (ones until warmed up).
  at::Tensor weights() const;
  // t int64 [batch] drawn with p = w / sum(w) from `generator`, and the loss weights
  // 1 / (T p_t), float32 [batch].
  std::pair<at::Tensor, at::Tensor> sample(int64_t batch, at::Generator generator) const;
  // Records the losses seen at these timesteps (their update_with_all_losses: per t a window of
  // the last `history`, oldest shifted out). Uniform: nothing to record.
  void update(const std::vector<int64_t>& ts, const std::vector<double>& losses);
  bool warmed_up() const;
  bool loss_aware() const { return loss_aware_; }
  int64_t timesteps() const { return timesteps_; }

 private:
  bool loss_aware_;
  int64_t timesteps_;
  int64_t history_;
  double uniform_prob_;
  std::vector<double> history_losses_;  // [T * history], row t: its window, oldest first
  std::vector<int64_t> counts_;         // losses held per t, up to history
};

}  // namespace gd
