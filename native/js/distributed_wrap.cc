// torch.distributed from JS: the default process group of distributed/process_group.h.
// Rendezvous and the waits of collectives run on Node's worker threads (Promises); each
// collective is issued on the JS thread, in call order, which is the order c10d matches
// collectives across ranks by.
#include <atomic>

#include "distributed/process_group.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

using dist::ProcessGroup;

// initProcessGroup calls in flight (their rendezvous may take up to the timeout).
std::atomic<bool> g_initializing{false};

std::shared_ptr<ProcessGroup> Group(Napi::Env env, const char* what) {
  auto group = dist::default_group();
  if (!group) {
    throw Napi::Error::New(env, std::string(what) +
                                    ": the default process group is not initialized; call initProcessGroup() first");
  }
  return group;
}

// Runs `work` on a worker thread and settles a promise with `done`'s value (on the JS thread).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env, "guided-diffusion.distributed"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
};

Napi::Promise Queue(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Done done = nullptr) {
  auto* worker = new PromiseWorker(env, std::move(work), std::move(done));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Waits for a collective off the JS thread.
Napi::Promise QueueWait(Napi::Env env, dist::Pending pending, PromiseWorker::Done done = nullptr) {
  auto shared = std::make_shared<dist::Pending>(std::move(pending));
  return Queue(env, [shared] { shared->wait(); }, std::move(done));
}

int ToIntIn(const Napi::Value& v, const char* name, int64_t lo, int64_t hi) {
  const int64_t x = ToInt(v, name);
  if (x < lo || x > hi) {
    throw Napi::RangeError::New(v.Env(), std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                                             std::to_string(hi) + "]; got " + std::to_string(x));
  }
  return static_cast<int>(x);
}

// distInit({backend, masterAddr, masterPort, rank, worldSize, timeoutMs}) -> Promise<void>
Napi::Value Init(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    Napi::Value o = info[0];
    dist::InitOptions opts;
    opts.backend = ToString(Option(o, "backend"), "backend");
    opts.master_addr = ToString(Option(o, "masterAddr"), "masterAddr");
    opts.master_port = ToIntIn(Option(o, "masterPort"), "masterPort", 1, 65535);
    opts.world_size = ToIntIn(Option(o, "worldSize"), "worldSize", 1, 1 << 20);
    opts.rank = ToIntIn(Option(o, "rank"), "rank", 0, opts.world_size - 1);
    opts.timeout = std::chrono::milliseconds(ToIntIn(Option(o, "timeoutMs"), "timeoutMs", 1, 2147483647));
    if (auto group = dist::default_group()) {
      throw Napi::Error::New(env, "initProcessGroup: the default process group is already initialized (rank " +
                                      std::to_string(group->rank()) + " of " + std::to_string(group->world_size()) +
                                      "); call destroyProcessGroup() first");
    }
    if (g_initializing.exchange(true)) {
      throw Napi::Error::New(env, "initProcessGroup: another initProcessGroup() is still in progress");
    }
    return Queue(env, [opts] {
      struct Reset {
        ~Reset() { g_initializing = false; }
      } reset;
      dist::set_default_group(ProcessGroup::create(opts));
    });
  })
}

// distState() -> {initialized, rank, worldSize, backend, backends}
Napi::Value State(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  auto group = dist::default_group();
  out.Set("initialized", Napi::Boolean::New(env, bool(group)));
  if (group) {
    out.Set("rank", Napi::Number::New(env, group->rank()));
    out.Set("worldSize", Napi::Number::New(env, group->world_size()));
    out.Set("backend", Napi::String::New(env, group->backend()));
  }
  auto names = dist::available_backends();
  auto arr = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) arr.Set(uint32_t(i), Napi::String::New(env, names[i]));
  out.Set("backends", arr);
  return out;
}

// distAllReduce(tensor, op) -> Promise<void> (in place)
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    auto group = Group(info.Env(), "allReduce");
    at::Tensor t = TensorWrap::From(info[0], "tensor");
    dist::ReduceOp op = dist::parse_reduce_op(ToString(info[1], "op"));
    return QueueWait(info.Env(), group->all_reduce(t, op));
  })
}

