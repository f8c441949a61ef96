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
#include <atomic>
#include <condition_variable>
#include <deque>
#include <thread>
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

// ---- a collective's state, shared by its Pending, the issuer and the work callbacks ----

struct CollectiveState {
  std::string what;  // "allReduce (gloo)"
  std::mutex mu;
  std::condition_variable cv;
  bool issued = false;  // works attached (or failed before any was)
  size_t works_left = 0;
  std::string error;  // the whole message, set once
  std::chrono::steady_clock::time_point deadline;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;  // kept alive until done
  std::function<void()> finish;
};

namespace {

void fail_state(CollectiveState& s, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.error.empty()) s.error = message;
    s.issued = true;
  }
  s.cv.notify_all();
}

// The works finish on the backend's threads; their futures' callbacks count them down. The
// deadline guards against a backend that would not apply its own timeout.
void attach_works(const std::shared_ptr<CollectiveState>& s, std::vector<c10::intrusive_ptr<c10d::Work>> works,
                  std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->works = works;
    s->works_left = works.size();
    s->deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(1);
    s->issued = true;
  }
  s->cv.notify_all();
  std::weak_ptr<CollectiveState> weak = s;
  for (auto& work : works) {
    work->getFuture()->addCallback([weak](c10::ivalue::Future& f) {
      auto state = weak.lock();
      if (!state) return;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (f.hasError() && state->error.empty()) state->error = state->what + " failed: " + f.tryRetrieveErrorMessage();
        if (state->works_left > 0) --state->works_left;
      }
      state->cv.notify_all();
    });
  }
}

}  // namespace

Pending::Pending(std::shared_ptr<CollectiveState> state) : state_(std::move(state)) {}
Pending::~Pending() = default;
Pending::Pending(Pending&&) noexcept = default;
Pending& Pending::operator=(Pending&&) noexcept = default;

void Pending::wait() {
  CollectiveState& s = *state_;
  std::function<void()> finish;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    // Queued behind other collectives: each of those is bounded by the timeout, and an
    // abort fails this one at once.
    s.cv.wait(lock, [&] { return s.issued; });
    if (s.error.empty()) s.cv.wait_until(lock, s.deadline, [&] { return s.works_left == 0 || !s.error.empty(); });
    if (s.error.empty() && s.works_left > 0) s.error = s.what + " failed: no answer within the timeout";
    if (!s.error.empty()) throw std::runtime_error(s.error);
    finish = std::move(s.finish);
    s.works.clear();
  }
  if (finish) finish();
}

// ---- the issuer: one thread per group that issues the queued collectives in order ----

struct ProcessGroup::Issuer {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::shared_ptr<CollectiveState>, std::function<void()>>> queue;
  std::vector<std::weak_ptr<CollectiveState>> live;  // to fail on abort
  bool stopping = false;
  std::string stop_reason;
  std::thread thread;
  // Collectives the backend still runs (counted down by their futures' callbacks).
  std::shared_ptr<std::atomic<int>> in_flight = std::make_shared<std::atomic<int>>(0);

  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        task = std::move(queue.front().second);
        queue.pop_front();
      }
      task();
    }
  }
};

ProcessGroup::ProcessGroup() : issuer_(std::make_unique<Issuer>()) {}

std::shared_ptr<CollectiveState> ProcessGroup::track(const std::string& what) {
  auto state = std::make_shared<CollectiveState>();
  state->what = describe(what, backend_name_);
  std::lock_guard<std::mutex> lock(issuer_->mu);
  if (issuer_->stopping) {
    state->error = state->what + " failed: " + issuer_->stop_reason;
    state->issued = true;
    return state;
  }
  auto& live = issuer_->live;
  live.erase(std::remove_if(live.begin(), live.end(), [](const auto& w) { return w.expired(); }), live.end());
  live.push_back(state);
  return state;
}

