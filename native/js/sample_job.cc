#include "js/sample_job.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <future>
#include <set>
#include <sstream>

#include "js/common.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("sample() was aborted") {}
};

// Jobs alive on the JS thread; the env cleanup hook stops them so process.exit is clean.
std::set<std::shared_ptr<SampleJob>>& Active() {
  static std::set<std::shared_ptr<SampleJob>> active;
  return active;
}

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
  using Handles = std::shared_ptr<std::vector<Napi::ObjectReference>>;

  // Settles `result` from what condFn gave; takes ownership of the returned tensor (disposes
  // its JS handle) and of the x and t handles passed in.
  static void Settle(const Result& result, Napi::Value value, const std::string& label, const Handles& handles) {
    try {
      if (!TensorWrap::IsTensor(value)) {
        throw std::runtime_error(label + " returned " + Describe(value) + "; expected a Tensor");
      }
      TensorWrap* w = TensorWrap::UnwrapArg(value, "result");
      if (w->disposed()) throw std::runtime_error(label + " returned a disposed Tensor");
      at::Tensor g = w->tensor();
      bool is_input = false;
      for (auto& h : *handles) is_input = is_input || h.Value() == value.As<Napi::Object>();
      if (!is_input) w->Dispose();
      result->set_value(g);
    } catch (...) {
      result->set_exception(std::current_exception());
    }
    for (auto& h : *handles) TensorWrap::UnwrapArg(h.Value(), "input")->Dispose();
    handles->clear();
  }

  // A condFn that throws (or rejects) fails the step; sample() rejects with that JS value.
  static void Fail(const std::weak_ptr<SampleJob>& weak, const Result& result, Napi::Value error,
                   const std::string& label, const Handles& handles) {
    if (auto job = weak.lock()) job->KeepJsError(error);
    std::string msg = label + " failed";
    if (error.IsObject()) msg += ": " + error.As<Napi::Object>().Get("message").ToString().Utf8Value();
    result->set_exception(std::make_exception_ptr(std::runtime_error(msg)));
    for (auto& h : *handles) TensorWrap::UnwrapArg(h.Value(), "input")->Dispose();
    handles->clear();
  }

  static void CallOnJs(Napi::Env env, const std::weak_ptr<SampleJob>& weak, const Result& result, const at::Tensor& x,
                       const at::Tensor& t, const std::string& label) {
    Napi::HandleScope scope(env);
    auto handles = std::make_shared<std::vector<Napi::ObjectReference>>();
    auto job = weak.lock();
    if (!job) return;
    try {
      Napi::Object xj = TensorWrap::Wrap(env, x);
      Napi::Object tj = TensorWrap::Wrap(env, t);
      handles->push_back(Napi::Persistent(xj));
      handles->push_back(Napi::Persistent(tj));
      Napi::Value r = job->cond_fn().Call({xj, tj});
      if (r.IsPromise() || (r.IsObject() && r.As<Napi::Object>().Get("then").IsFunction())) {
        auto on_ok = Napi::Function::New(env, [result, label, handles](const Napi::CallbackInfo& info) {
          Settle(result, info[0], label, handles);
        });
        auto on_err = Napi::Function::New(env, [weak, result, label, handles](const Napi::CallbackInfo& info) {
          Fail(weak, result, info[0], label, handles);
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

void SampleJob::PostToJs(std::function<void(Napi::Env)> fn) {
  tsfn_.NonBlockingCall([fn = std::move(fn)](Napi::Env env, Napi::Function) { fn(env); });
}

void SampleJob::KeepJsError(Napi::Value error) {
  if (js_error_.IsEmpty()) js_error_ = Napi::Persistent(error);
}

void SampleJob::Run() {
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
    aborted_ = js_error_.IsEmpty();
    error_ = "sample() was aborted";
  } catch (const c10::Error& e) {
    failed_ = true;
    error_ = e.what_without_backtrace();
  } catch (const std::exception& e) {
    failed_ = true;
    error_ = e.what();
  }
  guidance_.reset();
  PostToJs([this](Napi::Env env) { Finish(env); });
}

void SampleJob::Finish(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (thread_.joinable()) thread_.join();
  // Keep this job alive until the end of this call, then drop it from the registry.
  std::shared_ptr<SampleJob> self = shared_from_this();
  Active().erase(self);
  if (failed_ && !js_error_.IsEmpty() && !aborted_) {
    deferred_.Reject(js_error_.Value());
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
