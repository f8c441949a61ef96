// NativeOpenaiClassifierTrainer: runStep(x0, y, t?, noise?) and evaluate(x0, y, t?, noise?) ->
// their logged keys; step(); resumeStep(); save(dir) -> the paths written; runLoop(...) ->
// {promise, cancel} (their main loop on a thread of its own, js/openai_loop_job.h).
#include "js/openai_classifier_wrap.h"

#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "diffusion/openai_classifier_loop.h"
#include "diffusion/openai_classifier_step.h"
#include "js/addon_env.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/mixed_precision_options.h"
#include "js/openai_loop_job.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

class OpenaiClassifierTrainerWrap : public Napi::ObjectWrap<OpenaiClassifierTrainerWrap> {
 public:
  static thread_local std::shared_ptr<OpenaiClassifierStep>* pending;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeOpenaiClassifierTrainer",
                       {
                           InstanceMethod<&OpenaiClassifierTrainerWrap::RunStep>("runStep"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Evaluate>("evaluate"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Step>("step"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::ResumeStep>("resumeStep"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::LgLossScale>("lgLossScale"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::Save>("save"),
                           InstanceMethod<&OpenaiClassifierTrainerWrap::RunLoop>("runLoop"),
                       });
  }

  explicit OpenaiClassifierTrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OpenaiClassifierTrainerWrap>(info) {
    if (pending == nullptr) throw Napi::TypeError::New(info.Env(), "NativeOpenaiClassifierTrainer cannot be constructed directly");
    trainer_ = *pending;
    pending = nullptr;
  }

 private:
  // The trainer belongs to a running runLoop's thread until it ends.
  void CheckIdle(Napi::Env env, const char* what) const {
    if (*busy_) throw Napi::Error::New(env, std::string("ClassifierTrainLoop.") + what + ": a runLoop of this ClassifierTrainLoop is running; wait for its promise");
  }

  Napi::Value RunStep(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "runStep");
    GD_GUARD(info.Env(), {
      return StepLogObject(info.Env(), trainer_->run(TensorWrap::From(info[0], "batch"), TensorWrap::From(info[1], "y"),
                                                OptionalTensor(info[2], "t"), OptionalTensor(info[3], "noise")));
    })
  }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "evaluate");
    GD_GUARD(info.Env(), {
      return StepLogObject(info.Env(), trainer_->evaluate(TensorWrap::From(info[0], "batch"), TensorWrap::From(info[1], "y"),
                                                     OptionalTensor(info[2], "t"), OptionalTensor(info[3], "noise")));
    })
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(trainer_->step())); }

  Napi::Value LgLossScale(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), trainer_->lg_loss_scale()); }
  Napi::Value ResumeStep(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(trainer_->resume_step()));
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "save");
    GD_GUARD(info.Env(), {
      const auto paths = trainer_->save(ToString(info[0], "dir"));
      return PathArray(info.Env(), paths);
    })
  }

  // runLoop(data, labels, evalData?, evalLabels?, {batchSize, steps, logInterval, evalInterval,
  // saveInterval, outDir, randomFlip}, onLog, onSave) -> {promise, cancel}
  Napi::Value RunLoop(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "runLoop");
    GD_GUARD(info.Env(), {
      const Napi::Value o = info[4];
      ClassifierLoopOptions opts;
      ReadLoopSettings(o, opts);
      opts.eval_interval = ToInt(Option(o, "evalInterval"), "evalInterval");
      const at::Tensor images = TensorWrap::From(info[0], "data"), labels = TensorWrap::From(info[1], "labels");
      const at::Tensor val_images = OptionalTensor(info[2], "evalData"), val_labels = OptionalTensor(info[3], "evalLabels");
      auto trainer = trainer_;
      LoopRun run = [trainer, images, labels, val_images, val_labels, opts](const LoopHooks& hooks) {
        ClassifierLoopOptions with = opts;
        static_cast<LoopHooks&>(with) = hooks;
        return run_classifier_loop(*trainer, images, labels, val_images, val_labels, with);
      };
      LoopCounts counts = [trainer] { return std::make_pair(trainer->step(), trainer->resume_step()); };
      return StartOpenaiLoop(info.Env(), std::move(run), std::move(counts), busy_, info[5], info[6], /*pushed=*/false);
    })
  }

  std::shared_ptr<OpenaiClassifierStep> trainer_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
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
  opts.fp16 = ParseMixedPrecision(o, opts.fp16);
  Napi::Value distributed = Option(o, "distributed");
  if (!IsMissing(distributed) && ToBool(distributed, "distributed")) opts.parallel = DataParallelFor(env, "ClassifierTrainLoop with distributed: true");
  auto sampler = std::make_shared<ScheduleSampler>(ToString(Option(o, "scheduleSampler"), "scheduleSampler"), schedule.timesteps);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToInt(Option(o, "seed"), "seed")));
  auto trainer = std::make_shared<OpenaiClassifierStep>(classifier, schedule, opts, std::move(sampler), gen);
  Napi::Value resume = Option(o, "resumeCheckpoint");
  if (!IsMissing(resume) && !ToString(resume, "resumeCheckpoint").empty()) trainer->resume(ToString(resume, "resumeCheckpoint"));
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
