#include "js/sample_job.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <future>
#include <set>
#include <sstream>

#include "js/common.h"
#include "js/cpu_allocator.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("sample() was aborted") {}
};

// Jobs alive on the JS thread; the env cleanup hook and the exit handler stop them. Never
// destroyed: the exit handler runs after function-local statics made later are gone.
std::set<std::shared_ptr<SampleJob>>& Active() {
  static auto* active = new std::set<std::shared_ptr<SampleJob>>();
  return *active;
}

// Set by StopAllAtExit: JS is gone, a stopping job posts nothing to it.
std::atomic<bool> g_exiting{false};

// The JS condFn as a Guidance: the sampling thread posts the call to the JS thread and waits
// for the Tensor it returns (or the Promise of one), polling for abort and the step timeout.
class JsGuidance : public Guidance {
 public:
  explicit JsGuidance(std::weak_ptr<SampleJob> job) : job_(std::move(job)) {}

  at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) override {
    const int64_t step = step_++;
    const int64_t t_value = t.numel() > 0 ? t.reshape(-1)[0].item<int64_t>() : -1;
    std::ostringstream where;
    where << "condFn at step " << step << " (t=" << t_value << ")";
    auto result = std::make_shared<std::promise<at::Tensor>>();
    auto future = result->get_future();
    std::shared_ptr<SampleJob> job = job_.lock();  // alive: its thread is the caller
    std::weak_ptr<SampleJob> weak = job_;
    std::string label = where.str();
    job->PostToJs([weak, result, x, t, label](Napi::Env env) { CallOnJs(env, weak, result, x, t, label); });
    auto started = std::chrono::steady_clock::now();
    while (future.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
      if (job->cancelled()) throw Aborted();
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
      if (job->step_timeout_ms() > 0 && waited >= job->step_timeout_ms()) {
        throw std::runtime_error(label + " did not settle within " + std::to_string(job->step_timeout_ms()) + " ms (stepTimeoutMs)");
      }
    }
    return future.get();
  }

 private:
  using Result = std::shared_ptr<std::promise<at::Tensor>>;

  // One condFn call: the x and t handles it was given, and whether its result is in. A
  // thenable may call back twice, or after the step timed out or the sample ended.
  struct Call {
    std::vector<Napi::ObjectReference> inputs;
    bool settled = false;
    void Release() {
      settled = true;
      for (auto& h : inputs) TensorWrap::UnwrapArg(h.Value(), "input")->Dispose();
      inputs.clear();
    }
  };
  using Handles = std::shared_ptr<Call>;

  // Settles `result` from what condFn gave; takes ownership of the returned tensor (disposes
  // its JS handle) and of the x and t handles passed in.
  static void Settle(const Result& result, Napi::Value value, const std::string& label, const Handles& handles) {
    if (handles->settled) {
      if (TensorWrap::IsTensor(value)) TensorWrap::UnwrapArg(value, "result")->Dispose();
      return;
    }
    try {
      if (!TensorWrap::IsTensor(value)) {
        throw std::runtime_error(label + " returned " + Describe(value) + "; expected a Tensor");
      }
      TensorWrap* w = TensorWrap::UnwrapArg(value, "result");
      if (w->disposed()) throw std::runtime_error(label + " returned a disposed Tensor");
      at::Tensor g = w->tensor();
      bool is_input = false;
      for (auto& h : handles->inputs) is_input = is_input || h.Value() == value.As<Napi::Object>();
      if (!is_input) w->Dispose();
      result->set_value(g);
    } catch (...) {
      result->set_exception(std::current_exception());
    }
    handles->Release();
  }

  // A condFn that throws (or rejects) fails the step; sample() rejects with that JS value.
  static void Fail(const std::weak_ptr<SampleJob>& weak, const Result& result, Napi::Value error,
                   const std::string& label, const Handles& handles) {
    if (handles->settled) return;
    if (auto job = weak.lock()) job->KeepJsError(error);
    // sample() rejects with `error` itself; this message is for the sampling thread.
    result->set_exception(std::make_exception_ptr(std::runtime_error(label + " failed")));
    handles->Release();
  }

  static void CallOnJs(Napi::Env env, const std::weak_ptr<SampleJob>& weak, const Result& result, const at::Tensor& x,
                       const at::Tensor& t, const std::string& label) {
    Napi::HandleScope scope(env);
    auto handles = std::make_shared<Call>();
    auto job = weak.lock();
    if (!job) return;
    try {
      Napi::Object xj = TensorWrap::Wrap(env, x);
      Napi::Object tj = TensorWrap::Wrap(env, t);
      handles->inputs.push_back(Napi::Persistent(xj));
      handles->inputs.push_back(Napi::Persistent(tj));
      Napi::Value r = job->cond_fn().Call({xj, tj});
      if (r.IsPromise() || (r.IsObject() && r.As<Napi::Object>().Get("then").IsFunction())) {
        auto on_ok = Napi::Function::New(env, [result, label, handles](const Napi::CallbackInfo& info) {
          Settle(result, info[0], label, handles);
        });
        auto on_err = Napi::Function::New(env, [weak, result, label, handles](const Napi::CallbackInfo& info) {
          Fail(weak, result, info[0], label, handles);
        });
        // If it never settles, the end of the sample releases x and t.
        job->AtFinish([weak_call = std::weak_ptr<Call>(handles)] {
          if (auto call = weak_call.lock()) call->Release();
        });
        r.As<Napi::Object>().Get("then").As<Napi::Function>().Call(r, {on_ok, on_err});
        return;
      }
      Settle(result, r, label, handles);
    } catch (const Napi::Error& e) {
      Fail(weak, result, e.Value(), label, handles);
    } catch (...) {
      try {
        RethrowAsJs(env);
      } catch (const Napi::Error& e) {
        Fail(weak, result, e.Value(), label, handles);
      }
    }
  }

  std::weak_ptr<SampleJob> job_;
  int64_t step_ = 0;
};

}  // namespace

