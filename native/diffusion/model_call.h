// The model call of one sampling run, optionally replayed from a CUDA graph.
//
// A small Unet step on a GPU is launch-bound: hundreds of kernel launches of a few
// microseconds of work each. With graphs on and x on CUDA, the first calls run eagerly (they
// warm up the JIT's profiling executor, its fusers and cuBLAS), the next one captures the
// forward into a CUDA graph, replays it once and checks the replay against an eager call, and
// every later call copies its inputs into the graph's static tensors and replays it: one launch.
// A change of shape, dtype or self-conditioning input captures again. A model that cannot be
// captured (a host sync inside, say `if bool(t.max() > 500)`) or whose replay disagrees falls
// back to eager calls for the rest of the run. Without CUDA in the build this is forward().
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"

namespace gd {

// Process-wide counts, for tests and for users checking that graphs are in use.
struct CudaGraphStats {
  int64_t captures = 0;   // graphs captured and verified
  int64_t replays = 0;    // model calls served by a replay
  int64_t fallbacks = 0;  // captures abandoned (capture failed or replay disagreed)
};
CudaGraphStats cuda_graph_stats();

// Whether this build can capture CUDA graphs (LibTorch with CUDA).
bool cuda_graphs_built();

class ModelCall {
 public:
  // The schedule's timestep_map turns each step index into the model's timesteps.
  ModelCall(const Denoiser& denoiser, const Schedule& schedule, bool cuda_graph);
  ~ModelCall();
  ModelCall(const ModelCall&) = delete;
  ModelCall& operator=(const ModelCall&) = delete;

  // denoiser.forward(x, mapped t, x_self_cond), or a replay of it; t is the step index.
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond);

 private:
  struct Graph;
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond);
  const Denoiser& denoiser_;
  const Schedule& schedule_;
  std::unique_ptr<Graph> graph_;  // null: every call is eager
};

}  // namespace gd
