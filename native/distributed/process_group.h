// Collectives between processes over LibTorch's own c10d engine: Gloo on CPU (the pip
// wheel's libtorch_cpu carries it), NCCL in CUDA builds that found nccl.h. A TCPStore on
// the rank-0 host is the rendezvous, as torch.distributed's env:// and tcp:// do.
//
// Pure LibTorch: no N-API here (native/js/distributed_wrap.cc is the JS side). Every
// collective is queued in call order and issued by one thread per group (c10d matches
// collectives across ranks by that order), after the ranks have compared signatures
// (distributed/signature.h); it returns a Pending to wait on, from any thread.
// A peer that dies makes the wait fail at once (the connection closes); one that hangs makes
// it fail after the group's timeout; neither hangs the caller.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/signature.h"

namespace c10d {
class Backend;
class Work;
}  // namespace c10d

namespace gd::dist {

struct InitOptions {
  std::string backend = "gloo";  // "gloo" | "nccl"
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  // Rendezvous and every collective fail after this long without their peers.
  std::chrono::milliseconds timeout{30000};
};

enum class ReduceOp { kSum, kAvg, kProduct, kMin, kMax };
// "sum" | "avg" | "product" | "min" | "max"; throws std::invalid_argument otherwise.
ReduceOp parse_reduce_op(const std::string& name);

// Backends this build has: "gloo" where the Gloo headers were found at build time, "nccl"
// in a CUDA build with NCCL.
std::vector<std::string> available_backends();

struct CollectiveState;

// A collective in flight. wait() blocks until it is done and throws std::runtime_error
// naming the collective when it failed, timed out, did not match the other ranks' or the
// group was destroyed meanwhile; then applies the step left (e.g. avg's division). It may be
// called once, from any thread.
class Pending {
 public:
  explicit Pending(std::shared_ptr<CollectiveState> state);
  ~Pending();
  Pending(Pending&&) noexcept;
  Pending& operator=(Pending&&) noexcept;
  void wait();

 private:
  std::shared_ptr<CollectiveState> state_;
};

class ProcessGroup {
 public:
  // Rendezvous at master_addr:master_port (rank 0 listens there) and connects the ranks.
  // Throws std::invalid_argument for bad options, std::runtime_error when the peers do not
  // all arrive within the timeout, also when the master accepts connections but never
  // answers (LibTorch's store client would wait for it forever: it is left behind).
  static std::shared_ptr<ProcessGroup> create(const InitOptions& options);
  ~ProcessGroup();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_name_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place on every rank; tensors must be dense and contiguous (Gloo: CPU; NCCL: CUDA).
  // Each is issued after the ranks have compared what they are about to do (kind, op or
  // src, dtype, shape): on a mismatch no rank sends anything and every rank's wait throws,
  // naming both ranks' collectives. Issued in call order, one thread per group.
  Pending all_reduce(at::Tensor t, ReduceOp op);
  Pending broadcast(at::Tensor t, int src);
  // out[r] gets rank r's t (same shape and dtype on every rank).
  Pending all_gather(at::Tensor t, std::vector<at::Tensor>& out);
  Pending barrier();

  // Blocking helpers for the data-parallel trainer. Averages the tensors over the ranks in
  // buckets of at most bucket_bytes (each bucket one flat all-reduce).
  void average(const std::vector<at::Tensor>& tensors, size_t bucket_bytes = 25u << 20);
  // Copies rank src's tensors into every rank's, in place; `what` names the caller in errors.
  void broadcast_all(const std::vector<at::Tensor>& tensors, int src = 0, const std::string& what = "broadcast");
  // Throws std::invalid_argument naming the first value that differs between ranks.
  void agree(const std::string& what, const std::vector<std::pair<std::string, double>>& values);

  // Fails every collective queued or in flight ("the process group was destroyed") and stops
  // issuing; returns at once. The group is unusable afterwards.
  void abort();
  // Whether the backend still runs a collective (its destructor would wait for it).
  bool busy() const;

 private:
  struct Issuer;
  ProcessGroup();
  static std::shared_ptr<ProcessGroup> connect(const InitOptions& options);
  void check_tensor(const at::Tensor& t, const char* what) const;
  // Queues: compare `sig` across the ranks, then `issue` the collective; the Pending waits
  // for the works issued.
  Pending submit(const std::string& what, Signature sig,
                 std::function<std::vector<c10::intrusive_ptr<c10d::Work>>()> issue, std::function<void()> finish);
  void check_signatures(const std::string& what, const Signature& sig);
  std::vector<std::vector<int64_t>> exchange(const std::string& what, const std::vector<int64_t>& words);
  std::shared_ptr<CollectiveState> track(const std::string& what);

  int rank_ = 0;
  int world_size_ = 1;
  std::string backend_name_;
  std::chrono::milliseconds timeout_{30000};
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::unique_ptr<Issuer> issuer_;
};

// Takes the group out of use: aborts it, and destroys it now when nothing is in flight,
// else keeps it until a later retire finds it idle (destroying it would block for the
// collective's timeout). Never blocks.
void retire(std::shared_ptr<ProcessGroup> group);

// The process's default group (torch.distributed's): set by init, cleared by destroy.
// set_default_group throws std::runtime_error if one is already set.
void set_default_group(std::shared_ptr<ProcessGroup> group);
std::shared_ptr<ProcessGroup> default_group();  // null when none
// Returns the group that was set (null when none).
std::shared_ptr<ProcessGroup> clear_default_group();

}  // namespace gd::dist
