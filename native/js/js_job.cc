#include "js/js_job.h"

#include <c10/util/Exception.h>

#include "js/common.h"
#include "js/cpu_allocator.h"
#include "js/openmp_pool.h"

namespace gd::js {

JsJob::JsJob(Napi::Env env, std::string abort_message)
    : deferred_(Napi::Promise::Deferred::New(env)), abort_message_(std::move(abort_message)) {}

JsJob::~JsJob() {
  if (thread_.joinable()) thread_.detach();
}

Napi::Object JsJob::Start(Napi::Env env, const std::shared_ptr<JsJob>& job) {
  job->tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                             "guided-diffusion.job", 0, 1);
  GetAddonEnv(env).jobs.insert(job);
  ReleaseOpenMpPool();  // the job's team must be the only one (openmp_pool.h)
  JsJob* raw = job.get();
  job->thread_ = std::thread([raw] { raw->ThreadMain(); });

  auto handle = Napi::Object::New(env);
  handle.Set("promise", job->deferred_.Promise());
  std::weak_ptr<JsJob> weak = job;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) {
               if (auto j = weak.lock()) j->Cancel();
               return info.Env().Undefined();
             }));
  return handle;
}

void JsJob::StopAll(AddonEnv& data) {
  StopAllAtExit(data);
  data.jobs.clear();
}

// process.exit() calls exit() without tearing the environment down, so no cleanup hook runs,
// and exit() destroys LibTorch's statics (the operator registry, the autograd engine) under a
// job thread still in a forward or a backward: SIGSEGV. This runs from process.on('exit') and
// atexit, before that: it stops every job and waits for its thread, and leaves the jobs and
// their JS references alone.
void JsJob::StopAllAtExit(AddonEnv& data) {
  for (const auto& job : data.jobs) {
    job->exiting_ = true;
    job->Cancel();
  }
  for (const auto& job : data.jobs) {
    if (job->thread_.joinable()) job->thread_.join();
  }
}

void JsJob::PostToJs(std::function<void(Napi::Env)> fn) {
  if (exiting_) return;
  // napi_closing once the environment is going away: the call is dropped, as intended. A call
  // that runs while the environment is terminated finds every N-API call throwing; nothing can
  // reach JS then, and a C++ exception must not leave the callback (std::terminate).
  tsfn_.NonBlockingCall([fn = std::move(fn)](Napi::Env env, Napi::Function) {
    try {
      fn(env);
    } catch (const Napi::Error&) {
    }
  });
}

void JsJob::KeepJsError(Napi::Value error) {
  // Held in an object: a thrown string or undefined cannot be referenced directly (N-API 8).
  if (!js_error_.IsEmpty()) return;
  Napi::Object holder = Napi::Object::New(error.Env());
  holder.Set("error", error);
  js_error_ = Napi::Persistent(holder);
  has_js_error_ = true;
}

// No exception may leave a std::thread (std::terminate): everything becomes error_.
void JsJob::ThreadMain() {
  CpuCacheUse cache_use;
  try {
    Work();
  } catch (const JobAborted&) {
    failed_ = true;
    aborted_ = true;
    error_ = abort_message_;
  } catch (const Napi::Error&) {
    // Never reaches here by design (sample_job.cc converts JS-thread errors); its what() would
    // make V8 handles on this thread, which aborts the process.
    failed_ = true;
    error_ = "a JS error reached the job's thread";
  } catch (const c10::Error& e) {
    failed_ = true;
    error_ = TrimTorchMessage(e.what_without_backtrace());  // a TorchScript error: its cause, not the traceback
  } catch (const std::exception& e) {
    failed_ = true;
    error_ = TrimTorchMessage(e.what());
  } catch (...) {
    failed_ = true;
    error_ = "unknown native error";
  }
  // Left to the thread's exit, libgomp frees this thread's pool with detached workers that end
  // some time after the join in Finish; paused here, they are joined before the promise settles.
  ReleaseOpenMpPool();
  // Held by the environment's table until Finish; a Finish that never runs (the environment
  // went away first) must not keep the job, and what it holds, alive.
  std::weak_ptr<JsJob> weak = weak_from_this();
  PostToJs([weak](Napi::Env env) {
    if (auto job = weak.lock()) job->Finish(env);
  });
}

void JsJob::Finish(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (thread_.joinable()) thread_.join();
  // Keep this job alive until the end of this call, then drop it from the table.
  std::shared_ptr<JsJob> self = shared_from_this();
  GetAddonEnv(env).jobs.erase(self);
  BeforeSettle();
  // A JS callback that threw fails the job even when the work finished first: the error of an
  // onProgress posted before the end is only seen here, after the last step.
  if (!js_error_.IsEmpty()) {
    deferred_.Reject(js_error_.Value().Get("error"));
  } else if (failed_) {
    Napi::Error err = Napi::Error::New(env, error_);
    if (aborted_) err.Set("name", Napi::String::New(env, "AbortError"));
    deferred_.Reject(err.Value());
  } else {
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }
  js_error_.Reset();
  tsfn_.Release();
}

}  // namespace gd::js
