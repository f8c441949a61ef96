// The JS face of a torch::jit::Module: native models and checkpoints loaded with jit.load.
#pragma once

#include <napi.h>
#include <torch/script.h>

namespace gd::js {

class ModuleWrap : public Napi::ObjectWrap<ModuleWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object Wrap(Napi::Env env, torch::jit::Module module);
  // The module behind a JS value; TypeError when it is not a Module, Error when disposed.
  static const torch::jit::Module& From(const Napi::Value& v, const char* name);

  explicit ModuleWrap(const Napi::CallbackInfo& info);

 private:
  torch::jit::Module& module(const Napi::Env& env);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value CallMethod(const Napi::CallbackInfo& info);
  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value IsTraining(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value NamedParameters(const Napi::CallbackInfo& info);
  Napi::Value NamedBuffers(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Attribute(const Napi::CallbackInfo& info);
  Napi::Value ForwardSchema(const Napi::CallbackInfo& info);
  Napi::Value TypeName(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // A handle: copies share the module, so a running sample keeps it alive after dispose().
  std::optional<torch::jit::Module> module_;
};

}  // namespace gd::js
