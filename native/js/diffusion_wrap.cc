// NativeDiffusion: a model and its schedule, with sample() on a thread of its own and the
// synchronous pieces (qSample, pLosses, predict) for training and tests.
#include <ATen/CPUGeneratorImpl.h>

#include <cstdlib>

#include "diffusion/editing.h"
#include "diffusion/openai_losses.h"
#include "diffusion/respace.h"
#include "diffusion/training.h"
#include "js/addon_env.h"
#include "js/common.h"
#include "js/module_wrap.h"
#include "js/openai_classifier_wrap.h"
#include "js/openai_train_wrap.h"
#include "js/sample_job.h"
#include "js/schedule_options.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

class DiffusionWrap : public Napi::ObjectWrap<DiffusionWrap> {
 public:
  // Handed from CreateDiffusion to the constructor it calls, on the same thread.
  static thread_local torch::jit::Module* pending_model;
  static thread_local Napi::Value* pending_options;

  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "NativeDiffusion",
                                     {
                                         InstanceMethod<&DiffusionWrap::Sample>("sample"),
                                         InstanceMethod<&DiffusionWrap::ScheduleBuffers>("schedule"),
                                         InstanceMethod<&DiffusionWrap::QSample>("qSample"),
                                         InstanceMethod<&DiffusionWrap::PLosses>("pLosses"),
                                         InstanceMethod<&DiffusionWrap::TrainingLosses>("trainingLosses"),
                                         InstanceMethod<&DiffusionWrap::OpenaiTrainer>("openaiTrainer"),
                                         InstanceMethod<&DiffusionWrap::OpenaiClassifierTrainer>("openaiClassifierTrainer"),
                                         InstanceMethod<&DiffusionWrap::Predict>("predict"),
                                         InstanceMethod<&DiffusionWrap::DeviceName>("device"),
                                         InstanceMethod<&DiffusionWrap::CudaGraph>("cudaGraph"),
                                         InstanceMethod<&DiffusionWrap::Timesteps>("timesteps"),
                                     });
    GetAddonEnv(env).diffusion_class = Napi::Persistent(cls);
  }

  explicit DiffusionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DiffusionWrap>(info) {
    Napi::Env env = info.Env();
    if (pending_model == nullptr) throw Napi::TypeError::New(env, "NativeDiffusion cannot be constructed directly");
    torch::jit::Module model = *pending_model;
    Napi::Value o = *pending_options;
    pending_model = nullptr;
    GD_GUARD(env, {
      image_size_ = ToInt(Option(o, "imageSize"), "imageSize");
      channels_ = ToInt(Option(o, "channels"), "channels");
      Napi::Value sampling = Option(o, "samplingTimesteps");
      eta_ = ToNumber(Option(o, "ddimSamplingEta"), "ddimSamplingEta");
      auto_normalize_ = ToBool(Option(o, "autoNormalize"), "autoNormalize");
      clip_denoised_ = ToBool(Option(o, "clipDenoised"), "clipDenoised");
      Napi::Value clip_after = Option(o, "clipAfterGuidance");
      clip_after_guidance_ = !IsMissing(clip_after) && ToBool(clip_after, "clipAfterGuidance");
      Napi::Value device = Option(o, "device");
      device_ = IsMissing(device) ? ModelDevice(model) : ToDevice(env, ToString(device, "device"));
      Schedule schedule = ScheduleFromOptions(o);
      sampling_timesteps_ = IsMissing(sampling) ? schedule.timesteps : ToInt(sampling, "samplingTimesteps");
      if (sampling_timesteps_ < 1 || sampling_timesteps_ > schedule.timesteps) {
        ThrowRange(env, "samplingTimesteps (" + std::to_string(sampling_timesteps_) + ") must be from 1 to the " +
                            std::to_string(schedule.timesteps) + " timesteps of the (respaced) schedule");
      }
      Objective objective = parse_objective(ToString(Option(o, "objective"), "objective"));
      check_objective_schedule(objective, schedule);
      schedule_ = std::make_shared<const Schedule>(schedule.to(device_));
      model.eval();
      auto denoiser = std::make_shared<Denoiser>(model, objective);
      Napi::Value var_type = Option(o, "modelVarType");
      if (!IsMissing(var_type)) denoiser->set_variance_type(parse_variance_type(ToString(var_type, "modelVarType")));
      Napi::Value eps_from_x0 = Option(o, "epsFromX0");
      if (!IsMissing(eps_from_x0)) denoiser->set_eps_from_x0(ToBool(eps_from_x0, "epsFromX0"));
      Napi::Value autocast = Option(o, "autocast");
      if (!IsMissing(autocast)) {
        const std::string dtype = ToString(autocast, "autocast");
        if (dtype != "float16" && dtype != "bfloat16") {
          ThrowRange(env, "autocast must be 'float16' or 'bfloat16'; got '" + dtype + "'");
        }
        // The CPU runs bfloat16 (oneDNN's bf16 kernels); float16 convolutions there are slow references.
        if (!device_.is_cuda() && !(device_.is_cpu() && dtype == "bfloat16")) {
          ThrowRange(env, "autocast '" + dtype + "' needs a CUDA device (the CPU takes 'bfloat16'); this diffusion samples on " + device_.str());
        }
        denoiser->set_autocast(dtype == "float16" ? at::kHalf : at::kBFloat16);
      }
      Napi::Value cuda_graph = Option(o, "cudaGraph");
      cuda_graph_ = IsMissing(cuda_graph) ? device_.is_cuda() : ToBool(cuda_graph, "cudaGraph");
      if (cuda_graph_ && !device_.is_cuda()) ThrowRange(env, "cudaGraph needs a CUDA device; this diffusion samples on " + device_.str());
      denoiser_ = std::move(denoiser);
      Probe();
    })
  }

  Napi::Value DeviceName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_.str()); }
  Napi::Value CudaGraph(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cuda_graph_); }
  // {timesteps, samplingTimesteps}: of the (respaced) schedule that sample() runs.
  Napi::Value Timesteps(const Napi::CallbackInfo& info) {
    auto o = Napi::Object::New(info.Env());
    o.Set("timesteps", Napi::Number::New(info.Env(), double(schedule_->timesteps)));
    o.Set("samplingTimesteps", Napi::Number::New(info.Env(), double(sampling_timesteps_)));
    return o;
  }

 private:
  // Where the model's weights are (its first parameter, else buffer): a model moved to CUDA
  // samples there without a device option. CPU for a model with neither.
  static at::Device ModelDevice(const torch::jit::Module& model) {
    for (const at::Tensor& p : model.parameters()) return p.device();
    for (const at::Tensor& b : model.buffers()) return b.device();
    return at::Device(at::kCPU);
  }

  // A checkpoint with the wrong forward is rejected now, not at step 1 of a sample.
  void Probe() {
    at::NoGradGuard no_grad;
    auto x = at::zeros({1, channels_, image_size_, image_size_}, at::TensorOptions().device(device_));
    auto t = at::zeros({1}, at::TensorOptions().dtype(at::kLong).device(device_));
    at::Tensor out;
    try {
      // A class-conditional model that needs labels gets class 0 for the probe.
      const Denoiser probe = denoiser_->takes_labels() && !denoiser_->labels_optional()
                                 ? denoiser_->with_labels(at::zeros({1}, at::kLong))
                                 : *denoiser_;
      out = probe.forward(x, schedule_->timestep_map.apply(t));
    } catch (const std::exception& e) {
      std::string msg = TrimTorchMessage(e.what());
      throw std::runtime_error("GaussianDiffusion: the model's forward(x, t" + std::string(denoiser_->takes_labels() ? ", y" : "") + ") failed on x of shape [1, " + std::to_string(channels_) + ", " +
                               std::to_string(image_size_) + ", " + std::to_string(image_size_) +
                               "] (float32) and t of shape [1] (int64): " + msg.substr(0, msg.find('\n')));
    }
  }

  std::vector<int64_t> Shape(int64_t batch) const { return {batch, channels_, image_size_, image_size_}; }

  // The fast samplers' options; lib/diffusion.ts has checked which apply to the sampler.
  static void ReadFastOptions(Napi::Value r, SampleOptions::Fast& f) {
    if (Napi::Value v = Option(r, "steps"); !IsMissing(v)) f.steps = ToInt(v, "steps");
    if (Napi::Value v = Option(r, "order"); !IsMissing(v)) f.order = ToInt(v, "order");
    if (Napi::Value v = Option(r, "method"); !IsMissing(v)) f.singlestep = ToString(v, "method") == "singlestep";
    if (Napi::Value v = Option(r, "skipType"); !IsMissing(v)) f.skip_type = ToString(v, "skipType");
    if (Napi::Value v = Option(r, "lowerOrderFinal"); !IsMissing(v)) f.lower_order_final = ToBool(v, "lowerOrderFinal");
    if (Napi::Value v = Option(r, "thresholding"); !IsMissing(v)) {
      f.thresholding = true;
      f.threshold_ratio = ToNumber(Option(v, "ratio"), "thresholding.ratio");
      f.threshold_max = ToNumber(Option(v, "maxVal"), "thresholding.maxVal");
    }
    if (Napi::Value v = Option(r, "unipcVariant"); !IsMissing(v)) f.unipc_bh2 = ToString(v, "unipcVariant") == "bh2";
    if (Napi::Value v = Option(r, "sigmas"); !IsMissing(v)) f.karras = ToString(v, "sigmas") == "karras";
    if (Napi::Value v = Option(r, "rho"); !IsMissing(v)) f.rho = ToNumber(v, "rho");
  }

  // init, strength, mask, jumpLength, jumpCount (lib/diffusion.ts has checked them; the
  // samplers check shapes again). init comes in the caller's space: [0, 1] with autoNormalize.
  // Copies: the sample runs on its own thread while JS may change the tensors it gave.
  void ReadEditOptions(Napi::Value r, SampleOptions& o) const {
    if (Napi::Value v = Option(r, "init"); !IsMissing(v)) {
      at::Tensor init = TensorWrap::From(v, "init").detach().to(at::kFloat).clone();
      o.init = auto_normalize_ ? init * 2 - 1 : init;
    }
    if (Napi::Value v = Option(r, "strength"); !IsMissing(v)) o.strength = ToNumber(v, "strength");
    if (Napi::Value v = Option(r, "mask"); !IsMissing(v)) o.mask = TensorWrap::From(v, "mask").detach().to(at::kFloat).clone();
    if (Napi::Value v = Option(r, "jumpLength"); !IsMissing(v)) o.jump_length = ToInt(v, "jumpLength");
    if (Napi::Value v = Option(r, "jumpCount"); !IsMissing(v)) o.jump_count = ToInt(v, "jumpCount");
    check_edit_options(o);
  }

  // sample(request) -> {promise, cancel}
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      Napi::Env env = info.Env();
      Napi::Value r = info[0];
      SampleSetup setup;
      setup.denoiser = denoiser_;
      setup.schedule = schedule_;
      int64_t batch = ToInt(Option(r, "batchSize"), "batchSize");
      if (batch < 1) ThrowRange(env, "Expected positive integer for batchSize but received " + Describe(Option(r, "batchSize")));
      setup.options.shape = Shape(batch);
      setup.options.sampling_timesteps = sampling_timesteps_;
      setup.options.ddim_eta = eta_;
      setup.options.clip_denoised = clip_denoised_;
      setup.options.clip_after_guidance = clip_after_guidance_;
      setup.options.auto_normalize = auto_normalize_;
      setup.options.device = device_;
      setup.options.cuda_graph = cuda_graph_;
      setup.options.return_all_timesteps = ToBool(Option(r, "returnAllTimesteps"), "returnAllTimesteps");
      setup.options.cond_input = parse_cond_input(ToString(Option(r, "condInput"), "condInput"));
      Napi::Value x0_scale = Option(r, "x0GuidanceScale");  // set by lib/x0-guidance.ts for guidanceInput 'x0'
      if (!IsMissing(x0_scale)) {
        X0GuidanceOptions x0;
        x0.scale = ToNumber(x0_scale, "guidanceScale");
        x0.gradient_norm = ToBool(Option(r, "x0GradientNorm"), "gradientNorm");
        if (Napi::Value v = Option(r, "x0Recurrence"); !IsMissing(v)) x0.recurrence = ToInt(v, "recurrence");
        Napi::Value interval = Option(r, "x0GuidanceInterval");  // [lo, hi], checked by lib/x0-guidance.ts
        if (!IsMissing(interval)) {
          x0.t_lo = ToNumber(interval.As<Napi::Array>().Get(uint32_t{0}), "guidanceInterval[0]");
          x0.t_hi = ToNumber(interval.As<Napi::Array>().Get(uint32_t{1}), "guidanceInterval[1]");
        }
        setup.options.x0_guidance = x0;
      }
      Napi::Value method = Option(r, "sampler");
      if (!IsMissing(method)) setup.options.method = parse_sample_method(ToString(method, "sampler"));
      ReadFastOptions(r, setup.options.fast);
      Napi::Value eta = Option(r, "eta");
      if (!IsMissing(eta)) setup.options.ddim_eta = ToNumber(eta, "eta");
      Napi::Value y = Option(Option(r, "modelKwargs"), "y");
      if (!IsMissing(y)) {
        at::Tensor labels = TensorWrap::From(y, "modelKwargs.y").reshape(-1);
        if (labels.size(0) != batch) {
          ThrowRange(env, "modelKwargs.y has " + std::to_string(labels.size(0)) + " labels but batchSize is " + std::to_string(batch));
        }
        Denoiser d = denoiser_->with_labels(labels.to(device_));
        // Classifier-free guidance: {scale, rescaledPhi, nullClass}, checked by lib/diffusion.ts.
        Napi::Value cfg = Option(r, "cfg");
        if (!IsMissing(cfg)) {
          const int64_t null_class = ToNonNegativeInt(Option(cfg, "nullClass"), "nullClass");
          d = d.with_cfg(at::full({batch}, null_class, at::TensorOptions().dtype(at::kLong).device(device_)),
                         ToNumber(Option(cfg, "scale"), "cfgScale"), ToNumber(Option(cfg, "rescaledPhi"), "rescaledPhi"));
        }
        setup.denoiser = std::make_shared<const Denoiser>(std::move(d));
      } else if (!IsMissing(Option(r, "cfg"))) {
        ThrowType(env, "cfgScale needs the class labels: modelKwargs: { y }");
      }
      ReadEditOptions(r, setup.options);
      Napi::Value seed = Option(r, "seed");
      if (!IsMissing(seed)) {
        setup.options.generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToNonNegativeInt(seed, "seed")));
      }
      Napi::Value seeds = Option(r, "seeds");
      if (!IsMissing(seeds)) {
        if (!seeds.IsArray() || seeds.As<Napi::Array>().Length() != static_cast<uint32_t>(batch)) {
          ThrowType(env, "Expected an array of " + std::to_string(batch) + " seeds (one per image) for seeds but received " + Describe(seeds));
        }
        if (!IsMissing(seed)) ThrowType(env, "give seed or seeds, not both");
        auto arr = seeds.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); ++i) {
          setup.options.image_generators.push_back(
              at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToNonNegativeInt(arr.Get(i), "seeds[i]"))));
        }
      }
      Napi::Value timeout = Option(r, "stepTimeoutMs");
      if (!IsMissing(timeout)) setup.step_timeout_ms = ToNonNegativeInt(timeout, "stepTimeoutMs");
      Napi::Value cond_fn = Option(r, "condFn");
      if (!IsMissing(cond_fn)) {
        if (!cond_fn.IsFunction()) ThrowType(env, "Expected a function for condFn but received " + Describe(cond_fn));
        setup.cond_fn = cond_fn.As<Napi::Function>();
      }
      Napi::Value cg = Option(r, "classifierGuidance");
      if (!IsMissing(cg)) {
        torch::jit::Module classifier = ModuleWrap::From(Option(cg, "classifier"), "classifier");
        classifier.eval();
        at::Tensor y = TensorWrap::From(Option(cg, "y"), "y").reshape(-1).to(device_, at::kLong);
        double scale = ToNumber(Option(cg, "classifierScale"), "classifierScale");
        setup.native_guidance = std::make_unique<ClassifierGuidance>(classifier, y, scale);
      }
      Napi::Value progress = Option(r, "onProgress");
      if (!IsMissing(progress)) setup.on_progress = progress.As<Napi::Function>();
      return SampleJob::Start(env, std::move(setup));
    })
  }

  Napi::Value ScheduleBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Schedule& s = *schedule_;
    auto o = Napi::Object::New(env);
    if (s.timestep_map.map.defined()) o.Set("timestepMap", TensorWrap::Wrap(env, s.timestep_map.map));
    const std::pair<const char*, const at::Tensor*> items[] = {
        {"betas", &s.betas},
        {"alphasCumprod", &s.alphas_cumprod},
        {"alphasCumprodPrev", &s.alphas_cumprod_prev},
        {"sqrtAlphasCumprod", &s.sqrt_alphas_cumprod},
        {"sqrtOneMinusAlphasCumprod", &s.sqrt_one_minus_alphas_cumprod},
        {"posteriorVariance", &s.posterior_variance},
        {"posteriorLogVarianceClipped", &s.posterior_log_variance_clipped},
        {"posteriorMeanCoef1", &s.posterior_mean_coef1},
        {"posteriorMeanCoef2", &s.posterior_mean_coef2},
        {"posteriorLogVarianceExtended", &s.posterior_log_variance_extended},
        {"fixedLargeVariance", &s.fixed_large_variance},
        {"fixedLargeLogVariance", &s.fixed_large_log_variance},
    };
    for (const auto& [name, t] : items) o.Set(name, TensorWrap::Wrap(env, *t));
    return o;
  }

  // t indexes the (respaced) schedule's buffers: outside [0, T) LibTorch would only say "index
  // out of range in self".
  at::Tensor StepIndex(Napi::Env env, const Napi::Value& value, const char* who) const {
    at::Tensor t = TensorWrap::From(value, "t");
    const std::string T = std::to_string(schedule_->timesteps);
    if (!at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
      ThrowType(env, std::string(who) + ": t must be an integer tensor of step indices in [0, " + T + "), not " + DtypeName(t.scalar_type()));
    }
    if (t.dim() != 1) {
      ThrowRange(env, std::string(who) + ": t must be a 1-D tensor of step indices, one per sample; got shape [" + c10::Join(", ", t.sizes()) + "]");
    }
    if (t.numel() == 0) return t;
    const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    if (lo < 0 || hi >= schedule_->timesteps) {
      ThrowRange(env, std::string(who) + ": t holds " + std::to_string(lo < 0 ? lo : hi) + ", outside the schedule's steps 0.." +
                          std::to_string(schedule_->timesteps - 1) + " (" + T + " steps" +
                          (schedule_->timestep_map.identity() ? "" : ", respaced") + ")");
    }
    return t;
  }

  Napi::Value QSample(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return TensorWrap::Wrap(info.Env(), q_sample(*schedule_, TensorWrap::From(info[0], "x0"), StepIndex(info.Env(), info[1], "qSample"),
                                                   TensorWrap::From(info[2], "noise")));
    })
  }

  Napi::Value PLosses(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return TensorWrap::Wrap(info.Env(), p_losses(*denoiser_, *schedule_, TensorWrap::From(info[0], "x0"),
                                                   StepIndex(info.Env(), info[1], "pLosses"), TensorWrap::From(info[2], "noise")));
    })
  }

  // trainingLosses(x0, t, lossType, noise?, y?) -> {loss, mse?, vb?}: openai's training_losses
  // terms per sample, with the graph kept for backward.
  Napi::Value TrainingLosses(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      Napi::Env env = info.Env();
      const at::Tensor x0 = TensorWrap::From(info[0], "x0");
      const at::Tensor t = StepIndex(env, info[1], "trainingLosses");
      const LossType type = parse_loss_type(ToString(info[2], "lossType"));
      const at::Tensor noise = IsMissing(info[3]) ? at::Tensor() : TensorWrap::From(info[3], "noise");
      const Denoiser denoiser = IsMissing(info[4]) ? *denoiser_ : denoiser_->with_labels(TensorWrap::From(info[4], "y"));
      const LossTerms terms = training_losses(denoiser, *schedule_, x0, t, noise, type);
      auto o = Napi::Object::New(env);
      o.Set("loss", TensorWrap::Wrap(env, terms.loss));
      if (terms.mse.defined()) o.Set("mse", TensorWrap::Wrap(env, terms.mse));
      if (terms.vb.defined()) o.Set("vb", TensorWrap::Wrap(env, terms.vb));
      return o;
    })
  }

  // openaiTrainer(options): their TrainLoop's step over this diffusion's model and schedule.
  Napi::Value OpenaiTrainer(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), { return NewOpenaiTrainer(info.Env(), *denoiser_, *schedule_, info[0]); })
  }

  // openaiClassifierTrainer(classifier, options): classifier_train.py's step over this diffusion's schedule.
  Napi::Value OpenaiClassifierTrainer(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), { return NewOpenaiClassifierTrainer(info.Env(), ModuleWrap::From(info[0], "classifier"), *schedule_, info[1]); })
  }

  // predict(x, t, y?) -> {eps, x0, mean, variance, logVariance}: one model call at step t
  // of the (respaced) schedule, as the samplers see it (openai's p_mean_variance).
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      at::NoGradGuard no_grad;
      at::Tensor x = TensorWrap::From(info[0], "x");
      at::Tensor t = StepIndex(info.Env(), info[1], "predict");
      const Denoiser denoiser = IsMissing(info[2]) ? *denoiser_ : denoiser_->with_labels(TensorWrap::From(info[2], "y"));
      Prediction p = denoiser.predict(*schedule_, x, t, at::Tensor(), clip_denoised_);
      auto o = Napi::Object::New(info.Env());
      o.Set("eps", TensorWrap::Wrap(info.Env(), p.eps));
      o.Set("x0", TensorWrap::Wrap(info.Env(), p.x0));
      o.Set("mean", TensorWrap::Wrap(info.Env(), posterior_mean(*schedule_, p.x0, x, t)));
      o.Set("variance", TensorWrap::Wrap(info.Env(), p.variance.expand_as(x).contiguous()));
      o.Set("logVariance", TensorWrap::Wrap(info.Env(), p.log_variance.expand_as(x).contiguous()));
      return o;
    })
  }

  std::shared_ptr<const Denoiser> denoiser_;
  std::shared_ptr<const Schedule> schedule_;
  int64_t image_size_ = 0;
  int64_t channels_ = 3;
  int64_t sampling_timesteps_ = 0;
  double eta_ = 0;
  bool auto_normalize_ = true;
  bool clip_denoised_ = true;
  bool clip_after_guidance_ = false;
  bool cuda_graph_ = false;
  at::Device device_ = at::kCPU;
};