SampleJob::SampleJob(Napi::Env env) : deferred_(Napi::Promise::Deferred::New(env)) {}

SampleJob::~SampleJob() {
  if (thread_.joinable()) thread_.detach();
}

Napi::Object SampleJob::Start(Napi::Env env, SampleSetup setup) {
  std::shared_ptr<SampleJob> job(new SampleJob(env));
  job->denoiser_ = std::move(setup.denoiser);
  job->schedule_ = std::move(setup.schedule);
  job->options_ = std::move(setup.options);
  job->step_timeout_ms_ = setup.step_timeout_ms;
  if (!setup.cond_fn.IsEmpty()) {
    job->cond_fn_ = Napi::Persistent(setup.cond_fn);
    job->guidance_ = std::make_unique<JsGuidance>(job);
  } else {
    job->guidance_ = std::move(setup.native_guidance);
  }
  if (!setup.on_progress.IsEmpty()) job->on_progress_ = Napi::Persistent(setup.on_progress);
  job->tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                             "guided-diffusion.sample", 0, 1);
  Active().insert(job);
  SampleJob* raw = job.get();
  job->thread_ = std::thread([raw] { raw->Run(); });

  auto handle = Napi::Object::New(env);
  handle.Set("promise", job->deferred_.Promise());
  std::weak_ptr<SampleJob> weak = job;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) {
               if (auto j = weak.lock()) j->cancelled_ = true;
               return info.Env().Undefined();
             }));
  return handle;
}

void SampleJob::StopAll() {
  auto& active = Active();
  for (const auto& job : active) job->cancelled_ = true;
  for (const auto& job : active) {
    if (job->thread_.joinable()) job->thread_.join();
  }
  active.clear();
}

// process.exit() calls exit() without tearing the environment down, so no cleanup hook runs,
// and exit() destroys LibTorch's statics (the operator registry, the autograd engine) under a
// sampling thread still in a forward or a backward: SIGSEGV. This runs from process.on('exit'),
// before exit(): it stops every job and waits for its thread, and leaves the jobs and their JS
// references alone.
void SampleJob::StopAllAtExit() {
  g_exiting = true;
  for (const auto& job : Active()) job->cancelled_ = true;
  for (const auto& job : Active()) {
    if (job->thread_.joinable()) job->thread_.join();
  }
}

void SampleJob::PostToJs(std::function<void(Napi::Env)> fn) {
  tsfn_.NonBlockingCall([fn = std::move(fn)](Napi::Env env, Napi::Function) { fn(env); });
}

void SampleJob::KeepJsError(Napi::Value error) {
  // Held in an object: a thrown string or undefined cannot be referenced directly (N-API 8).
  if (!js_error_.IsEmpty()) return;
  Napi::Object holder = Napi::Object::New(error.Env());
  holder.Set("error", error);
  js_error_ = Napi::Persistent(holder);
  has_js_error_ = true;
}

void SampleJob::Run() {
  CpuCacheUse cache_use;
  try {
    options_.on_step = [this](int64_t step, int64_t total, int64_t t) {
      if (cancelled()) throw Aborted();
      if (!on_progress_.IsEmpty()) {
        PostToJs([this, step, total, t](Napi::Env env) {
          if (cancelled_) return;
          try {
            on_progress_.Call({Napi::Number::New(env, double(step)), Napi::Number::New(env, double(total)),
                               Napi::Number::New(env, double(t))});
          } catch (const Napi::Error& e) {
            KeepJsError(e.Value());
            cancelled_ = true;
          }
        });
      }
    };
    result_ = sample(*denoiser_, *schedule_, guidance_.get(), options_);
  } catch (const Aborted&) {
    failed_ = true;
    aborted_ = !has_js_error_;  // js_error_ itself belongs to the JS thread
    error_ = "sample() was aborted";
  } catch (const c10::Error& e) {
    failed_ = true;
    error_ = TrimTorchMessage(e.what_without_backtrace());  // a TorchScript error: its cause, not the traceback
  } catch (const std::exception& e) {
    failed_ = true;
    error_ = TrimTorchMessage(e.what());
  }
  guidance_.reset();
  if (g_exiting) return;
  PostToJs([this](Napi::Env env) { Finish(env); });
}

void SampleJob::Finish(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (thread_.joinable()) thread_.join();
  // Keep this job alive until the end of this call, then drop it from the registry.
  std::shared_ptr<SampleJob> self = shared_from_this();
  Active().erase(self);
  if (at_finish_) at_finish_();
  at_finish_ = nullptr;
  if (failed_ && !js_error_.IsEmpty() && !aborted_) {
    deferred_.Reject(js_error_.Value().Get("error"));
  } else if (failed_) {
    Napi::Error err = Napi::Error::New(env, error_);
    if (aborted_) err.Set("name", Napi::String::New(env, "AbortError"));
    deferred_.Reject(err.Value());
  } else {
    try {
      deferred_.Resolve(TensorWrap::Wrap(env, result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  result_ = at::Tensor();
  cond_fn_.Reset();
  on_progress_.Reset();
  js_error_.Reset();
  tsfn_.Release();
}

}  // namespace gd::js
