// NativeOpenaiTrainer: runStep(x0, y?, t?, weights?, noise?) -> their logged keys;
// emaParameters(i) -> { name: Tensor }; step().
#include "js/openai_train_wrap.h"

#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "diffusion/openai_train_loop.h"
#include "diffusion/openai_train_step.h"
#include "js/addon_env.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/mixed_precision_options.h"
#include "js/openai_loop_job.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

class OpenaiTrainerWrap : public Napi::ObjectWrap<OpenaiTrainerWrap> {
 public:
  static thread_local std::shared_ptr<OpenaiTrainStep>* pending;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeOpenaiTrainer",
                       {
                           InstanceMethod<&OpenaiTrainerWrap::RunStep>("runStep"),
                           InstanceMethod<&OpenaiTrainerWrap::EmaParameters>("emaParameters"),
                           InstanceMethod<&OpenaiTrainerWrap::Step>("step"),
                           InstanceMethod<&OpenaiTrainerWrap::ResumeStep>("resumeStep"),
                           InstanceMethod<&OpenaiTrainerWrap::LgLossScale>("lgLossScale"),
                           InstanceMethod<&OpenaiTrainerWrap::Save>("save"),
                           InstanceMethod<&OpenaiTrainerWrap::RunLoop>("runLoop"),
                       });
  }

  explicit OpenaiTrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OpenaiTrainerWrap>(info) {
    if (pending == nullptr) throw Napi::TypeError::New(info.Env(), "NativeOpenaiTrainer cannot be constructed directly");
    trainer_ = *pending;
    pending = nullptr;
  }

 private:
  // The trainer belongs to a running runLoop's thread until it ends.
  void CheckIdle(Napi::Env env, const char* what) const {
    if (*busy_) throw Napi::Error::New(env, std::string("TrainLoop.") + what + ": a runLoop of this TrainLoop is running; wait for its promise");
  }

  Napi::Value RunStep(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "runStep");
    GD_GUARD(info.Env(), {
      const StepLog log = trainer_->run(TensorWrap::From(info[0], "batch"), OptionalTensor(info[1], "y"), OptionalTensor(info[2], "t"),
                                        OptionalTensor(info[3], "weights"), OptionalTensor(info[4], "noise"));
      return StepLogObject(info.Env(), log);
    })
  }

  Napi::Value EmaParameters(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "emaParameters");
    GD_GUARD(info.Env(), {
      const int64_t i = ToInt(info[0], "index");
      if (i < 0 || i >= static_cast<int64_t>(trainer_->ema_rate().size())) {
        ThrowRange(info.Env(), "emaParameters: index " + std::to_string(i) + " is not one of the " +
                                   std::to_string(trainer_->ema_rate().size()) + " EMA rates");
      }
      const auto names = trainer_->param_names();
      const auto& params = trainer_->ema_params(static_cast<size_t>(i));
      auto o = Napi::Object::New(info.Env());
      for (size_t k = 0; k < names.size(); ++k) o.Set(names[k], TensorWrap::Wrap(info.Env(), params[k].detach().clone()));
      return o;
    })
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(trainer_->step())); }
  Napi::Value LgLossScale(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), trainer_->lg_loss_scale()); }
  Napi::Value ResumeStep(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(trainer_->resume_step()));
  }

  // save(dir) -> the paths written, numbered as their save() after run_loop's last step.
  Napi::Value Save(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "save");
    GD_GUARD(info.Env(), {
      const auto paths = trainer_->save(ToString(info[0], "dir"), trainer_->step() + trainer_->resume_step());
      return PathArray(info.Env(), paths);
    })
  }

  // runLoop(data, labels?, {batchSize, steps, logInterval, saveInterval, outDir, randomFlip}, onLog, onSave) -> {promise, cancel}
  Napi::Value RunLoop(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env(), "runLoop");
    GD_GUARD(info.Env(), {
      const Napi::Value o = info[2];
      OpenaiLoopOptions opts;
      ReadLoopSettings(o, opts);
      // No data: the batches are pushed from JS.
      const bool pushed = IsMissing(info[0]);
      at::Tensor images = pushed ? at::Tensor() : TensorWrap::From(info[0], "data");
      at::Tensor labels = OptionalTensor(info[1], "labels");
      auto trainer = trainer_;
      LoopRun run = [trainer, images, labels, opts](const LoopHooks& hooks) {
        OpenaiLoopOptions o = opts;
        static_cast<LoopHooks&>(o) = hooks;
        return run_openai_loop(*trainer, images, labels, o);
      };
      LoopCounts counts = [trainer] { return std::make_pair(trainer->step(), trainer->resume_step()); };
      return StartOpenaiLoop(info.Env(), std::move(run), std::move(counts), busy_, info[3], info[4], pushed);
    })
  }

  std::shared_ptr<OpenaiTrainStep> trainer_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

thread_local std::shared_ptr<OpenaiTrainStep>* OpenaiTrainerWrap::pending = nullptr;

}  // namespace

Napi::Value NewOpenaiTrainer(Napi::Env env, const Denoiser& denoiser, const Schedule& schedule, const Napi::Value& o) {
  OpenaiTrainOptions opts;
  opts.lr = ToNumber(Option(o, "lr"), "lr");
  opts.weight_decay = ToNumber(Option(o, "weightDecay"), "weightDecay");
  opts.lr_anneal_steps = ToInt(Option(o, "lrAnnealSteps"), "lrAnnealSteps");
  opts.microbatch = ToInt(Option(o, "microbatch"), "microbatch");
  opts.fp16 = ParseMixedPrecision(o, opts.fp16);
  Napi::Value rates = Option(o, "emaRate");
  if (!rates.IsArray()) ThrowType(env, "emaRate must be an array of numbers; got " + Describe(rates));
  opts.ema_rate.clear();
  auto arr = rates.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) opts.ema_rate.push_back(ToNumber(arr.Get(i), "emaRate"));
  Napi::Value distributed = Option(o, "distributed");
  if (!IsMissing(distributed) && ToBool(distributed, "distributed")) opts.parallel = DataParallelFor(env, "TrainLoop with distributed: true");
  auto sampler = std::make_shared<ScheduleSampler>(ToString(Option(o, "scheduleSampler"), "scheduleSampler"), schedule.timesteps);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToInt(Option(o, "seed"), "seed")));
  auto trainer = std::make_shared<OpenaiTrainStep>(denoiser, schedule, parse_loss_type(ToString(Option(o, "lossType"), "lossType")),
                                                   opts, std::move(sampler), gen);
  Napi::Value resume = Option(o, "resumeCheckpoint");
  if (!IsMissing(resume) && !ToString(resume, "resumeCheckpoint").empty()) trainer->resume(ToString(resume, "resumeCheckpoint"));
  Napi::FunctionReference& cls = GetAddonEnv(env).openai_trainer_class;
  if (cls.IsEmpty()) cls = Napi::Persistent(OpenaiTrainerWrap::Define(env));
  OpenaiTrainerWrap::pending = &trainer;
  try {
    return cls.New({});
  } catch (...) {
    OpenaiTrainerWrap::pending = nullptr;
    throw;
  }
}

}  // namespace gd::js
