// NativeScheduleSampler: openai's schedule samplers (diffusion/schedule_sampler.h) for JS:
// new NativeScheduleSampler(name, timesteps, historyPerTerm, uniformProb), weights(),
// update(ts, losses), sample(batchSize, seed) -> { t, weights }.
#include <ATen/CPUGeneratorImpl.h>

#include <memory>
#include <vector>

#include "diffusion/schedule_sampler.h"
#include "js/common.h"
#include "js/installers.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

std::vector<double> NumberList(const Napi::Value& v, const char* name) {
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of numbers for ") + name + " but received " + Describe(v));
  auto arr = v.As<Napi::Array>();
  std::vector<double> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(ToNumber(arr.Get(i), name));
  return out;
}

class ScheduleSamplerWrap : public Napi::ObjectWrap<ScheduleSamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeScheduleSampler",
                       {
                           InstanceMethod<&ScheduleSamplerWrap::Weights>("weights"),
                           InstanceMethod<&ScheduleSamplerWrap::Update>("update"),
                           InstanceMethod<&ScheduleSamplerWrap::Sample>("sample"),
                       });
  }

  explicit ScheduleSamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ScheduleSamplerWrap>(info) {
    GD_GUARD(info.Env(), {
      sampler_ = std::make_unique<ScheduleSampler>(ToString(info[0], "scheduleSampler"), ToInt(info[1], "timesteps"),
                                                   ToInt(info[2], "historyPerTerm"), ToNumber(info[3], "uniformProb"));
    })
  }

 private:
  Napi::Value Weights(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      const at::Tensor w = sampler_->weights();
      auto out = Napi::Float64Array::New(info.Env(), static_cast<size_t>(w.numel()));
      std::copy(w.data_ptr<double>(), w.data_ptr<double>() + w.numel(), out.Data());
      return out;
    })
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      std::vector<int64_t> ts;
      for (double t : NumberList(info[0], "ts")) {
        if (t != static_cast<double>(static_cast<int64_t>(t))) ThrowType(info.Env(), "ts must hold integer timesteps; got " + std::to_string(t));
        ts.push_back(static_cast<int64_t>(t));
      }
      sampler_->update(ts, NumberList(info[1], "losses"));
      return info.Env().Undefined();
    })
  }

  Napi::Value Sample(const Napi::CallbackInfo& info) {
    GD_GUARD(info.Env(), {
      const int64_t batch = ToInt(info[0], "batchSize");
      if (batch < 1) ThrowRange(info.Env(), "batchSize must be >= 1; got " + std::to_string(batch));
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(ToInt(info[1], "seed")));
      auto [t, w] = sampler_->sample(batch, gen);
      auto o = Napi::Object::New(info.Env());
      o.Set("t", TensorWrap::Wrap(info.Env(), t));
      o.Set("weights", TensorWrap::Wrap(info.Env(), w));
      return o;
    })
  }

  std::unique_ptr<ScheduleSampler> sampler_;
};

}  // namespace

void InstallScheduleSampler(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeScheduleSampler", ScheduleSamplerWrap::Define(env));
}

}  // namespace gd::js
