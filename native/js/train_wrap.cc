// Training from JS: the native loops of diffusion/trainer.h on a worker thread, with progress
// and abort, and the Fashion-MNIST loader.
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>

#include "diffusion/fashion_mnist.h"
#include "distributed/process_group.h"
#include "diffusion/trainer.h"
#include "js/common.h"
#include "js/cpu_allocator.h"
#include "js/installers.h"
#include "js/module_wrap.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

struct Progress {
  int64_t step;
  int64_t total;
  double loss;
};

struct Aborted : std::runtime_error {
  Aborted() : std::runtime_error("training was aborted") {}
};

// The cancel flags of the runs in flight. At process.exit Node joins its thread pool, so a
// training run still on a worker would hold the exit until its last step: the exit hook
// cancels them all, and each ends after its current step.
class RunningFlags {
 public:
  void Add(const std::shared_ptr<std::atomic<bool>>& flag) {
    std::lock_guard<std::mutex> lock(mutex_);
    flags_.insert(flag);
  }
  void Remove(const std::shared_ptr<std::atomic<bool>>& flag) {
    std::lock_guard<std::mutex> lock(mutex_);
    flags_.erase(flag);
  }
  void CancelAll() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& flag : flags_) *flag = true;
  }

 private:
  std::mutex mutex_;
  std::set<std::shared_ptr<std::atomic<bool>>> flags_;
};

RunningFlags& Running() {
  static auto* running = new RunningFlags();  // outlives exit-time destructors
  return *running;
}

class TrainWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  using Run = std::function<TrainResult(TrainOptions&)>;

  TrainWorker(Napi::Env env, Run run, TrainOptions options, Napi::Value on_progress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "guided-diffusion.train"),
        deferred_(Napi::Promise::Deferred::New(env)),
        run_(std::move(run)),
        options_(std::move(options)),
        cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
    Running().Add(cancelled_);
  }

  ~TrainWorker() override { Running().Remove(cancelled_); }

  Napi::Object Handle(Napi::Env env) {
    auto handle = Napi::Object::New(env);
    handle.Set("promise", deferred_.Promise());
    auto flag = cancelled_;
    handle.Set("cancel", Napi::Function::New(env, [flag](const Napi::CallbackInfo& info) {
                 *flag = true;
                 return info.Env().Undefined();
               }));
    return handle;
  }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    CpuCacheUse cache_use;
    try {
      options_.on_step = [&progress, this](int64_t step, int64_t total, double loss) {
        Progress p{step, total, loss};
        progress.Send(&p, 1);
        if (*cancelled_) throw Aborted();
      };
      result_ = run_(options_);
    } catch (const Aborted& e) {
      aborted_ = true;
      SetError(e.what());
    } catch (const c10::Error& e) {
      SetError(TrimTorchMessage(e.what_without_backtrace()));  // a TorchScript error: its cause
    } catch (const std::exception& e) {
      SetError(TrimTorchMessage(e.what()));
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (on_progress_.IsEmpty()) return;
    Napi::Env env = Env();
    for (size_t i = 0; i < count; i++) {
      try {
        on_progress_.Call({Napi::Number::New(env, double(data[i].step)), Napi::Number::New(env, double(data[i].total)),
                           Napi::Number::New(env, data[i].loss)});
      } catch (const Napi::Error&) {
        *cancelled_ = true;  // a throwing progress callback stops the run
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto o = Napi::Object::New(env);
    o.Set("model", ModuleWrap::Wrap(env, result_.model));
    o.Set("ema", ModuleWrap::Wrap(env, result_.ema));
    o.Set("steps", Napi::Number::New(env, double(result_.steps)));
    o.Set("stepsRun", Napi::Number::New(env, double(result_.steps_run)));
    o.Set("stopped", Napi::Boolean::New(env, result_.stopped));
    o.Set("finalLoss", Napi::Number::New(env, result_.final_loss));
    o.Set("meanLoss", Napi::Number::New(env, result_.mean_loss));
    o.Set("finalAccuracy", Napi::Number::New(env, result_.final_accuracy));
    o.Set("meanAccuracy", Napi::Number::New(env, result_.mean_accuracy));
    auto losses = Napi::Float64Array::New(env, result_.losses.size());
    std::copy(result_.losses.begin(), result_.losses.end(), losses.Data());
    o.Set("losses", losses);
    deferred_.Resolve(o);
  }

  void OnError(const Napi::Error& e) override {
    if (aborted_) e.Set("name", Napi::String::New(Env(), "AbortError"));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Run run_;
  TrainOptions options_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  Napi::FunctionReference on_progress_;
  TrainResult result_;
  bool aborted_ = false;
};

double Num(const Napi::Value& o, const char* key, double dflt) {
  Napi::Value v = Option(o, key);
  return IsMissing(v) ? dflt : ToNumber(v, key);
}

int64_t Int(const Napi::Value& o, const char* key, int64_t dflt) {
  Napi::Value v = Option(o, key);
  return IsMissing(v) ? dflt : ToInt(v, key);
}

// A seed as sample() takes it: a non-negative integer (a RangeError otherwise, not a wrap).
uint64_t Seed(const Napi::Value& o) {
  Napi::Value v = Option(o, "seed");
  return IsMissing(v) ? 0 : static_cast<uint64_t>(ToNonNegativeInt(v, "seed"));
}

TrainOptions ToTrainOptions(const Napi::Value& o) {
  TrainOptions t;
  t.steps = Int(o, "steps", 0);
  t.batch_size = Int(o, "batchSize", t.batch_size);
  t.lr = Num(o, "lr", t.lr);
  t.weight_decay = Num(o, "weightDecay", t.weight_decay);
  t.grad_clip = Num(o, "gradClip", t.grad_clip);
  t.ema_decay = Num(o, "emaDecay", t.ema_decay);
  t.ema_every = Int(o, "emaEvery", t.ema_every);
  t.checkpoint_every = Int(o, "checkpointEvery", 0);
  Napi::Value path = Option(o, "checkpointPath");
  if (!IsMissing(path)) t.checkpoint_path = ToString(path, "checkpointPath");
  t.seed = Seed(o);
  t.loss_window = Int(o, "lossWindow", t.loss_window);
  t.max_timestep = Int(o, "maxTimestep", t.max_timestep);
  Napi::Value distributed = Option(o, "distributed");
  if (!IsMissing(distributed) && ToBool(distributed, "distributed")) {
    // Data parallel over the default process group (the trainer keeps it alive for the run).
    std::shared_ptr<dist::ProcessGroup> group = DefaultGroupFor(o.Env(), "train with distributed: true");
    t.parallel.rank = group->rank();
    t.parallel.world_size = group->world_size();
    t.parallel.average = [group](const std::vector<at::Tensor>& ts) { group->average(ts); };
    t.parallel.broadcast = [group](const std::vector<at::Tensor>& ts) { group->broadcast_all(ts, 0); };
  }
  return t;
}

Schedule ToSchedule(const Napi::Value& o) {
  ScheduleOptions so;
  so.timesteps = Int(o, "timesteps", so.timesteps);
  Napi::Value bs = Option(o, "betaSchedule");
  if (!IsMissing(bs)) so.beta_schedule = parse_beta_schedule(ToString(bs, "betaSchedule"));
  Napi::Value kw = Option(o, "scheduleFnKwargs");
  so.cosine_s = Num(kw, "s", so.cosine_s);
  so.sigmoid_start = Num(kw, "start", so.sigmoid_start);
  so.sigmoid_end = Num(kw, "end", so.sigmoid_end);
  so.sigmoid_tau = Num(kw, "tau", so.sigmoid_tau);
  return make_schedule(so);
}

// The state a run starts from, over the given module (`what` it is, for errors): resumed
// from options.resumeFrom (a checkpoint written by a previous run; names and shapes must
// match the module), else fresh.
TrainState ToState(const Napi::Value& module, const Napi::Value& o, const char* what) {
  torch::jit::Module model = ModuleWrap::From(module, what);
  Napi::Value resume = Option(o, "resumeFrom");
  if (!IsMissing(resume)) return load_checkpoint(ToString(resume, "resumeFrom"), model, what);
  return make_train_state(model, Seed(o));
}

// trainDiffusion(model, options, onProgress) -> {promise, cancel}
Napi::Value TrainDiffusion(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value o = info[1];
    auto state = std::make_shared<TrainState>(ToState(info[0], o, "model"));
    auto schedule = std::make_shared<Schedule>(ToSchedule(o));
    Objective objective = parse_objective(IsMissing(Option(o, "objective")) ? "pred_noise" : ToString(Option(o, "objective"), "objective"));
    at::Tensor data = TensorWrap::From(Option(o, "data"), "data");
    LossOptions loss;
    Napi::Value snr = Option(o, "minSnrLossWeight");
    loss.min_snr_loss_weight = IsMissing(snr) ? false : ToBool(snr, "minSnrLossWeight");
    loss.min_snr_gamma = Num(o, "minSnrGamma", loss.min_snr_gamma);
    if (!(loss.min_snr_gamma > 0 && std::isfinite(loss.min_snr_gamma))) {  // 0 gave a loss of 0 on every step
      ThrowRange(info.Env(), "Expected a positive finite number for minSnrGamma but received " + Describe(Option(o, "minSnrGamma")));
    }
    auto run = [state, schedule, objective, data, loss](TrainOptions& options) {
      return train_diffusion(*state, *schedule, objective, data, options, loss);
    };
    auto* worker = new TrainWorker(info.Env(), run, ToTrainOptions(o), info[2]);
    Napi::Object handle = worker->Handle(info.Env());
    worker->Queue();
    return handle;
  })
}

