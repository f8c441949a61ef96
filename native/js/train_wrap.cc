// Training from JS: the native loops of diffusion/trainer.h on a thread of their own, with
// progress and abort, and the Fashion-MNIST loader.
#include <algorithm>
#include <cmath>
#include <functional>

#include "diffusion/fashion_mnist.h"
#include "diffusion/trainer.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/js_job.h"
#include "js/module_wrap.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

// One training run as a JsJob: the native loop on the job's thread, each step's progress
// posted to the JS thread.
class TrainJob : public JsJob {
 public:
  using Run = std::function<TrainResult(TrainOptions&)>;

  static Napi::Object Start(Napi::Env env, Run run, TrainOptions options, Napi::Value on_progress) {
    std::shared_ptr<TrainJob> job(new TrainJob(env, std::move(run), std::move(options)));
    if (on_progress.IsFunction()) job->on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
    return JsJob::Start(env, job);
  }

 private:
  TrainJob(Napi::Env env, Run run, TrainOptions options)
      : JsJob(env, "training was aborted"), run_(std::move(run)), options_(std::move(options)) {}

  void Work() override {
    options_.on_step = [this](int64_t step, int64_t total, double loss) {
      if (!on_progress_.IsEmpty()) PostToJs([this, step, total, loss](Napi::Env env) { Progress(env, step, total, loss); });
      // A run ends after its current step once cancelled.
      if (cancelled()) throw JobAborted();
    };
    result_ = run_(options_);
  }

  // A throwing onProgress stops the run, which rejects with what it threw (as sample() does).
  void Progress(Napi::Env env, int64_t step, int64_t total, double loss) {
    if (has_js_error()) return;
    try {
      on_progress_.Call({Napi::Number::New(env, double(step)), Napi::Number::New(env, double(total)), Napi::Number::New(env, loss)});
    } catch (const Napi::Error& e) {
      KeepJsError(e.Value());
      Cancel();
    }
  }

  Napi::Value Result(Napi::Env env) override {
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
    return o;
  }

  Run run_;
  TrainOptions options_;
  Napi::FunctionReference on_progress_;
  TrainResult result_;
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
  Napi::Value autocast = Option(o, "autocast");
  if (!IsMissing(autocast)) {
    const std::string dtype = ToString(autocast, "autocast");
    if (dtype != "float16" && dtype != "bfloat16") {
      ThrowRange(o.Env(), "autocast must be 'float16' or 'bfloat16'; got '" + dtype + "'");
    }
    t.autocast = dtype == "float16" ? at::kHalf : at::kBFloat16;
  }
  Napi::Value distributed = Option(o, "distributed");
  if (!IsMissing(distributed) && ToBool(distributed, "distributed")) {
    // Data parallel over the default process group (the trainer keeps it alive for the run).
    t.parallel = DataParallelFor(o.Env(), "train with distributed: true");
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
  // The optimizer and the EMA keep float32 weights (autocast lowers the forward only); a float64
  // model would fail in its first conv with "Input type (float) and bias type (double)".
  for (const auto& p : model.named_parameters()) {
    if (p.value.is_floating_point() && p.value.scalar_type() != at::kFloat) {
      ThrowRange(o.Env(), std::string("the ") + what + "'s parameters must be float32 to train (its " + p.name + " is " +
                              DtypeName(p.value.scalar_type()) + "): convert it with .to('float32'); autocast: 'bfloat16' lowers the "
                              "precision of the forward only");
    }
  }
  // As sample() refuses it: LibTorch's float16 convolutions on the CPU are slow references.
  Napi::Value autocast = Option(o, "autocast");
  const auto params = model.parameters();
  if (!IsMissing(autocast) && autocast.IsString() && autocast.As<Napi::String>().Utf8Value() == "float16" && params.begin() != params.end()) {
    const at::Device device = (*params.begin()).device();
    if (!device.is_cuda()) ThrowRange(o.Env(), "autocast 'float16' needs a CUDA device (the CPU takes 'bfloat16'); this model trains on " + device.str());
  }
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
    // Class-conditional training (classifier-free guidance): labels, dropped with condDropProb.
    Napi::Value y = Option(o, "labels");
    at::Tensor labels = IsMissing(y) ? at::Tensor() : TensorWrap::From(y, "labels");
    auto run = [state, schedule, objective, data, loss, labels](TrainOptions& options) {
      return train_diffusion(*state, *schedule, objective, data, options, loss, labels);
    };
    TrainOptions options = ToTrainOptions(o);
    options.cond_drop_prob = Num(o, "condDropProb", 0);
    options.null_class = Int(o, "nullClass", -1);
    return TrainJob::Start(info.Env(), run, std::move(options), info[2]);
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
    TrainOptions options = ToTrainOptions(o);
    Napi::Value clean = Option(o, "clean");
    options.clean = !IsMissing(clean) && ToBool(clean, "clean");
    return TrainJob::Start(info.Env(), run, std::move(options), info[2]);
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
}

}  // namespace gd::js
