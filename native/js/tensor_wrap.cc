#include "js/tensor_wrap.h"

#include "js/addon_env.h"
#include "js/common.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

namespace gd::js {

namespace {

// Handed from Wrap() to the constructor it calls, on the same thread. The classes, tidy
// scopes and counts are the environment's (AddonEnv).
thread_local at::Tensor* t_pending = nullptr;

}  // namespace

void TensorWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Tensor",
                                   {
                                       InstanceMethod<&TensorWrap::Dispose>("dispose"),
                                       InstanceAccessor<&TensorWrap::IsDisposed>("isDisposed"),
                                   });
  GetAddonEnv(env).tensor_class = Napi::Persistent(cls);
  AddMethods(env, cls.Get("prototype").As<Napi::Object>());
  exports.Set("Tensor", cls);
}

void TensorWrap::AddMethods(Napi::Env env, Napi::Object prototype) {
  InstallTensorProperties(env, prototype);
  InstallTensorOps(env, prototype);
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (t_pending == nullptr) {
    throw Napi::TypeError::New(info.Env(), "Tensor cannot be constructed directly; use torch.tensor(), torch.zeros() and the like");
  }
  tensor_ = std::move(*t_pending);
  t_pending = nullptr;
  Account(+1);
  auto& scopes = GetAddonEnv(info.Env()).scopes;
  if (!scopes.empty()) scopes.back().insert(this);
}

TensorWrap::~TensorWrap() {
  if (!disposed()) {
    Account(-1);
    tensor_ = at::Tensor();
  }
  if (AddonEnv* data = FindAddonEnv(Env())) {
    for (auto& scope : data->scopes) scope.erase(this);
  }
}

void TensorWrap::Account(int sign) {
  if (sign > 0) {
    cpu_ = tensor_.device().is_cpu();
    bytes_ = static_cast<int64_t>(tensor_.numel()) * static_cast<int64_t>(tensor_.element_size());
  }
  // Also called from the destructor: must not throw.
  if (AddonEnv* data = FindAddonEnv(Env())) {
    data->tensors += sign;
    data->bytes += sign * bytes_;
  }
  int64_t adjusted = 0;  // the status is ignored: this runs in destructors, at teardown too
  if (cpu_ && bytes_ > 0) napi_adjust_external_memory(Env(), sign * bytes_, &adjusted);
}

Napi::Object TensorWrap::Wrap(Napi::Env env, at::Tensor t) {
  t_pending = &t;
  Napi::Object obj;
  try {
    obj = GetAddonEnv(env).tensor_class.New({});
  } catch (...) {
    t_pending = nullptr;
    throw;
  }
  return obj;
}

Napi::Value TensorWrap::WrapOrNull(Napi::Env env, const at::Tensor& t) {
  if (!t.defined()) return env.Null();
  return Wrap(env, t);
}

bool TensorWrap::IsTensor(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(GetAddonEnv(v.Env()).tensor_class.Value());
}

TensorWrap* TensorWrap::UnwrapArg(const Napi::Value& v, const char* name) {
  if (!IsTensor(v)) ThrowType(v.Env(), std::string("Expected Tensor for ") + name + " but received " + Describe(v));
  return Napi::ObjectWrap<TensorWrap>::Unwrap(v.As<Napi::Object>());
}

const at::Tensor& TensorWrap::From(const Napi::Value& v, const char* name) {
  TensorWrap* w = UnwrapArg(v, name);
  if (w->disposed()) {
    std::string what = std::strcmp(name, "this") == 0 ? "Tensor" : std::string("Tensor ") + name;
    throw Napi::Error::New(v.Env(), what + " was disposed and cannot be used");
  }
  return w->tensor_;
}

const at::Tensor& TensorWrap::tensor() const {
  if (disposed()) throw Napi::Error::New(Env(), "Tensor was disposed and cannot be used");
  return tensor_;
}

void TensorWrap::Reset(at::Tensor t) {
  if (!disposed()) Account(-1);
  tensor_ = std::move(t);
  if (!disposed()) Account(+1);
}

void TensorWrap::Dispose() {
  if (disposed()) return;
  Account(-1);
  tensor_ = at::Tensor();
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  Dispose();
  return info.Env().Undefined();
}

Napi::Value TensorWrap::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

void TensorWrap::StartScope(Napi::Env env) { GetAddonEnv(env).scopes.emplace_back(); }

void TensorWrap::EndScope(Napi::Env env, const std::vector<TensorWrap*>& keep) {
  auto& scopes = GetAddonEnv(env).scopes;
  if (scopes.empty()) return;
  std::unordered_set<TensorWrap*> scope = std::move(scopes.back());
  scopes.pop_back();
  for (TensorWrap* w : scope) {
    if (std::find(keep.begin(), keep.end(), w) != keep.end()) {
      // A kept tensor now belongs to the enclosing scope, as in TensorFlow.js.
      if (!scopes.empty()) scopes.back().insert(w);
    } else {
      w->Dispose();
    }
  }
}

TensorWrap::Stats TensorWrap::stats(Napi::Env env) {
  const AddonEnv& data = GetAddonEnv(env);
  return {data.tensors, data.bytes};
}

Operand ToOperand(const Napi::Value& v, const char* name) {
  Operand o;
  if (v.IsNumber() || v.IsBoolean() || v.IsBigInt()) {
    o.scalar = ToScalar(v, name);
  } else {
    o.is_tensor = true;
    if (!TensorWrap::IsTensor(v)) {
      ThrowType(v.Env(), std::string("Expected Tensor, number, boolean or BigInt for ") + name + " but received " + Describe(v));
    }
    o.tensor = TensorWrap::From(v, name);
  }
  return o;
}

at::Tensor OperandTensor(const Operand& o, const at::Tensor& like) {
  if (o.is_tensor) return o.tensor;
  // A 0-dim tensor of the scalar's own type, marked as a wrapped number: type promotion then
  // treats it as PyTorch treats a Python scalar (int64.where(c, 0.5) is float32, not int64).
  at::Tensor s = at::scalar_tensor(o.scalar, like.options().dtype(o.scalar.type()));
  s.unsafeGetTensorImpl()->set_wrapped_number(true);
  return s;
}

std::vector<at::Tensor> ToTensorList(const Napi::Value& v, const char* name) {
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of Tensors for ") + name + " but received " + Describe(v));
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(TensorWrap::From(arr.Get(i), item.c_str()));
  }
  return out;
}

Napi::Array WrapList(Napi::Env env, const std::vector<at::Tensor>& list) {
  auto arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), TensorWrap::Wrap(env, list[i]));
  return arr;
}

}  // namespace gd::js
