// Registers the addon's exports; the work lives in native/js (bindings) and below.
#include <napi.h>

#include "js/installers.h"
#include "js/tensor_wrap.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  gd::js::TensorWrap::Init(env, exports);
  gd::js::InstallTorchFunctions(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(guided_diffusion, Init)