// distBroadcast(tensor, src) -> Promise<void> (in place)
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    auto group = Group(info.Env(), "broadcast");
    at::Tensor t = TensorWrap::From(info[0], "tensor");
    // Checked as an int64 first: 2**32 would truncate to rank 0.
    const int64_t src = ToInt(info[1], "src");
    if (src < 0 || src >= group->world_size()) {
      ThrowRange(info.Env(), "broadcast: src must be a rank in [0, " + std::to_string(group->world_size() - 1) + "]; got " + std::to_string(src));
    }
    return QueueWait(info.Env(), group->broadcast(t, static_cast<int>(src)));
  })
}

// distAllGather(tensor) -> Promise<Tensor[]> (one per rank)
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    auto group = Group(info.Env(), "allGather");
    at::Tensor t = TensorWrap::From(info[0], "tensor");
    auto out = std::make_shared<std::vector<at::Tensor>>();
    dist::Pending pending = group->all_gather(t, *out);
    return QueueWait(info.Env(), std::move(pending), [out](Napi::Env env) -> Napi::Value {
      auto arr = Napi::Array::New(env, out->size());
      for (size_t i = 0; i < out->size(); ++i) arr.Set(uint32_t(i), TensorWrap::Wrap(env, (*out)[i]));
      return arr;
    });
  })
}

// distBarrier() -> Promise<void>
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    auto group = Group(info.Env(), "barrier");
    return QueueWait(info.Env(), group->barrier());
  })
}

// distAgree(what, names, values) -> Promise<void>: rejects, naming the first value that
// differs between the ranks (a run's options that every rank must share).
Napi::Value Agree(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const std::string what = ToString(info[0], "what");
    auto group = Group(info.Env(), what.c_str());
    if (!info[1].IsArray() || !info[2].IsArray()) throw Napi::TypeError::New(info.Env(), "distAgree: expected two arrays");
    auto names = info[1].As<Napi::Array>();
    auto values = info[2].As<Napi::Array>();
    if (names.Length() != values.Length()) throw Napi::TypeError::New(info.Env(), "distAgree: names and values differ in length");
    std::vector<std::pair<std::string, double>> pairs;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      pairs.emplace_back(ToString(names.Get(i), "name"), ToNumber(values.Get(i), "value"));
    }
    return Queue(info.Env(), [group, what, pairs] { group->agree(what, pairs); });
  })
}

// distDestroy(): fails the collectives still pending and forgets the default group, at once
// (one still in the backend keeps its connections until its timeout).
Napi::Value Destroy(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Group(info.Env(), "destroyProcessGroup");
    dist::retire(dist::clear_default_group());
    return info.Env().Undefined();
  })
}

}  // namespace

std::shared_ptr<dist::ProcessGroup> DefaultGroupFor(Napi::Env env, const char* what) { return Group(env, what); }

DataParallel DataParallelFor(Napi::Env env, const char* what) {
  std::shared_ptr<ProcessGroup> group = Group(env, what);
  DataParallel p;
  p.rank = group->rank();
  p.world_size = group->world_size();
  const std::string name = what;
  p.average = [group](const std::vector<at::Tensor>& ts) { group->average(ts); };
  p.broadcast = [group, name](const std::vector<at::Tensor>& ts) { group->broadcast_all(ts, 0, name); };
  p.agree = [group, name](const std::vector<std::pair<std::string, double>>& values) { group->agree(name, values); };
  return p;
}

void InstallDistributed(Napi::Env env, Napi::Object exports) {
  exports.Set("distInit", Napi::Function::New(env, Init, "distInit"));
  exports.Set("distState", Napi::Function::New(env, State, "distState"));
  exports.Set("distAllReduce", Napi::Function::New(env, AllReduce, "distAllReduce"));
  exports.Set("distBroadcast", Napi::Function::New(env, Broadcast, "distBroadcast"));
  exports.Set("distAllGather", Napi::Function::New(env, AllGather, "distAllGather"));
  exports.Set("distBarrier", Napi::Function::New(env, Barrier, "distBarrier"));
  exports.Set("distAgree", Napi::Function::New(env, Agree, "distAgree"));
  exports.Set("distDestroy", Napi::Function::New(env, Destroy, "distDestroy"));
}

}  // namespace gd::js
