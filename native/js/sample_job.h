// One sample() call: the sampling loop as a JsJob, calling the JS condFn and onProgress on the
// JS thread.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <functional>
#include <memory>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"
#include "js/js_job.h"

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

class SampleJob : public JsJob {
 public:
  // Starts the job; returns {promise, cancel()} to JS.
  static Napi::Object Start(Napi::Env env, SampleSetup setup);

  int64_t step_timeout_ms() const { return step_timeout_ms_; }
  Napi::FunctionReference& cond_fn() { return cond_fn_; }
  // JS-thread work for the end of the job: releasing what a condFn call that has not settled
  // still holds.
  void AtFinish(std::function<void()> fn) { at_finish_ = std::move(fn); }

 private:
  explicit SampleJob(Napi::Env env) : JsJob(env, "sample() was aborted") {}
  void Work() override;
  Napi::Value Result(Napi::Env env) override;
  void BeforeSettle() override;

  Napi::FunctionReference cond_fn_;
  Napi::FunctionReference on_progress_;
  std::function<void()> at_finish_;
  std::unique_ptr<Guidance> guidance_;
  std::shared_ptr<const Denoiser> denoiser_;
  std::shared_ptr<const Schedule> schedule_;
  SampleOptions options_;
  int64_t step_timeout_ms_ = 0;
  at::Tensor result_;
};

}  // namespace gd::js
