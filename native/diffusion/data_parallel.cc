#include "diffusion/data_parallel.h"

#include <stdexcept>

namespace gd {

void average_gradients(const std::vector<at::Tensor>& params, const DataParallel& p, const std::vector<at::Tensor>& extra) {
  std::vector<at::Tensor> tensors;
  for (const auto& param : params) {
    if (param.grad().defined()) tensors.push_back(param.grad());
  }
  tensors.insert(tensors.end(), extra.begin(), extra.end());
  p.average(tensors);
}

std::string data_parallel_problem(const DataParallel& p) {
  if (p.world_size < 1 || p.rank < 0 || p.rank >= p.world_size) {
    return "rank " + std::to_string(p.rank) + " is not in a world of " + std::to_string(p.world_size);
  }
  if (p.active() && (!p.average || !p.broadcast)) return "data-parallel training needs the collectives of a process group";
  return "";
}

void average_gradients_or_throw(const std::vector<at::Tensor>& params, const DataParallel& p, double bad_loss, int64_t step) {
  at::NoGradGuard no_grad;
  at::Tensor bad = at::tensor({bad_loss == 0 ? 0.0 : 1.0}, at::kDouble).to(params.front().device());
  average_gradients(params, p, {bad});
  if (bad.item<double>() > 0) {
    throw std::runtime_error("the loss is not finite at step " + std::to_string(step) + " on " +
                             (bad_loss == 0 ? std::string("another rank") : "this rank (" + std::to_string(bad_loss) + ")") +
                             "; lower lr or check the data");
  }
}

}  // namespace gd