// trainClassifier(classifier, options, onProgress) -> {promise, cancel}
Napi::Value TrainClassifier(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value o = info[1];
    auto state = std::make_shared<TrainState>(ToState(info[0], o, "classifier"));
    auto schedule = std::make_shared<Schedule>(ToSchedule(o));
    at::Tensor data = TensorWrap::From(Option(o, "data"), "data");
    at::Tensor labels = TensorWrap::From(Option(o, "labels"), "labels");
    auto run = [state, schedule, data, labels](TrainOptions& options) {
      return train_classifier(*state, *schedule, data, labels, options);
    };
    auto* worker = new TrainWorker(info.Env(), run, ToTrainOptions(o), info[2]);
    Napi::Object handle = worker->Handle(info.Env());
    worker->Queue();
    return handle;
  })
}

// loadFashionMnist({dir, train, limit, padTo}) -> {images: float [N,1,S,S] in [-1, 1], labels, classNames}
Napi::Value LoadFashionMnist(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    Napi::Value o = info[0];
    Napi::Value dir = Option(o, "dir");
    Napi::Value train = Option(o, "train");
    Dataset ds = load_fashion_mnist(IsMissing(dir) ? "" : ToString(dir, "dir"), IsMissing(train) ? true : ToBool(train, "train"),
                                    Int(o, "limit", -1));
    auto out = Napi::Object::New(env);
    out.Set("images", TensorWrap::Wrap(env, normalize_images(ds.images, Int(o, "padTo", 0))));
    out.Set("labels", TensorWrap::Wrap(env, ds.labels));
    auto names = fashion_mnist_class_names();
    auto arr = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
    out.Set("classNames", arr);
    return out;
  })
}

}  // namespace

void InstallTraining(Napi::Env env, Napi::Object exports) {
  exports.Set("trainDiffusion", Napi::Function::New(env, TrainDiffusion, "trainDiffusion"));
  exports.Set("trainClassifier", Napi::Function::New(env, TrainClassifier, "trainClassifier"));
  exports.Set("loadFashionMnist", Napi::Function::New(env, LoadFashionMnist, "loadFashionMnist"));
  exports.Set("stopTrainingForExit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Running().CancelAll();
                return info.Env().Undefined();
              }, "stopTrainingForExit"));
}

}  // namespace gd::js
