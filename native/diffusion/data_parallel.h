// Data-parallel training's collectives, as the trainers see them: plain functions that a
// process group provides (native/js binds them to the default group), so the trainers stay
// free of distributed/ and testable with a world of one. Both trainers (trainer.h's and
// openai_train_step.h's) average their gradients through average_gradients.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace gd {

struct DataParallel {
  int64_t rank = 0;
  int64_t world_size = 1;
  // Averages the tensors over the ranks, in place. Needed when world_size > 1.
  std::function<void(const std::vector<at::Tensor>&)> average;
  // Copies rank 0's tensors into every rank's, in place. Needed when world_size > 1.
  std::function<void(const std::vector<at::Tensor>&)> broadcast;
  // Throws naming the first of these named numbers that differs between the ranks. Needed
  // when world_size > 1.
  std::function<void(const std::vector<std::pair<std::string, double>>&)> agree;

  bool active() const { return world_size > 1; }
};

// After backward on every rank: each parameter's gradient becomes the mean of the ranks'
// (DDP's all-reduce mean), `extra` tensors averaged in the same call. Gradients left undefined
// are undefined on every rank (the ranks run the same graph) and stay so.
void average_gradients(const std::vector<at::Tensor>& params, const DataParallel& p, const std::vector<at::Tensor>& extra = {});

// Why p cannot train (empty when it can): this rank outside the world, or a world of several
// ranks without the collectives of a process group.
std::string data_parallel_problem(const DataParallel& p);

// The openai trainers' step: average_gradients, the ranks told in the same call whether any saw
// a non-finite loss (bad_loss: this rank's, 0 when finite), and then every rank throws, naming
// the step (1-based) and where: no rank is left waiting in a collective for another.
void average_gradients_or_throw(const std::vector<at::Tensor>& params, const DataParallel& p, double bad_loss, int64_t step);

}  // namespace gd
