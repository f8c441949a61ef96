#include "distributed/process_group.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef GD_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef GD_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace gd::dist {

namespace {

[[noreturn]] void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

// The message of the exception in flight, without LibTorch's C++ backtrace.
std::string current_message() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kProduct: return c10d::ReduceOp::PRODUCT;
    case ReduceOp::kMin: return c10d::ReduceOp::MIN;
    case ReduceOp::kMax: return c10d::ReduceOp::MAX;
    default: return c10d::ReduceOp::SUM;  // avg: a sum divided afterwards (Gloo has no AVG)
  }
}

std::string describe(const std::string& what, const std::string& backend) { return what + " (" + backend + ")"; }

}  // namespace

ReduceOp parse_reduce_op(const std::string& name) {
  if (name == "sum") return ReduceOp::kSum;
  if (name == "avg") return ReduceOp::kAvg;
  if (name == "product") return ReduceOp::kProduct;
  if (name == "min") return ReduceOp::kMin;
  if (name == "max") return ReduceOp::kMax;
  invalid("op must be one of 'sum', 'avg', 'product', 'min', 'max'; got '" + name + "'");
}

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
#ifdef GD_WITH_GLOO
  out.push_back("gloo");
#endif
#ifdef GD_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

// ---- Pending ----------------------------------------------------------------------------

Pending::Pending(std::string what, std::vector<c10::intrusive_ptr<c10d::Work>> works,
                 std::chrono::milliseconds timeout, std::function<void()> finish)
    : what_(std::move(what)), works_(std::move(works)), timeout_(timeout), finish_(std::move(finish)) {}
Pending::~Pending() = default;
Pending::Pending(Pending&&) noexcept = default;
Pending& Pending::operator=(Pending&&) noexcept = default;

void Pending::wait() {
  for (auto& work : works_) {
    try {
      // The backend's own timeout ends a collective whose peers do not answer; the wait's
      // bound is a second guard should a backend not apply it.
      work->wait(timeout_);
    } catch (...) {
      throw std::runtime_error(what_ + " failed: " + current_message());
    }
  }
  works_.clear();
  if (finish_) finish_();
}

// ---- ProcessGroup -----------------------------------------------------------------------

std::shared_ptr<ProcessGroup> ProcessGroup::create(const InitOptions& o) {
  if (o.world_size < 1) invalid("worldSize must be >= 1; got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size) {
    invalid("rank must be in [0, worldSize - 1] = [0, " + std::to_string(o.world_size - 1) + "]; got " +
            std::to_string(o.rank));
  }
  if (o.master_port < 1 || o.master_port > 65535) {
    invalid("the master port must be in [1, 65535]; got " + std::to_string(o.master_port));
  }
  if (o.timeout.count() < 1) invalid("timeoutMs must be >= 1; got " + std::to_string(o.timeout.count()));
  if (o.master_addr.empty()) invalid("the master address is empty");
  const auto backends = available_backends();
  if (std::find(backends.begin(), backends.end(), o.backend) == backends.end()) {
    if (o.backend == "nccl") invalid("backend 'nccl' needs a CUDA build of the addon with NCCL; this one has none (use 'gloo')");
    if (o.backend == "gloo") invalid("backend 'gloo' is missing: the addon was built without the Gloo headers (apt-get install libgloo-dev, then rebuild)");
    invalid("backend must be 'gloo' or 'nccl'; got '" + o.backend + "'");
  }

  std::shared_ptr<ProcessGroup> pg(new ProcessGroup());
  pg->rank_ = o.rank;
  pg->world_size_ = o.world_size;
  pg->backend_name_ = o.backend;
  pg->timeout_ = o.timeout;
  const std::string where = o.master_addr + ":" + std::to_string(o.master_port);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (...) {
    throw std::runtime_error("initProcessGroup: rank " + std::to_string(o.rank) + " could not meet its " +
                             std::to_string(o.world_size - 1) + " peers at " + where + " within " +
                             std::to_string(o.timeout.count()) + " ms: " + current_message());
  }
  try {
#ifdef GD_WITH_GLOO
    if (o.backend == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create_default(o.timeout);
      pg->backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, options);
    }
#endif
#ifdef GD_WITH_NCCL
    if (o.backend == "nccl") {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = o.timeout;
      pg->backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, options);
    }
#endif
  } catch (...) {
    throw std::runtime_error("initProcessGroup: connecting the " + std::to_string(o.world_size) + " ranks (" +
                             o.backend + ", " + where + ") failed: " + current_message());
  }
  if (!pg->backend_) invalid("backend '" + o.backend + "' is not available");
  return pg;
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::check_tensor(const at::Tensor& t, const char* what) const {
  if (!t.defined()) invalid(std::string(what) + ": expected a tensor");
  if (!t.is_contiguous() || t.is_sparse()) invalid(std::string(what) + ": the tensor must be dense and contiguous");
  if (backend_name_ == "gloo" && !t.device().is_cpu()) {
    invalid(std::string(what) + ": backend 'gloo' takes CPU tensors; got one on " + t.device().str());
  }
  if (backend_name_ == "nccl" && !t.device().is_cuda()) {
    invalid(std::string(what) + ": backend 'nccl' takes CUDA tensors; got one on " + t.device().str());
  }
}

