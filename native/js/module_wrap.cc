#include "js/module_wrap.h"

#include "js/addon_env.h"
#include "js/common.h"
#include "js/ivalue.h"
#include "js/tensor_wrap.h"
#include "models/classifier.h"
#include "models/jit_builder.h"
#include "models/unet.h"

namespace gd::js {

namespace {

// Handed from Wrap() to the constructor it calls, on the same thread.
thread_local torch::jit::Module* t_pending_module = nullptr;

Napi::Object TensorMap(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& items) {
  auto obj = Napi::Object::New(env);
  for (const auto& [name, t] : items) obj.Set(name, TensorWrap::Wrap(env, t));
  return obj;
}

}  // namespace

void ModuleWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeModule",
                                   {
                                       InstanceMethod<&ModuleWrap::Forward>("forward"),
                                       InstanceMethod<&ModuleWrap::CallMethod>("callMethod"),
                                       InstanceMethod<&ModuleWrap::Train>("train"),
                                       InstanceMethod<&ModuleWrap::IsTraining>("isTraining"),
                                       InstanceMethod<&ModuleWrap::To>("to"),
                                       InstanceMethod<&ModuleWrap::NamedParameters>("namedParameters"),
                                       InstanceMethod<&ModuleWrap::NamedBuffers>("namedBuffers"),
                                       InstanceMethod<&ModuleWrap::StateDict>("stateDict"),
                                       InstanceMethod<&ModuleWrap::LoadStateDict>("loadStateDict"),
                                       InstanceMethod<&ModuleWrap::Save>("save"),
                                       InstanceMethod<&ModuleWrap::Attribute>("attribute"),
                                       InstanceMethod<&ModuleWrap::ForwardSchema>("forwardSchema"),
                                       InstanceMethod<&ModuleWrap::TypeName>("typeName"),
                                       InstanceMethod<&ModuleWrap::Dispose>("dispose"),
                                   });
  GetAddonEnv(env).module_class = Napi::Persistent(cls);
  exports.Set("NativeModule", cls);
}

ModuleWrap::ModuleWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModuleWrap>(info) {
  if (t_pending_module == nullptr) {
    throw Napi::TypeError::New(info.Env(), "NativeModule cannot be constructed directly; use jit.load() or a model class");
  }
  module_ = *t_pending_module;
  t_pending_module = nullptr;
}

Napi::Object ModuleWrap::Wrap(Napi::Env env, torch::jit::Module module) {
  t_pending_module = &module;
  try {
    return GetAddonEnv(env).module_class.New({});
  } catch (...) {
    t_pending_module = nullptr;
    throw;
  }
}

const torch::jit::Module& ModuleWrap::From(const Napi::Value& v, const char* name) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(GetAddonEnv(v.Env()).module_class.Value())) {
    ThrowType(v.Env(), std::string("Expected Module for ") + name + " but received " + Describe(v));
  }
  ModuleWrap* w = Napi::ObjectWrap<ModuleWrap>::Unwrap(v.As<Napi::Object>());
  return w->module(v.Env());
}

torch::jit::Module& ModuleWrap::module(const Napi::Env& env) {
  if (!module_) throw Napi::Error::New(env, "Module was disposed and cannot be used");
  return *module_;
}

Napi::Value ModuleWrap::Forward(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<c10::IValue> args;
    for (size_t i = 0; i < info.Length(); i++) args.push_back(ToIValue(info[i], "argument"));
    return FromIValue(info.Env(), module(info.Env()).forward(std::move(args)));
  })
}

Napi::Value ModuleWrap::CallMethod(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::string name = ToString(info[0], "name");
    auto method = module(info.Env()).find_method(name);
    if (!method) throw Napi::Error::New(info.Env(), "Module has no method '" + name + "'");
    std::vector<c10::IValue> args;
    if (info[1].IsArray()) {
      auto arr = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) args.push_back(ToIValue(arr.Get(i), "argument"));
    }
    return FromIValue(info.Env(), (*method)(std::move(args)));
  })
}

Napi::Value ModuleWrap::Train(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    module(info.Env()).train(IsMissing(info[0]) ? true : ToBool(info[0], "on"));
    return info.Env().Undefined();
  })
}

Napi::Value ModuleWrap::IsTraining(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return Napi::Boolean::New(info.Env(), module(info.Env()).is_training()); })
}

Napi::Value ModuleWrap::To(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    auto& m = module(env);
    Napi::Value device = Option(info[0], "device");
    Napi::Value dtype = Option(info[0], "dtype");
    if (!IsMissing(device)) m.to(ToDevice(env, ToString(device, "device")));
    if (!IsMissing(dtype)) m.to(ToDtype(env, ToString(dtype, "dtype")));
    return env.Undefined();
  })
}

Napi::Value ModuleWrap::NamedParameters(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<std::pair<std::string, at::Tensor>> items;
    for (const auto& p : module(info.Env()).named_parameters(true)) items.emplace_back(p.name, p.value);
    return TensorMap(info.Env(), items);
  })
}

Napi::Value ModuleWrap::NamedBuffers(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<std::pair<std::string, at::Tensor>> items;
    for (const auto& b : module(info.Env()).named_buffers(true)) items.emplace_back(b.name, b.value);
    return TensorMap(info.Env(), items);
  })
}

