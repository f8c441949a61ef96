// One sample() call: the sampling loop on a thread of its own, talking to the JS thread
// through a thread-safe function (progress, the JS condFn, completion).
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"

namespace gd::js {

struct SampleSetup {
  std::shared_ptr<const Denoiser> denoiser;
  std::shared_ptr<const Schedule> schedule;
  SampleOptions options;
  // Exactly one of these, or neither (unguided).
  Napi::Function cond_fn;
  std::unique_ptr<Guidance> native_guidance;
  Napi::Function on_progress;
  int64_t step_timeout_ms = 0;  // 0: wait for condFn as long as it takes
};

class SampleJob : public std::enable_shared_from_this<SampleJob> {
 public:
  // Starts the job; returns {promise, cancel()} to JS.
  static Napi::Object Start(Napi::Env env, SampleSetup setup);
  // Stops every running job and waits for its thread (the environment is shutting down).
  static void StopAll();
  // The same when the process exits (process.exit): joins the threads, touches nothing of JS.
  static void StopAllAtExit();

  ~SampleJob();

  // Runs fn on the JS thread and waits for it; false when JS is gone (shutting down).
  bool RunOnJs(std::function<void(Napi::Env)> fn);
  void PostToJs(std::function<void(Napi::Env)> fn);
  bool cancelled() const { return cancelled_.load(); }
  int64_t step_timeout_ms() const { return step_timeout_ms_; }
  Napi::FunctionReference& cond_fn() { return cond_fn_; }
  // The JS value a condFn threw, kept to reject sample() with that very value.
  void KeepJsError(Napi::Value error);
  // JS-thread work for Finish: releasing what a condFn call that has not settled still holds.
  void AtFinish(std::function<void()> fn) { at_finish_ = std::move(fn); }

 private:
  explicit SampleJob(Napi::Env env);
  void Run();
  void Finish(Napi::Env env);

  Napi::Promise::Deferred deferred_;
  Napi::ThreadSafeFunction tsfn_;
  Napi::FunctionReference cond_fn_;
  Napi::FunctionReference on_progress_;
  Napi::ObjectReference js_error_;  // {error: the value thrown}
  std::atomic<bool> has_js_error_{false};  // js_error_ was set (read on the sampling thread)
  std::function<void()> at_finish_;
  std::unique_ptr<Guidance> guidance_;
  std::shared_ptr<const Denoiser> denoiser_;
  std::shared_ptr<const Schedule> schedule_;
  SampleOptions options_;
  int64_t step_timeout_ms_ = 0;

  std::atomic<bool> cancelled_{false};
  std::thread thread_;
  at::Tensor result_;
  std::string error_;
  bool failed_ = false;
  bool aborted_ = false;
};

}  // namespace gd::js
