#include "js/addon_env.h"

#include <cstdlib>
#include <mutex>

#include "js/js_job.h"

namespace gd::js {

namespace {

// The first load on this thread; a worker is a thread of its own.
thread_local napi_env t_first_env = nullptr;
thread_local Napi::ObjectReference* t_exports = nullptr;

// Every live AddonEnv, for the atexit fallback only: exit() can run with jobs of the main
// thread in flight when it skips process.on('exit').
std::mutex& LiveMutex() {
  static auto* m = new std::mutex();  // never destroyed: used from atexit
  return *m;
}
std::set<AddonEnv*>& Live() {
  static auto* live = new std::set<AddonEnv*>();
  return *live;
}

void StopAllAtExit() {
  std::lock_guard<std::mutex> lock(LiveMutex());
  for (AddonEnv* data : Live()) JsJob::StopAllAtExit(*data);
}

// Runs while the environment can still take N-API calls, before the object finalizers: stops
// and joins the jobs' threads and drops the jobs with their JS references.
void TearDown(void* arg) {
  auto* data = static_cast<AddonEnv*>(arg);
  {
    std::lock_guard<std::mutex> lock(LiveMutex());
    Live().erase(data);
  }
  JsJob::StopAll(*data);
  delete t_exports;
  t_exports = nullptr;
  t_first_env = nullptr;
}

}  // namespace

std::optional<Napi::Object> EarlierExports(Napi::Env env) {
  if (t_first_env != nullptr && t_first_env != static_cast<napi_env>(env) && t_exports != nullptr) return t_exports->Value();
  return std::nullopt;
}

void SetUpAddonEnv(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonEnv();
  // Deleted after the finalizers of the objects made later (N-API finalizes the newest first),
  // so a Tensor collected at teardown still finds its tidy scopes and counts.
  env.SetInstanceData<AddonEnv>(data);
  napi_add_env_cleanup_hook(env, TearDown, data);
  t_first_env = env;
  t_exports = new Napi::ObjectReference(Napi::Persistent(exports));
  {
    std::lock_guard<std::mutex> lock(LiveMutex());
    Live().insert(data);
  }
  // lib/binding.ts calls this from process.on('exit'), before exit() runs any static
  // destructor; the atexit handler is the fallback for an exit() that skips that event.
  exports.Set("stopJobsForExit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                JsJob::StopAllAtExit(GetAddonEnv(info.Env()));
                return info.Env().Undefined();
              }, "stopJobsForExit"));
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(StopAllAtExit); });
}

AddonEnv* FindAddonEnv(napi_env env) noexcept {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<AddonEnv*>(data);
}

AddonEnv& GetAddonEnv(Napi::Env env) {
  AddonEnv* data = FindAddonEnv(env);
  if (data == nullptr) throw Napi::Error::New(env, "guided-diffusion: the addon was not set up in this environment");
  return *data;
}

}  // namespace gd::js