Pending ProcessGroup::all_reduce(at::Tensor t, ReduceOp op) {
  check_tensor(t, "allReduce");
  if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type())) {
    invalid("allReduce: op 'avg' needs a floating tensor; got " + std::string(c10::toString(t.scalar_type())));
  }
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = to_c10d(op);
  opts.timeout = timeout_;
  auto work = backend_->allreduce(ts, opts);
  std::function<void()> finish;
  if (op == ReduceOp::kAvg) finish = [t, n = world_size_]() mutable { t.div_(n); };
  return Pending(describe("allReduce", backend_name_), {work}, timeout_, std::move(finish));
}

Pending ProcessGroup::broadcast(at::Tensor t, int src) {
  check_tensor(t, "broadcast");
  if (src < 0 || src >= world_size_) {
    invalid("broadcast: src must be a rank in [0, " + std::to_string(world_size_ - 1) + "]; got " + std::to_string(src));
  }
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions opts;
  opts.rootRank = src;
  opts.timeout = timeout_;
  return Pending(describe("broadcast", backend_name_), {backend_->broadcast(ts, opts)}, timeout_, nullptr);
}

Pending ProcessGroup::all_gather(at::Tensor t, std::vector<at::Tensor>& out) {
  check_tensor(t, "allGather");
  out.clear();
  for (int r = 0; r < world_size_; ++r) out.push_back(at::empty_like(t));
  std::vector<std::vector<at::Tensor>> outputs{out};
  std::vector<at::Tensor> inputs{t};
  c10d::AllgatherOptions opts;
  opts.timeout = timeout_;
  return Pending(describe("allGather", backend_name_), {backend_->allgather(outputs, inputs, opts)}, timeout_, nullptr);
}

Pending ProcessGroup::barrier() {
  c10d::BarrierOptions opts;
  opts.timeout = timeout_;
  return Pending(describe("barrier", backend_name_), {backend_->barrier(opts)}, timeout_, nullptr);
}

void ProcessGroup::average(const std::vector<at::Tensor>& tensors, size_t bucket_bytes) {
  if (world_size_ == 1 || tensors.empty()) return;
  // Buckets of tensors of one dtype and device, in the given order, each at most
  // bucket_bytes (a larger tensor is a bucket of its own): fewer, larger messages.
  std::vector<std::vector<at::Tensor>> buckets;
  std::map<std::pair<int, std::string>, size_t> open;  // (dtype, device) -> open bucket
  std::map<size_t, size_t> bytes;
  for (const auto& t : tensors) {
    const auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    const size_t size = t.numel() * t.element_size();
    auto it = open.find(key);
    if (it == open.end() || bytes[it->second] + size > bucket_bytes) {
      buckets.emplace_back();
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].push_back(t);
    bytes[it->second] += size;
  }
  std::vector<at::Tensor> flats;
  std::vector<Pending> pending;
  for (const auto& bucket : buckets) {
    std::vector<at::Tensor> parts;
    for (const auto& t : bucket) parts.push_back(t.detach().reshape({-1}));
    flats.push_back(at::cat(parts));
    pending.push_back(all_reduce(flats.back(), ReduceOp::kAvg));
  }
  for (auto& p : pending) p.wait();
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets.size(); ++b) {
    int64_t offset = 0;
    for (const auto& t : buckets[b]) {
      const int64_t n = t.numel();
      t.detach().copy_(flats[b].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

void ProcessGroup::broadcast_all(const std::vector<at::Tensor>& tensors, int src) {
  if (world_size_ == 1) return;
  std::vector<at::Tensor> sends;
  std::vector<Pending> pending;
  for (const auto& t : tensors) {
    // A non-contiguous tensor travels through a contiguous copy, a CPU one through CUDA
    // with NCCL (e.g. the trainer's generator state).
    at::Tensor send = t.detach().contiguous();
    if (backend_name_ == "nccl" && !send.is_cuda()) send = send.to(at::Device(at::kCUDA));
    sends.push_back(send);
    pending.push_back(broadcast(sends.back(), src));
  }
  for (auto& p : pending) p.wait();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sends[i].data_ptr() != tensors[i].data_ptr()) tensors[i].detach().copy_(sends[i]);
  }
}

// ---- the default group ------------------------------------------------------------------

namespace {
std::mutex& default_mutex() {
  static auto* m = new std::mutex();
  return *m;
}
std::shared_ptr<ProcessGroup>& default_slot() {
  static auto* slot = new std::shared_ptr<ProcessGroup>();  // never destroyed at exit
  return *slot;
}
}  // namespace

void set_default_group(std::shared_ptr<ProcessGroup> group) {
  std::lock_guard<std::mutex> lock(default_mutex());
  if (default_slot()) {
    throw std::runtime_error("initProcessGroup: the default process group is already initialized (rank " +
                             std::to_string(default_slot()->rank()) + " of " +
                             std::to_string(default_slot()->world_size()) + "); call destroyProcessGroup() first");
  }
  default_slot() = std::move(group);
}

std::shared_ptr<ProcessGroup> default_group() {
  std::lock_guard<std::mutex> lock(default_mutex());
  return default_slot();
}

void clear_default_group() {
  std::shared_ptr<ProcessGroup> old;
  {
    std::lock_guard<std::mutex> lock(default_mutex());
    old.swap(default_slot());
  }
}

}  // namespace gd::dist