// Parameters and buffers, detached: the weights as a checkpoint would hold them.
Napi::Value ModuleWrap::StateDict(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<std::pair<std::string, at::Tensor>> items;
    auto& m = module(info.Env());
    for (const auto& p : m.named_parameters(true)) items.emplace_back(p.name, p.value.detach());
    for (const auto& b : m.named_buffers(true)) items.emplace_back(b.name, b.value.detach());
    return TensorMap(info.Env(), items);
  })
}

// loadStateDict({name: Tensor}, strict): copies by name, checking names and shapes.
Napi::Value ModuleWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) ThrowType(env, "Expected an object of Tensors for stateDict but received " + Describe(info[0]));
    bool strict = IsMissing(info[1]) ? true : ToBool(info[1], "strict");
    auto obj = info[0].As<Napi::Object>();
    auto keys = obj.GetPropertyNames();
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (uint32_t i = 0; i < keys.Length(); i++) {
      std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
      tensors.emplace_back(key, TensorWrap::From(obj.Get(key), key.c_str()));
    }
    load_named_tensors(module(env), tensors, strict);
    return env.Undefined();
  })
}

Napi::Value ModuleWrap::Save(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    module(info.Env()).save(ToString(info[0], "path"));
    return info.Env().Undefined();
  })
}

Napi::Value ModuleWrap::Attribute(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::string name = ToString(info[0], "name");
    auto& m = module(info.Env());
    if (!m.hasattr(name)) return info.Env().Undefined();
    return FromIValue(info.Env(), m.attr(name));
  })
}

Napi::Value ModuleWrap::ForwardSchema(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    auto method = module(info.Env()).find_method("forward");
    if (!method) return Napi::String::New(info.Env(), "");
    std::ostringstream s;
    s << method->function().getSchema();
    return Napi::String::New(info.Env(), s.str());
  })
}

Napi::Value ModuleWrap::TypeName(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return Napi::String::New(info.Env(), module(info.Env()).type()->name()->qualifiedName()); })
}

Napi::Value ModuleWrap::Dispose(const Napi::CallbackInfo& info) {
  module_.reset();
  return info.Env().Undefined();
}

namespace {

int64_t IntOption(const Napi::Value& o, const char* key, int64_t dflt) {
  Napi::Value v = Option(o, key);
  return IsMissing(v) ? dflt : ToInt(v, key);
}

bool BoolOption(const Napi::Value& o, const char* key, bool dflt) {
  Napi::Value v = Option(o, key);
  return IsMissing(v) ? dflt : ToBool(v, key);
}

std::vector<int64_t> IntsOption(const Napi::Value& o, const char* key, std::vector<int64_t> dflt) {
  Napi::Value v = Option(o, key);
  return IsMissing(v) ? dflt : ToDims(v, key);
}

Napi::Value CreateUnet(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value o = info[0];
    UnetOptions opts;
    opts.dim = IntOption(o, "dim", 0);
    opts.init_dim = IntOption(o, "initDim", 0);
    opts.out_dim = IntOption(o, "outDim", 0);
    opts.dim_mults = IntsOption(o, "dimMults", opts.dim_mults);
    opts.channels = IntOption(o, "channels", opts.channels);
    opts.self_condition = BoolOption(o, "selfCondition", false);
    opts.learned_variance = BoolOption(o, "learnedVariance", false);
    opts.learned_sinusoidal_cond = BoolOption(o, "learnedSinusoidalCond", false);
    opts.random_fourier_features = BoolOption(o, "randomFourierFeatures", false);
    opts.learned_sinusoidal_dim = IntOption(o, "learnedSinusoidalDim", opts.learned_sinusoidal_dim);
    opts.num_classes = IntOption(o, "numClasses", 0);
    return ModuleWrap::Wrap(info.Env(), make_unet(opts));
  })
}

Napi::Value CreateLinearClassifier(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value o = info[0];
    LinearClassifierOptions opts;
    opts.image_size = IntOption(o, "imageSize", 0);
    opts.channels = IntOption(o, "channels", opts.channels);
    opts.num_classes = IntOption(o, "numClasses", 0);
    return ModuleWrap::Wrap(info.Env(), make_linear_classifier(opts));
  })
}

Napi::Value CreateClassifier(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value o = info[0];
    ClassifierOptions opts;
    opts.image_size = IntOption(o, "imageSize", 0);
    opts.channels = IntOption(o, "channels", opts.channels);
    opts.num_classes = IntOption(o, "numClasses", 0);
    opts.dim = IntOption(o, "dim", opts.dim);
    opts.dim_mults = IntsOption(o, "dimMults", opts.dim_mults);
    opts.num_res_blocks = IntOption(o, "numResBlocks", opts.num_res_blocks);
    opts.attention_resolutions = IntsOption(o, "attentionResolutions", opts.attention_resolutions);
    Napi::Value pool = Option(o, "pool");
    if (!IsMissing(pool)) opts.pool = ToString(pool, "pool");
    Napi::Value dropout = Option(o, "dropout");
    if (!IsMissing(dropout)) opts.dropout = ToNumber(dropout, "dropout");
    opts.heads = IntOption(o, "heads", opts.heads);
    opts.dim_head = IntOption(o, "dimHead", opts.dim_head);
    return ModuleWrap::Wrap(info.Env(), make_classifier(opts));
  })
}

}  // namespace

void InstallModuleFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("createUnet", Napi::Function::New(env, CreateUnet, "createUnet"));
  exports.Set("createLinearClassifier", Napi::Function::New(env, CreateLinearClassifier, "createLinearClassifier"));
  exports.Set("createClassifier", Napi::Function::New(env, CreateClassifier, "createClassifier"));
}

}  // namespace gd::js
