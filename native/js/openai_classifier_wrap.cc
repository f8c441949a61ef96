// NativeOpenaiClassifierTrainer: runStep(x0, y, t?, noise?) and evaluate(x0, y, t?, noise?) ->
// their logged keys; step(); save(dir) -> the paths written.
#include "js/openai_classifier_wrap.h"

#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "diffusion/openai_classifier_step.h"
#include "js/addon_env.h"
#include "js/common.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

Napi::Object ToObject(Napi::Env env, const StepLog& log) {
  auto o = Napi::Object::New(env);
  for (const auto& [key, value] : log) o.Set(key, Napi::Number::New(env, value));
  return o;
}

class OpenaiClassifierTrainerWrap : public Napi::ObjectWrap<OpenaiClassifierTrainerWrap> {
 public:
  static thread_local std::shared_ptr<OpenaiClassifierStep>* pending;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeOpenaiClassifierTrainer",
                       {
                           InstanceMethod<&OpenaiClassifierTrainerWrap::RunStep>("runStep"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Evaluate>("evaluate"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Step>("step"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Save>("save"),
                       });
  }

  explicit OpenaiClassifierTrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OpenaiClassifierTrainerWrap>(info) {
    if (pending == nullptr) throw Napi::TypeError::New(info.Env(), "NativeOpenaiClassifierTrainer cannot be constructed directly");
    trainer_ = *pending;
    pending = nullptr;
  }

 private:
  static at::Tensor Optional(const Napi::Value& v, const char* name) {
    return IsMissing(v) ? at::Tensor() : TensorWrap::From(v, name);
  }

  Napi::Value RunStep(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return ToObject(info.Env(), trainer_->run(TensorWrap::From(info[0], "batch"), TensorWrap::From(info[1], "y"),
                                                Optional(info[2], "t"), Optional(info[3], "noise")));
    })
  }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return ToObject(info.Env(), trainer_->evaluate(TensorWrap::From(info[0], "batch"), TensorWrap::From(info[1], "y"),
                                                     Optional(info[2], "t"), Optional(info[3], "noise")));
    })
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(trainer_->step())); }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      const auto paths = trainer_->save(ToString(info[0], "dir"));
      auto arr = Napi::Array::New(info.Env(), paths.size());
      for (size_t i = 0; i < paths.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), paths[i]));
      return arr;
    })
  }

  std::shared_ptr<OpenaiClassifierStep> trainer_;
};

thread_local std::shared_ptr<OpenaiClassifierStep>* OpenaiClassifierTrainerWrap::pending = nullptr;

}  // namespace

Napi::Value NewOpenaiClassifierTrainer(Napi::Env env, const torch::jit::Module& classifier, const Schedule& schedule,
                                       const Napi::Value& o) {
  OpenaiClassifierTrainOptions opts;
  opts.lr = ToNumber(Option(o, "lr"), "lr");
  opts.weight_decay = ToNumber(Option(o, "weightDecay"), "weightDecay");
  opts.microbatch = ToInt(Option(o, "microbatch"), "microbatch");
  opts.noised = ToBool(Option(o, "noised"), "noised");
  opts.iterations = ToInt(Option(o, "iterations"), "iterations");
  opts.anneal_lr = ToBool(Option(o, "annealLr"), "annealLr");
  auto sampler = std::make_shared<ScheduleSampler>(ToString(Option(o, "scheduleSampler"), "scheduleSampler"), schedule.timesteps);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToInt(Option(o, "seed"), "seed")));
  auto trainer = std::make_shared<OpenaiClassifierStep>(classifier, schedule, opts, std::move(sampler), gen);
  Napi::FunctionReference& cls = GetAddonEnv(env).openai_classifier_trainer_class;
  if (cls.IsEmpty()) cls = Napi::Persistent(OpenaiClassifierTrainerWrap::Define(env));
  OpenaiClassifierTrainerWrap::pending = &trainer;
  try {
    return cls.New({});
  } catch (...) {
    OpenaiClassifierTrainerWrap::pending = nullptr;
    throw;
  }
}

}  // namespace gd::js
