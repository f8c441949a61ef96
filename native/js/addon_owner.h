// Which thread has the addon. Its tables (constructors, tidy scopes, memory counts, running
// samples) are per process and its objects belong to one JS thread, so a second load must not
// rebuild them: on the same thread (require() after clearing the require cache, a test
// runner's fresh module registry) it gets the first load's exports; on another (a worker) an
// Error, until the owner's environment is torn down.
#pragma once

#include <napi.h>

#include <optional>

namespace gd::js {

// Claims the addon for this thread. Returns the exports of an earlier load on it, or nothing on
// the first load (then call KeepExports); throws a JS Error when another thread has it.
std::optional<Napi::Object> ClaimAddon(Napi::Env env);
void KeepExports(Napi::Env env, Napi::Object exports);

}  // namespace gd::js
