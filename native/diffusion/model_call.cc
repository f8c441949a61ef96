#include "diffusion/model_call.h"

#include <atomic>
#include <vector>

#ifdef GD_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace gd {

namespace {

std::atomic<int64_t> g_captures{0};
std::atomic<int64_t> g_replays{0};
std::atomic<int64_t> g_fallbacks{0};

}  // namespace

CudaGraphStats cuda_graph_stats() {
  CudaGraphStats s;
  s.captures = g_captures.load();
  s.replays = g_replays.load();
  s.fallbacks = g_fallbacks.load();
  return s;
}

#ifdef GD_WITH_CUDA

bool cuda_graphs_built() { return true; }

namespace {

// Eager calls before a capture: TorchScript's profiling executor optimizes the graph on its
// second call and the fuser compiles its kernels on the first run of the optimized graph;
// neither may happen during a capture.
constexpr int kEagerCallsBeforeCapture = 3;

// What a graph is specialised to: for each input, defined?, sizes, dtype, device.
std::vector<int64_t> signature(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) {
  std::vector<int64_t> sig;
  for (const at::Tensor* a : {&x, &t, &x_self_cond}) {
    sig.push_back(a->defined());
    if (!a->defined()) continue;
    sig.push_back(a->dim());
    for (int64_t d : a->sizes()) sig.push_back(d);
    sig.push_back(static_cast<int64_t>(a->scalar_type()));
    sig.push_back(a->device().index());
  }
  return sig;
}

// After a capture that threw: end the stream's capture if it is still on and stop routing the
// stream's allocations to the graph's pool (capture_end skips both when it fails early).
void abandon_capture(const c10::cuda::CUDAStream& stream, decltype(at::cuda::graph_pool_handle()) pool) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &partial) == cudaSuccess && partial) cudaGraphDestroy(partial);
  }
  (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(stream.device_index(), pool);
  } catch (const std::exception&) {
    // capture_end got as far as ending it itself
  }
}

}  // namespace

struct ModelCall::Graph {
  std::vector<int64_t> signature;
  int eager_calls = 0;
  bool given_up = false;  // for the rest of the run: this model does not replay correctly
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  at::Tensor x, t, x_self_cond, out;  // the graph's static inputs and output

  void reset() {
    out = at::Tensor();
    graph.reset();  // releases the pool's memory once `out` is gone too
    x = t = x_self_cond = at::Tensor();
    eager_calls = 0;
  }

  // Captures the forward on a side stream, replays it once and compares with an eager call,
  // whose output it returns. On any failure the run goes on eagerly.
  at::Tensor capture(const Denoiser& denoiser, const at::Tensor& x_in, const at::Tensor& t_in,
                     const at::Tensor& x_self_cond_in) {
    const c10::cuda::CUDAGuard device_guard(x_in.device());
    x = x_in.clone();
    t = t_in.clone();
    x_self_cond = x_self_cond_in.defined() ? x_self_cond_in.clone() : at::Tensor();
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream();
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    current.synchronize();  // the static inputs are ready before the side stream reads them (once a run)

    const auto pool = at::cuda::graph_pool_handle();
    graph = std::make_unique<at::cuda::CUDAGraph>();
    bool captured = false;
    {
      const c10::cuda::CUDAStreamGuard on_side(side);
      try {
        // Thread-local: other threads (the JS thread) may use CUDA while this one captures.
        graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
        out = denoiser.forward(x, t, x_self_cond);
        graph->capture_end();
        captured = true;
      } catch (const std::exception&) {
        out = at::Tensor();
        abandon_capture(side, pool);
      }
    }
    side.synchronize();

    if (captured) graph->replay();
    at::Tensor eager = denoiser.forward(x_in, t_in, x_self_cond_in);
    // The one host sync of the run: a graph that replays wrong is worse than none.
    if (captured && at::allclose(out, eager, 1e-3, 1e-4)) {
      ++g_captures;
      return eager;
    }
    if (!captured) {
      try {
        // A failed capture_end leaves the pool to us (a successful one hands it to the graph).
        c10::cuda::CUDACachingAllocator::releasePool(side.device_index(), pool);
      } catch (const std::exception&) {
      }
    }
    ++g_fallbacks;
    given_up = true;
    reset();
    return eager;
  }

  at::Tensor replay(const at::Tensor& x_in, const at::Tensor& t_in, const at::Tensor& x_self_cond_in) {
    x.copy_(x_in);
    t.copy_(t_in);
    if (x_self_cond.defined()) x_self_cond.copy_(x_self_cond_in);
    graph->replay();
    ++g_replays;
    return out.clone();  // the next replay overwrites `out`
  }
};

ModelCall::ModelCall(const Denoiser& denoiser, const Schedule& schedule, bool cuda_graph)
    : denoiser_(denoiser), schedule_(schedule) {
  if (cuda_graph) graph_ = std::make_unique<Graph>();
}

at::Tensor ModelCall::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) {
  if (!graph_ || !x.is_cuda() || at::GradMode::is_enabled()) return denoiser_.forward(x, t, x_self_cond);
  Graph& g = *graph_;
  std::vector<int64_t> sig = signature(x, t, x_self_cond);
  if (sig != g.signature) {
    g.reset();
    g.signature = std::move(sig);
  }
  if (g.given_up || g.eager_calls < kEagerCallsBeforeCapture) {
    ++g.eager_calls;
    return denoiser_.forward(x, t, x_self_cond);
  }
  if (!g.graph) return g.capture(denoiser_, x, t, x_self_cond);
  return g.replay(x, t, x_self_cond);
}

#else  // no CUDA in this LibTorch

bool cuda_graphs_built() { return false; }

struct ModelCall::Graph {};

ModelCall::ModelCall(const Denoiser& denoiser, const Schedule& schedule, bool /*cuda_graph*/)
    : denoiser_(denoiser), schedule_(schedule) {}

at::Tensor ModelCall::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) {
  return denoiser_.forward(x, t, x_self_cond);
}

#endif

at::Tensor ModelCall::operator()(const at::Tensor& x, const at::Tensor& t, const at::Tensor& x_self_cond) {
  return forward(x, schedule_.timestep_map.apply(t), x_self_cond);
}

ModelCall::~ModelCall() = default;

}  // namespace gd
