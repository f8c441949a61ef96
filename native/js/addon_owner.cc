#include "js/addon_owner.h"

#include <mutex>
#include <thread>

namespace gd::js {

namespace {

// Every load gets a napi_env of its own, even on the same thread: the owner is a thread.
std::mutex g_mutex;
bool g_owned = false;
std::thread::id g_owner;
Napi::ObjectReference* g_exports = nullptr;

void Release(void*) {
  std::lock_guard<std::mutex> lock(g_mutex);
  delete g_exports;
  g_exports = nullptr;
  g_owned = false;
}

}  // namespace

std::optional<Napi::Object> ClaimAddon(Napi::Env env) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_owned && g_owner == std::this_thread::get_id()) {
    if (g_exports != nullptr) return g_exports->Value();
    return std::nullopt;
  }
  if (g_owned) {
    throw Napi::Error::New(env, "guided-diffusion is already loaded in another thread of this process (the main thread or a worker); "
                                "use it from one thread at a time");
  }
  g_owned = true;
  g_owner = std::this_thread::get_id();
  napi_add_env_cleanup_hook(env, Release, nullptr);
  return std::nullopt;
}

void KeepExports(Napi::Env env, Napi::Object exports) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_owned && g_owner == std::this_thread::get_id() && g_exports == nullptr) g_exports = new Napi::ObjectReference(Napi::Persistent(exports));
}

}  // namespace gd::js
