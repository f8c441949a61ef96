// Registers the addon's exports; the work lives in native/js (bindings) and below.
#include <napi.h>
#include <ATen/Context.h>

#include <mutex>

#include "js/addon_env.h"
#include "js/cpu_allocator.h"
#include "js/installers.h"
#include "js/module_wrap.h"
#include "js/tensor_wrap.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (auto earlier = gd::js::EarlierExports(env)) return *earlier;  // see js/addon_env.h
  gd::js::SetUpAddonEnv(env, exports);
  // Process-wide settings, once however many workers load the addon. NNPACK cannot
  // initialise on many CPUs and then warns on every convolution; the default convolution path
  // is as fast for our shapes.
  static std::once_flag once;
  std::call_once(once, [] { at::globalContext().setUserEnabledNNPACK(false); });
  gd::js::InstallCpuAllocator();
  gd::js::TensorWrap::Init(env, exports);
  gd::js::ModuleWrap::Init(env, exports);
  gd::js::InstallTorchFunctions(env, exports);
  gd::js::InstallModuleFunctions(env, exports);
  gd::js::InstallDiffusion(env, exports);
  gd::js::InstallTraining(env, exports);
  gd::js::InstallImage(env, exports);
  gd::js::InstallOpenaiModels(env, exports);
  gd::js::InstallCheckpoints(env, exports);
  gd::js::InstallDistributed(env, exports);
  gd::js::InstallOptionKeys(env, exports);
  gd::js::InstallScheduleSampler(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(guided_diffusion, Init)
