#include "diffusion/data_parallel.h"

namespace gd {

void average_gradients(const std::vector<at::Tensor>& params, const DataParallel& p, const std::vector<at::Tensor>& extra) {
  std::vector<at::Tensor> tensors;
  for (const auto& param : params) {
    if (param.grad().defined()) tensors.push_back(param.grad());
  }
  tensors.insert(tensors.end(), extra.begin(), extra.end());
  p.average(tensors);
}

}  // namespace gd
