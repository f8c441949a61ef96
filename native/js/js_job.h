// A native job with a thread of its own (sample(), a training run) whose end settles a
// Promise on the JS thread. The thread reaches JS only through a thread-safe function. The job
// ends on the JS thread (Finish) or, when its environment goes away (a worker ends or is
// terminated) or the process exits, it is cancelled and its thread joined without touching JS.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "js/addon_env.h"

namespace gd::js {

// Thrown on a job's thread when it notices it was cancelled.
struct JobAborted : std::runtime_error {
  JobAborted() : std::runtime_error("aborted") {}
};

class JsJob : public std::enable_shared_from_this<JsJob> {
 public:
  virtual ~JsJob();
  JsJob(const JsJob&) = delete;
  JsJob& operator=(const JsJob&) = delete;

  // Registers the job with its environment and starts its thread; returns {promise, cancel()}.
  static Napi::Object Start(Napi::Env env, const std::shared_ptr<JsJob>& job);
  // The environment is being torn down: cancels every job of it, joins their threads and
  // drops them (their JS references are released while N-API still works).
  static void StopAll(AddonEnv& data);
  // process.exit(): cancels and joins the same way, but touches nothing of JS.
  static void StopAllAtExit(AddonEnv& data);

  bool cancelled() const { return cancelled_.load(); }
  void Cancel() { cancelled_ = true; }
  // Queues fn for the JS thread (never blocks); dropped when the environment is going away.
  void PostToJs(std::function<void(Napi::Env)> fn);
  // JS thread: the value a JS callback (condFn, onProgress) threw; the promise rejects with
  // that very value. The first one wins.
  void KeepJsError(Napi::Value error);
  bool has_js_error() const { return has_js_error_.load(); }

 protected:
  // abort_message: the AbortError's message when the job is cancelled.
  JsJob(Napi::Env env, std::string abort_message);
  // The work, on the job's thread; throws JobAborted when cancelled.
  virtual void Work() = 0;
  // JS thread, after Work succeeded: the value the promise resolves with.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // JS thread, before the promise settles: release what JS callbacks still hold.
  virtual void BeforeSettle() {}

 private:
  void ThreadMain();
  void Finish(Napi::Env env);

  Napi::Promise::Deferred deferred_;
  Napi::ThreadSafeFunction tsfn_;
  Napi::ObjectReference js_error_;  // {error: the value thrown}
  std::atomic<bool> has_js_error_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> exiting_{false};  // process exit: post nothing more to JS
  std::thread thread_;
  std::string abort_message_;
  std::string error_;
  bool failed_ = false;
  bool aborted_ = false;
};

}  // namespace gd::js
