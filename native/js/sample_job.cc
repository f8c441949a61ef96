#include "js/sample_job.h"

#include <chrono>
#include <future>
#include <sstream>

#include "js/common.h"
#include "js/openmp_pool.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

// The JS condFn as a Guidance: the sampling thread posts the call to the JS thread and waits
// for the Tensor it returns (or the Promise of one), polling for abort and the step timeout.
class JsGuidance : public Guidance {
 public:
  explicit JsGuidance(std::weak_ptr<SampleJob> job) : job_(std::move(job)) {}

  at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) override { return gradient_in(x, t, {}); }

  at::Tensor gradient_in(const at::Tensor& x, const at::Tensor& t, const GuidanceContext& context) override {
    return Ask(x, t, context, false);
  }

  // guidanceInput 'x0': condFn(x0, t, kwargs, context) with grad mode on on the JS thread (it
  // is off there by default), so that its loss keeps the graph back to x_t.
  at::Tensor loss(const at::Tensor& x0, const at::Tensor& t, const GuidanceContext& context) override {
    return Ask(x0, t, context, true);
  }

 private:
  at::Tensor Ask(const at::Tensor& x, const at::Tensor& t, const GuidanceContext& context, bool grad) {
    const int64_t step = step_++;
    const int64_t t_value = t.numel() > 0 ? t.reshape(-1)[0].item<int64_t>() : -1;
    std::ostringstream where;
    where << "condFn at step " << step << " (t=" << t_value << ")";
    auto result = std::make_shared<std::promise<at::Tensor>>();
    auto future = result->get_future();
    std::shared_ptr<SampleJob> job = job_.lock();  // alive: its thread is the caller
    std::weak_ptr<SampleJob> weak = job_;
    std::string label = where.str();
    // While condFn runs, the JS thread's team should be the only one (openmp_pool.h); freeing
    // this thread's pool costs a new one after the call (a few ms), so only for a condFn whose
    // last call took long enough to gain from it (a classifier gradient, not a cheap function).
    if (long_calls_) ReleaseOpenMpPool();
    job->PostToJs([weak, result, x, t, context, grad, label](Napi::Env env) {
      at::AutoGradMode grad_mode(grad || at::GradMode::is_enabled());
      CallOnJs(env, weak, result, x, t, context, label);
    });
    auto started = std::chrono::steady_clock::now();
    while (future.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
      if (job->cancelled()) throw JobAborted();
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
      if (job->step_timeout_ms() > 0 && waited >= job->step_timeout_ms()) {
        throw std::runtime_error(label + " did not settle within " + std::to_string(job->step_timeout_ms()) + " ms (stepTimeoutMs)");
      }
    }
    long_calls_ = std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(5);
    return future.get();
  }

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
    } catch (const Napi::Error& e) {
      // A Napi::Error reads its message through V8 handles, which only this thread may make:
      // rethrown on the sampling thread, its what() aborted the process (a worker terminated
      // while condFn returned makes every N-API call here throw). Its text goes instead.
      result->set_exception(std::make_exception_ptr(std::runtime_error(label + " failed: " + e.Message())));
    } catch (...) {
      result->set_exception(std::current_exception());
    }
    handles->Release();
    ReleaseOpenMpPool();  // condFn's tensor ops gave this thread a pool again (openmp_pool.h)
  }

  // A condFn that throws (or rejects) fails the step; sample() rejects with that JS value.
  static void Fail(const std::weak_ptr<SampleJob>& weak, const Result& result, Napi::Value error,
                   const std::string& label, const Handles& handles) {
    if (handles->settled) return;
    if (auto job = weak.lock()) job->KeepJsError(error);
    // sample() rejects with `error` itself; this message is for the sampling thread.
    result->set_exception(std::make_exception_ptr(std::runtime_error(label + " failed")));
    handles->Release();
    ReleaseOpenMpPool();
  }

  // condFn's fourth argument: { x0, eps, alphaBar, sigma, step, total }; its tensors are owned
  // like x and t (released when the call settles).
  static Napi::Object WrapContext(Napi::Env env, const GuidanceContext& c, const Handles& handles) {
    Napi::Object ctx = Napi::Object::New(env);
    for (const auto& [name, tensor] : {std::pair<const char*, const at::Tensor*>{"x0", &c.x0}, {"eps", &c.eps}}) {
      if (!tensor->defined()) continue;
      Napi::Object wrapped = TensorWrap::Wrap(env, *tensor);
      handles->inputs.push_back(Napi::Persistent(wrapped));
      ctx.Set(name, wrapped);
    }
    ctx.Set("alphaBar", Napi::Number::New(env, c.alpha_bar));
    ctx.Set("sigma", Napi::Number::New(env, c.sigma));
    ctx.Set("step", Napi::Number::New(env, double(c.step)));
    ctx.Set("total", Napi::Number::New(env, double(c.total)));
    return ctx;
  }

  static void CallOnJs(Napi::Env env, const std::weak_ptr<SampleJob>& weak, const Result& result, const at::Tensor& x,
                       const at::Tensor& t, const GuidanceContext& context, const std::string& label) {
    Napi::HandleScope scope(env);
    auto handles = std::make_shared<Call>();
    auto job = weak.lock();
    if (!job) return;
    try {
      Napi::Object xj = TensorWrap::Wrap(env, x);
      Napi::Object tj = TensorWrap::Wrap(env, t);
      handles->inputs.push_back(Napi::Persistent(xj));
      handles->inputs.push_back(Napi::Persistent(tj));
      Napi::Object ctx = WrapContext(env, context, handles);
      Napi::Value r = job->cond_fn().Call({xj, tj, ctx});
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
  bool long_calls_ = false;  // the last condFn call took 5 ms or more
};

}  // namespace

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
  return JsJob::Start(env, job);
}

void SampleJob::Work() {
  options_.on_step = [this](int64_t step, int64_t total, double t) {
    if (cancelled()) throw JobAborted();
    if (!on_progress_.IsEmpty()) {
      PostToJs([this, step, total, t](Napi::Env env) {
        if (cancelled()) return;
        try {
          on_progress_.Call({Napi::Number::New(env, double(step)), Napi::Number::New(env, double(total)),
                             Napi::Number::New(env, double(t))});
        } catch (const Napi::Error& e) {
          KeepJsError(e.Value());
          Cancel();
        }
      });
    }
  };
  try {
    result_ = sample(*denoiser_, *schedule_, guidance_.get(), options_);
  } catch (...) {
    guidance_.reset();
    throw;
  }
  guidance_.reset();
}

Napi::Value SampleJob::Result(Napi::Env env) {
  Napi::Value out = TensorWrap::Wrap(env, result_);
  result_ = at::Tensor();
  return out;
}

void SampleJob::BeforeSettle() {
  if (at_finish_) at_finish_();
  at_finish_ = nullptr;
}

}  // namespace gd::js