std::vector<std::vector<int64_t>> ProcessGroup::exchange(const std::string& what, const std::vector<int64_t>& words) {
  at::Tensor mine = at::tensor(words, at::kLong);
  if (backend_name_ == "nccl") mine = mine.to(at::Device(at::kCUDA));
  std::vector<at::Tensor> gathered;
  for (int r = 0; r < world_size_; ++r) gathered.push_back(at::empty_like(mine));
  std::vector<std::vector<at::Tensor>> outputs{gathered};
  std::vector<at::Tensor> inputs{mine};
  c10d::AllgatherOptions opts;
  opts.timeout = timeout_;
  auto state = track(what);
  if (state->error.empty()) {
    auto work = backend_->allgather(outputs, inputs, opts);
    issuer_->in_flight->fetch_add(1);
    work->getFuture()->addCallback([n = issuer_->in_flight](c10::ivalue::Future&) { n->fetch_sub(1); });
    attach_works(state, {work}, timeout_);
  }
  Pending(state).wait();
  std::vector<std::vector<int64_t>> out;
  for (const auto& g : outputs[0]) {
    at::Tensor c = g.cpu().contiguous();
    out.emplace_back(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  }
  return out;
}

void ProcessGroup::check_signatures(const std::string& what, const Signature& sig) {
  const auto all = exchange(what, sig.words);
  const int other = first_disagreeing(all);
  if (other < 0) return;
  static const std::vector<std::string> ops{"sum", "avg", "product", "min", "max"};
  std::string difference;
  const auto kind = static_cast<CollectiveKind>(sig.words[0]);
  const bool same_kind = all[0][0] == all[other][0];
  if (same_kind && (kind == CollectiveKind::kBroadcastList || kind == CollectiveKind::kAverageList ||
                    kind == CollectiveKind::kValues)) {
    // Every rank saw the same summaries, so every rank takes this second exchange.
    int64_t longest = 0;
    for (const auto& w : all) longest = std::max(longest, detail_length(w));
    std::vector<int64_t> detail = sig.detail;
    detail.resize(static_cast<size_t>(longest), -2);
    const auto details = exchange(what, detail);
    difference = kind == CollectiveKind::kValues
                     ? describe_values_difference(sig.names, details[0], 0, details[other], other)
                     : describe_list_difference(details[0], 0, details[other], other);
  } else {
    difference = "rank 0 calls " + describe_signature(all[0], ops) + ", rank " + std::to_string(other) + " calls " +
                 describe_signature(all[other], ops);
  }
  invalid(what + ": the ranks' collectives do not match (" + difference +
          "); nothing was sent. Every rank must make the same collectives, in the same order, with the same "
          "shapes and dtypes");
}

Pending ProcessGroup::submit(const std::string& what, Signature sig,
                             std::function<std::vector<c10::intrusive_ptr<c10d::Work>>()> issue,
                             std::function<void()> finish) {
  auto state = track(what);
  state->finish = std::move(finish);
  if (!state->error.empty()) return Pending(state);
  std::weak_ptr<CollectiveState> weak = state;
  auto task = [this, weak, what, sig = std::move(sig), issue = std::move(issue)] {
    auto s = weak.lock();
    if (!s) return;
    try {
      check_signatures(what, sig);
    } catch (...) {
      fail_state(*s, current_message());
      return;
    }
    try {
      auto works = issue();
      for (auto& work : works) {
        issuer_->in_flight->fetch_add(1);
        work->getFuture()->addCallback([n = issuer_->in_flight](c10::ivalue::Future&) { n->fetch_sub(1); });
      }
      attach_works(s, std::move(works), timeout_);
    } catch (...) {
      fail_state(*s, s->what + " failed: " + current_message());
    }
  };
  {
    std::lock_guard<std::mutex> lock(issuer_->mu);
    issuer_->queue.emplace_back(state, std::move(task));
  }
  issuer_->cv.notify_one();
  return Pending(state);
}

void ProcessGroup::abort() {
  std::vector<std::shared_ptr<CollectiveState>> to_fail;
  {
    std::lock_guard<std::mutex> lock(issuer_->mu);
    if (issuer_->stopping) return;
    issuer_->stopping = true;
    issuer_->stop_reason = "the process group was destroyed while it was pending";
    for (auto& [state, task] : issuer_->queue) to_fail.push_back(state);
    issuer_->queue.clear();
    for (auto& w : issuer_->live) {
      if (auto s = w.lock()) to_fail.push_back(s);
    }
  }
  issuer_->cv.notify_all();
  for (auto& s : to_fail) fail_state(*s, s->what + " failed: the process group was destroyed while it was pending");
  // The issuer's current task waits on a state failed above: it returns promptly.
  if (issuer_->thread.joinable()) issuer_->thread.join();
}

bool ProcessGroup::busy() const { return issuer_->in_flight->load() > 0; }

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
  // LibTorch's store client waits without a bound for a master that accepted the connection
  // but never answers (a stopped rank 0, another program on the port); the rendezvous runs
  // on a thread of its own, left behind when it outlives the timeout (a thread of Node's
  // pool would also block the process's exit).
  struct Box {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, abandoned = false;
    std::shared_ptr<ProcessGroup> group;
    std::exception_ptr error;
  };
  auto box = std::make_shared<Box>();
  std::thread([box, o] {
    std::shared_ptr<ProcessGroup> group;
    std::exception_ptr error;
    try {
      group = connect(o);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(box->mu);
    if (box->abandoned) {
      if (group) group->abort();
      return;  // the group, if any, is destroyed here, on this thread
    }
    box->group = std::move(group);
    box->error = error;
    box->done = true;
    box->cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(box->mu);
  if (!box->cv.wait_for(lock, o.timeout + std::chrono::seconds(1), [&] { return box->done; })) {
    box->abandoned = true;
    throw std::runtime_error("initProcessGroup: rank " + std::to_string(o.rank) + " could not meet its " +
                             std::to_string(o.world_size - 1) + " peers at " + o.master_addr + ":" +
                             std::to_string(o.master_port) + " within " + std::to_string(o.timeout.count()) +
                             " ms: the master accepted the connection but did not answer (is rank 0 stopped, or "
                             "another program listening on that port?)");
  }
  if (box->error) std::rethrow_exception(box->error);
  return box->group;
}

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const InitOptions& o) {
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
  Issuer* issuer = pg->issuer_.get();
  issuer->thread = std::thread([issuer] { issuer->run(); });
  return pg;
}

ProcessGroup::~ProcessGroup() { abort(); }

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
  std::function<void()> finish;
  if (op == ReduceOp::kAvg) finish = [t, n = world_size_]() mutable { t.div_(n); };
  auto sig = tensor_signature(CollectiveKind::kAllReduce, static_cast<int64_t>(op), t);
  return submit("allReduce", std::move(sig), [this, t, op] {
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = to_c10d(op);
    opts.timeout = timeout_;
    return std::vector<c10::intrusive_ptr<c10d::Work>>{backend_->allreduce(ts, opts)};
  }, std::move(finish));
}

Pending ProcessGroup::broadcast(at::Tensor t, int src) {
  check_tensor(t, "broadcast");
  if (src < 0 || src >= world_size_) {
    invalid("broadcast: src must be a rank in [0, " + std::to_string(world_size_ - 1) + "]; got " + std::to_string(src));
  }
  return submit("broadcast", tensor_signature(CollectiveKind::kBroadcast, src, t), [this, t, src] {
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions opts;
    opts.rootRank = src;
    opts.timeout = timeout_;
    return std::vector<c10::intrusive_ptr<c10d::Work>>{backend_->broadcast(ts, opts)};
  }, nullptr);
}

Pending ProcessGroup::all_gather(at::Tensor t, std::vector<at::Tensor>& out) {
  check_tensor(t, "allGather");
  out.clear();
  for (int r = 0; r < world_size_; ++r) out.push_back(at::empty_like(t));
  return submit("allGather", tensor_signature(CollectiveKind::kAllGather, 0, t), [this, t, out] {
    std::vector<std::vector<at::Tensor>> outputs{out};
    std::vector<at::Tensor> inputs{t};
    c10d::AllgatherOptions opts;
    opts.timeout = timeout_;
    return std::vector<c10::intrusive_ptr<c10d::Work>>{backend_->allgather(outputs, inputs, opts)};
  }, nullptr);
}

Pending ProcessGroup::barrier() {
  return submit("barrier", barrier_signature(), [this] {
    c10d::BarrierOptions opts;
    opts.timeout = timeout_;
    return std::vector<c10::intrusive_ptr<c10d::Work>>{backend_->barrier(opts)};
  }, nullptr);
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
  for (const auto& bucket : buckets) {
    std::vector<at::Tensor> parts;
    for (const auto& t : bucket) parts.push_back(t.detach().reshape({-1}));
    flats.push_back(at::cat(parts));
  }
  // One signature for the whole list (a trainer step's gradients), then every bucket.
  submit("allReduce", list_signature(CollectiveKind::kAverageList, 0, tensors), [this, flats] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const auto& flat : flats) {
      std::vector<at::Tensor> ts{flat};
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      opts.timeout = timeout_;
      works.push_back(backend_->allreduce(ts, opts));
    }
    return works;
  }, nullptr).wait();
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets.size(); ++b) {
    flats[b].div_(world_size_);
    int64_t offset = 0;
    for (const auto& t : buckets[b]) {
      const int64_t n = t.numel();
      t.detach().copy_(flats[b].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

void ProcessGroup::broadcast_all(const std::vector<at::Tensor>& tensors, int src, const std::string& what) {
  if (world_size_ == 1) return;
  std::vector<at::Tensor> sends;
  for (const auto& t : tensors) {
    // A non-contiguous tensor travels through a contiguous copy, a CPU one through CUDA
    // with NCCL (e.g. the trainer's generator state).
    at::Tensor send = t.detach().contiguous();
    if (backend_name_ == "nccl" && !send.is_cuda()) send = send.to(at::Device(at::kCUDA));
    sends.push_back(send);
  }
  submit(what, list_signature(CollectiveKind::kBroadcastList, src, tensors), [this, sends, src] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const auto& send : sends) {
      std::vector<at::Tensor> ts{send};
      c10d::BroadcastOptions opts;
      opts.rootRank = src;
      opts.timeout = timeout_;
      works.push_back(backend_->broadcast(ts, opts));
    }
    return works;
  }, nullptr).wait();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sends[i].data_ptr() != tensors[i].data_ptr()) tensors[i].detach().copy_(sends[i]);
  }
}

void ProcessGroup::agree(const std::string& what, const std::vector<std::pair<std::string, double>>& values) {
  if (world_size_ == 1) return;
  submit(what, values_signature(values), [] { return std::vector<c10::intrusive_ptr<c10d::Work>>{}; }, nullptr).wait();
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

std::shared_ptr<ProcessGroup> clear_default_group() {
  std::shared_ptr<ProcessGroup> old;
  std::lock_guard<std::mutex> lock(default_mutex());
  old.swap(default_slot());
  return old;
}

void retire(std::shared_ptr<ProcessGroup> group) {
  // Groups aborted with a collective still in the backend; never destroyed at exit.
  static auto* kept = new std::vector<std::shared_ptr<ProcessGroup>>();
  static auto* kept_mutex = new std::mutex();
  std::lock_guard<std::mutex> lock(*kept_mutex);
  kept->erase(std::remove_if(kept->begin(), kept->end(), [](const auto& g) { return g.use_count() == 1 && !g->busy(); }),
              kept->end());
  if (!group) return;
  group->abort();
  if (group->busy()) kept->push_back(std::move(group));
}

}  // namespace gd::dist