thread_local torch::jit::Module* DiffusionWrap::pending_model = nullptr;
thread_local Napi::Value* DiffusionWrap::pending_options = nullptr;

// createDiffusion(model, options)
Napi::Value CreateDiffusion(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    torch::jit::Module model = ModuleWrap::From(info[0], "model");
    Napi::Value options = info[1];
    DiffusionWrap::pending_model = &model;
    DiffusionWrap::pending_options = &options;
    try {
      return GetAddonEnv(info.Env()).diffusion_class.New({});
    } catch (...) {
      DiffusionWrap::pending_model = nullptr;
      throw;
    }
  })
}

// repaintSchedule(steps, jumpLength, jumpCount) -> the step indices RePaint's schedule visits.
Napi::Value RepaintSchedule(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<int64_t> ts = repaint_schedule(ToInt(info[0], "steps"), ToInt(info[1], "jumpLength"), ToInt(info[2], "jumpCount"));
    auto out = Napi::Array::New(info.Env(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), double(ts[i])));
    return out;
  })
}

// spaceTimesteps(timesteps, spec) -> the kept base timesteps, ascending.
Napi::Value SpaceTimesteps(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<int64_t> kept = space_timesteps(ToInt(info[0], "timesteps"), ToString(info[1], "timestepRespacing"));
    auto out = Napi::Array::New(info.Env(), kept.size());
    for (size_t i = 0; i < kept.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), double(kept[i])));
    return out;
  })
}

}  // namespace

void InstallDiffusion(Napi::Env env, Napi::Object exports) {
  DiffusionWrap::Init(env, exports);
  exports.Set("repaintSchedule", Napi::Function::New(env, RepaintSchedule, "repaintSchedule"));
  exports.Set("spaceTimesteps", Napi::Function::New(env, SpaceTimesteps, "spaceTimesteps"));
  exports.Set("createDiffusion", Napi::Function::New(env, CreateDiffusion, "createDiffusion"));
  // openaiClassifierTrainer(classifier, scheduleOptions, options): a classifier trainer over a
  // schedule of GaussianDiffusion's options, without a diffusion model.
  exports.Set("openaiClassifierTrainer", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    GD_GUARD(info.Env(), { return NewOpenaiClassifierTrainer(info.Env(), ModuleWrap::From(info[0], "classifier"), ScheduleFromOptions(info[1]), info[2]); })
  }, "openaiClassifierTrainer"));
}

}  // namespace gd::js
