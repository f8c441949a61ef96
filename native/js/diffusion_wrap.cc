// NativeDiffusion: a model and its schedule, with sample() on a thread of its own and the
// synchronous pieces (qSample, pLosses, predict) for training and tests.
#include <ATen/CPUGeneratorImpl.h>

#include "diffusion/training.h"
#include "js/addon_env.h"
#include "js/common.h"
#include "js/module_wrap.h"
#include "js/sample_job.h"
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
                                         InstanceMethod<&DiffusionWrap::Predict>("predict"),
                                         InstanceMethod<&DiffusionWrap::DeviceName>("device"),
                                         InstanceMethod<&DiffusionWrap::CudaGraph>("cudaGraph"),
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
      ScheduleOptions so;
      so.timesteps = ToInt(Option(o, "timesteps"), "timesteps");
      so.beta_schedule = parse_beta_schedule(ToString(Option(o, "betaSchedule"), "betaSchedule"));
      Napi::Value kw = Option(o, "scheduleFnKwargs");
      auto num = [&](const char* key, double dflt) {
        Napi::Value v = Option(kw, key);
        return IsMissing(v) ? dflt : ToNumber(v, key);
      };
      so.cosine_s = num("s", so.cosine_s);
      so.sigmoid_start = num("start", so.sigmoid_start);
      so.sigmoid_end = num("end", so.sigmoid_end);
      so.sigmoid_tau = num("tau", so.sigmoid_tau);
      sampling_timesteps_ = ToInt(Option(o, "samplingTimesteps"), "samplingTimesteps");
      eta_ = ToNumber(Option(o, "ddimSamplingEta"), "ddimSamplingEta");
      auto_normalize_ = ToBool(Option(o, "autoNormalize"), "autoNormalize");
      clip_denoised_ = ToBool(Option(o, "clipDenoised"), "clipDenoised");
      Napi::Value clip_after = Option(o, "clipAfterGuidance");
      clip_after_guidance_ = !IsMissing(clip_after) && ToBool(clip_after, "clipAfterGuidance");
      Napi::Value device = Option(o, "device");
      device_ = IsMissing(device) ? ModelDevice(model) : ToDevice(env, ToString(device, "device"));
      schedule_ = std::make_shared<const Schedule>(make_schedule(so).to(device_));
      Objective objective = parse_objective(ToString(Option(o, "objective"), "objective"));
      model.eval();
      auto denoiser = std::make_shared<Denoiser>(model, objective);
      Napi::Value autocast = Option(o, "autocast");
      if (!IsMissing(autocast)) {
        const std::string dtype = ToString(autocast, "autocast");
        if (dtype != "float16" && dtype != "bfloat16") {
          ThrowRange(env, "autocast must be 'float16' or 'bfloat16'; got '" + dtype + "'");
        }
        if (!device_.is_cuda()) ThrowRange(env, "autocast needs a CUDA device; this diffusion samples on " + device_.str());
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
      out = denoiser_->forward(x, t);
    } catch (const std::exception& e) {
      std::string msg = TrimTorchMessage(e.what());
      throw std::runtime_error("GaussianDiffusion: the model's forward(x, t) failed on x of shape [1, " + std::to_string(channels_) + ", " +
                               std::to_string(image_size_) + ", " + std::to_string(image_size_) +
                               "] (float32) and t of shape [1] (int64): " + msg.substr(0, msg.find('\n')));
    }
  }

  std::vector<int64_t> Shape(int64_t batch) const { return {batch, channels_, image_size_, image_size_}; }

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
      Napi::Value seed = Option(r, "seed");
      if (!IsMissing(seed)) {
        setup.options.generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToNonNegativeInt(seed, "seed")));
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
    };
    for (const auto& [name, t] : items) o.Set(name, TensorWrap::Wrap(env, *t));
    return o;
  }

  Napi::Value QSample(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return TensorWrap::Wrap(info.Env(), q_sample(*schedule_, TensorWrap::From(info[0], "x0"), TensorWrap::From(info[1], "t"),
                                                   TensorWrap::From(info[2], "noise")));
    })
  }

  Napi::Value PLosses(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      return TensorWrap::Wrap(info.Env(), p_losses(*denoiser_, *schedule_, TensorWrap::From(info[0], "x0"), TensorWrap::From(info[1], "t"),
                                                   TensorWrap::From(info[2], "noise")));
    })
  }

  // predict(x, t) -> {eps, x0}: one model call, as the samplers see it.
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      at::NoGradGuard no_grad;
      Prediction p = denoiser_->predict(*schedule_, TensorWrap::From(info[0], "x"), TensorWrap::From(info[1], "t"), at::Tensor(),
                                        clip_denoised_);
      auto o = Napi::Object::New(info.Env());
      o.Set("eps", TensorWrap::Wrap(info.Env(), p.eps));
      o.Set("x0", TensorWrap::Wrap(info.Env(), p.x0));
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

}  // namespace

void InstallDiffusion(Napi::Env env, Napi::Object exports) {
  DiffusionWrap::Init(env, exports);
  exports.Set("createDiffusion", Napi::Function::New(env, CreateDiffusion, "createDiffusion"));
}

}  // namespace gd::js
