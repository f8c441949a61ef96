// The addon's state for one JS environment (the main thread, or one worker thread): its
// classes, tidy scopes, memory counts and running jobs. Each load of the addon gets its own
// napi_env, and the objects of one environment never reach another, so none of this is shared
// between threads; what is (LibTorch itself, the CPU allocator) is thread-safe. Several workers
// can therefore load the addon at once, and load it again after others have exited.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <unordered_set>
#include <vector>

namespace gd::js {

class TensorWrap;
class JsJob;

struct AddonEnv {
  Napi::FunctionReference tensor_class;
  Napi::FunctionReference module_class;
  Napi::FunctionReference diffusion_class;
  Napi::FunctionReference openai_trainer_class;  // made on first use (js/openai_train_wrap.cc)
  Napi::FunctionReference openai_classifier_trainer_class;  // made on first use (js/openai_classifier_wrap.cc)
  // torch.tidy scopes: a stack of sets of the tensors created while each scope was open.
  std::vector<std::unordered_set<TensorWrap*>> scopes;
  // Live JS tensors and their bytes (torch.memory()).
  int64_t tensors = 0;
  int64_t bytes = 0;
  // sample() and training jobs whose promises have not settled yet.
  std::set<std::shared_ptr<JsJob>> jobs;
};

// The exports of an earlier load on this thread (require() after the require cache was
// cleared, a test runner's fresh module registry): that load's objects and classes are the
// ones in use, so a second load returns them rather than building a second set.
std::optional<Napi::Object> EarlierExports(Napi::Env env);
// First load in an environment: creates its AddonEnv, and the hooks that stop its jobs when
// the environment is torn down (a worker ends or is terminated) or the process exits.
void SetUpAddonEnv(Napi::Env env, Napi::Object exports);
// This environment's state.
AddonEnv& GetAddonEnv(Napi::Env env);
// The same, or null, without throwing: for destructors.
AddonEnv* FindAddonEnv(napi_env env) noexcept;

}  // namespace gd::js
