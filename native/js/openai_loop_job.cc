#include "js/openai_loop_job.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <optional>
#include <mutex>

#include "js/common.h"
#include "js/js_job.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

class OpenaiLoopJob : public JsJob {
 public:
  OpenaiLoopJob(Napi::Env env, LoopRun run, LoopCounts counts, std::shared_ptr<std::atomic<bool>> busy)
      : JsJob(env, "training was aborted"), run_(std::move(run)), counts_(std::move(counts)), busy_(std::move(busy)) {}

  Napi::FunctionReference on_log, on_save;

  // JS thread: queues a batch for the loop thread; the promise settles when it is taken.
  Napi::Value Push(Napi::Env env, at::Tensor x, at::Tensor y) {
    auto deferred = Napi::Promise::Deferred::New(env);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_ || ended_) {
        deferred.Resolve(Napi::Boolean::New(env, false));
        return deferred.Promise();
      }
      queue_.push_back({next_id_, std::move(x), std::move(y)});
    }
    waiting_.emplace(next_id_++, deferred);
    ready_.notify_one();
    return deferred.Promise();
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_one();
  }

 private:
  struct Pushed {
    int64_t id;
    at::Tensor x, y;
  };

  // Loop thread: the next pushed batch, waiting for one (and noticing an abort meanwhile).
  std::optional<std::pair<at::Tensor, at::Tensor>> NextPushed() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (queue_.empty() && !closed_) {
      if (cancelled()) throw JobAborted();
      ready_.wait_for(lock, std::chrono::milliseconds(10));
    }
    if (queue_.empty()) return std::nullopt;
    Pushed p = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const int64_t id = p.id;
    PostToJs([this, id](Napi::Env env) { Settle(env, id, true); });
    return std::make_pair(std::move(p.x), std::move(p.y));
  }

  void Settle(Napi::Env env, int64_t id, bool taken) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return;
    it->second.Resolve(Napi::Boolean::New(env, taken));
    waiting_.erase(it);
  }

  void Work() override {
    struct Idle {
      std::atomic<bool>& busy;
      ~Idle() { busy = false; }
    } idle{*busy_};
    LoopHooks hooks;
    hooks.on_log = [this](const StepLog& log) {
      if (!on_log.IsEmpty()) PostToJs([this, log](Napi::Env env) { Call(env, on_log, {StepLogObject(env, log)}); });
    };
    hooks.on_save = [this](int64_t number, const std::vector<std::string>& files) {
      if (on_save.IsEmpty()) return;
      PostToJs([this, number, files](Napi::Env env) {
        auto o = Napi::Object::New(env);
        o.Set("step", Napi::Number::New(env, static_cast<double>(number)));
        o.Set("files", PathArray(env, files));
        Call(env, on_save, {o});
      });
    };
    // A run ends after its current step (with that step's log and save) once cancelled.
    hooks.after_step = [this] {
      if (cancelled()) throw JobAborted();
    };
    if (pushed_) hooks.next_batch = [this] { return NextPushed(); };
    result_ = run_(hooks);
  }

  // A throwing callback stops the run, which rejects with what it threw (as train() does).
  void Call(Napi::Env env, Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
    if (has_js_error()) return;
    try {
      fn.Call(args);
    } catch (const Napi::Error& e) {
      KeepJsError(e.Value());
      Cancel();
    }
  }

  Napi::Value Result(Napi::Env env) override {
    auto o = Napi::Object::New(env);
    o.Set("stepsRun", Napi::Number::New(env, static_cast<double>(result_.steps_run)));
    const auto [step, resume_step] = counts_();
    o.Set("step", Napi::Number::New(env, static_cast<double>(step)));
    o.Set("resumeStep", Napi::Number::New(env, static_cast<double>(resume_step)));
    auto saved = Napi::Array::New(env, result_.saved.size());
    for (size_t i = 0; i < result_.saved.size(); ++i) saved.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(result_.saved[i])));
    o.Set("saved", saved);
    return o;
  }

  void BeforeSettle() override {
    on_log.Reset();
    on_save.Reset();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ended_ = true;
      queue_.clear();
    }
    // Batches the run never took: their pushes settle false.
    for (auto& [id, deferred] : waiting_) deferred.Resolve(Napi::Boolean::New(deferred.Env(), false));
    waiting_.clear();
  }

 public:
  bool pushed_ = false;

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Pushed> queue_;
  bool closed_ = false, ended_ = false;
  std::map<int64_t, Napi::Promise::Deferred> waiting_;  // JS thread only
  int64_t next_id_ = 0;

  LoopRun run_;
  LoopCounts counts_;
  std::shared_ptr<std::atomic<bool>> busy_;
  OpenaiLoopResult result_;
};

}  // namespace

Napi::Object StepLogObject(Napi::Env env, const StepLog& log) {
  auto o = Napi::Object::New(env);
  for (const auto& [key, value] : log) o.Set(key, Napi::Number::New(env, value));
  return o;
}

Napi::Array PathArray(Napi::Env env, const std::vector<std::string>& paths) {
  auto arr = Napi::Array::New(env, paths.size());
  for (size_t i = 0; i < paths.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(env, paths[i]));
  return arr;
}

at::Tensor OptionalTensor(const Napi::Value& v, const char* name) {
  return IsMissing(v) ? at::Tensor() : TensorWrap::From(v, name);
}

void ReadLoopSettings(const Napi::Value& o, LoopSettings& s) {
  s.batch_size = ToInt(Option(o, "batchSize"), "batchSize");
  s.steps = ToInt(Option(o, "steps"), "steps");
  s.log_interval = ToInt(Option(o, "logInterval"), "logInterval");
  s.save_interval = ToInt(Option(o, "saveInterval"), "saveInterval");
  s.out_dir = ToString(Option(o, "outDir"), "outDir");
  s.random_flip = ToBool(Option(o, "randomFlip"), "randomFlip");
}

Napi::Object StartOpenaiLoop(Napi::Env env, LoopRun run, LoopCounts counts, std::shared_ptr<std::atomic<bool>> busy,
                             Napi::Value on_log, Napi::Value on_save, bool pushed) {
  auto job = std::make_shared<OpenaiLoopJob>(env, std::move(run), std::move(counts), busy);
  if (on_log.IsFunction()) job->on_log = Napi::Persistent(on_log.As<Napi::Function>());
  if (on_save.IsFunction()) job->on_save = Napi::Persistent(on_save.As<Napi::Function>());
  job->pushed_ = pushed;
  *busy = true;
  Napi::Object handle;
  try {
    handle = JsJob::Start(env, job);
  } catch (...) {
    *busy = false;
    throw;
  }
  if (pushed) {
    std::weak_ptr<OpenaiLoopJob> weak = job;
    handle.Set("push", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) -> Napi::Value {
                 GD_GUARD(info.Env(), {
                   at::Tensor x = TensorWrap::From(info[0], "batch");
                   at::Tensor y = IsMissing(info[1]) ? at::Tensor() : TensorWrap::From(info[1], "y");
                   auto job = weak.lock();
                   if (!job) {
                     auto done = Napi::Promise::Deferred::New(info.Env());
                     done.Resolve(Napi::Boolean::New(info.Env(), false));
                     return done.Promise();
                   }
                   return job->Push(info.Env(), std::move(x), std::move(y));
                 })
               }));
    handle.Set("close", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) -> Napi::Value {
                 if (auto job = weak.lock()) job->Close();
                 return info.Env().Undefined();
               }));
  }
  return handle;
}

}  // namespace gd::js
