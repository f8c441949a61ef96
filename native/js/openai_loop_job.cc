#include "js/openai_loop_job.h"

#include "js/common.h"
#include "js/js_job.h"

namespace gd::js {

namespace {

class OpenaiLoopJob : public JsJob {
 public:
  OpenaiLoopJob(Napi::Env env, std::shared_ptr<OpenaiTrainStep> trainer, std::shared_ptr<std::atomic<bool>> busy, at::Tensor images,
                at::Tensor labels, OpenaiLoopOptions options)
      : JsJob(env, "training was aborted"),
        trainer_(std::move(trainer)),
        busy_(std::move(busy)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        options_(std::move(options)) {}

  Napi::FunctionReference on_log, on_save;

 private:
  void Work() override {
    struct Idle {
      std::atomic<bool>& busy;
      ~Idle() { busy = false; }
    } idle{*busy_};
    options_.on_log = [this](const StepLog& log) {
      if (!on_log.IsEmpty()) PostToJs([this, log](Napi::Env env) { Call(env, on_log, {Object(env, log)}); });
    };
    options_.on_save = [this](int64_t number, const std::vector<std::string>& files) {
      if (on_save.IsEmpty()) return;
      PostToJs([this, number, files](Napi::Env env) {
        auto o = Napi::Object::New(env);
        o.Set("step", Napi::Number::New(env, static_cast<double>(number)));
        auto arr = Napi::Array::New(env, files.size());
        for (size_t i = 0; i < files.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(env, files[i]));
        o.Set("files", arr);
        Call(env, on_save, {o});
      });
    };
    // A run ends after its current step (with that step's log and save) once cancelled.
    options_.after_step = [this] {
      if (cancelled()) throw JobAborted();
    };
    result_ = run_openai_loop(*trainer_, images_, labels_, options_);
  }

  static Napi::Object Object(Napi::Env env, const StepLog& log) {
    auto o = Napi::Object::New(env);
    for (const auto& [key, value] : log) o.Set(key, Napi::Number::New(env, value));
    return o;
  }

  // A throwing callback stops the run, which rejects with what it threw (as train() does).
  void Call(Napi::Env env, Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
    if (has_js_error()) return;
    try {
      fn.Call(args);
    } catch (const Napi::Error& e) {
      KeepJsError(e.Value());
      Cancel();
    }
  }

  Napi::Value Result(Napi::Env env) override {
    auto o = Napi::Object::New(env);
    o.Set("stepsRun", Napi::Number::New(env, static_cast<double>(result_.steps_run)));
    o.Set("step", Napi::Number::New(env, static_cast<double>(trainer_->step())));
    o.Set("resumeStep", Napi::Number::New(env, static_cast<double>(trainer_->resume_step())));
    auto saved = Napi::Array::New(env, result_.saved.size());
    for (size_t i = 0; i < result_.saved.size(); ++i) saved.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(result_.saved[i])));
    o.Set("saved", saved);
    return o;
  }

  void BeforeSettle() override {
    on_log.Reset();
    on_save.Reset();
  }

  std::shared_ptr<OpenaiTrainStep> trainer_;
  std::shared_ptr<std::atomic<bool>> busy_;
  at::Tensor images_, labels_;
  OpenaiLoopOptions options_;
  OpenaiLoopResult result_;
};

}  // namespace

Napi::Object StartOpenaiLoop(Napi::Env env, std::shared_ptr<OpenaiTrainStep> trainer, std::shared_ptr<std::atomic<bool>> busy,
                             at::Tensor images, at::Tensor labels, OpenaiLoopOptions options, Napi::Value on_log,
                             Napi::Value on_save) {
  auto job = std::make_shared<OpenaiLoopJob>(env, std::move(trainer), busy, std::move(images), std::move(labels), std::move(options));
  if (on_log.IsFunction()) job->on_log = Napi::Persistent(on_log.As<Napi::Function>());
  if (on_save.IsFunction()) job->on_save = Napi::Persistent(on_save.As<Napi::Function>());
  *busy = true;
  try {
    return JsJob::Start(env, job);
  } catch (...) {
    *busy = false;
    throw;
  }
}

}  // namespace gd::js
