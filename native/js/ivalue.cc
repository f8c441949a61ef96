#include "js/ivalue.h"

#include <cmath>

#include "js/common.h"
#include "js/tensor_wrap.h"

namespace gd::js {

c10::IValue ToIValue(const Napi::Value& v, const char* name) {
  if (IsMissing(v)) return c10::IValue();
  if (TensorWrap::IsTensor(v)) return TensorWrap::From(v, name);
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
    return d;
  }
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    if (arr.Length() > 0 && TensorWrap::IsTensor(arr.Get(0u))) return c10::List<at::Tensor>(ToTensorList(v, name));
    bool all_int = true;
    std::vector<double> values;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      double d = ToNumber(arr.Get(i), name);
      all_int = all_int && std::floor(d) == d;
      values.push_back(d);
    }
    if (all_int) {
      c10::List<int64_t> ints;
      for (double d : values) ints.push_back(static_cast<int64_t>(d));
      return ints;
    }
    return c10::List<double>(values);
  }
  ThrowType(v.Env(), std::string("Cannot pass ") + Describe(v) + " as " + name + " to a TorchScript method");
}

Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isNone()) return env.Null();
  if (v.isTensor()) return TensorWrap::Wrap(env, v.toTensor());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTuple() || v.isList()) {
    std::vector<c10::IValue> items;
    if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) items.push_back(e);
    } else {
      for (const auto& e : v.toListRef()) items.push_back(e);
    }
    auto arr = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); i++) arr.Set(static_cast<uint32_t>(i), FromIValue(env, items[i]));
    return arr;
  }
  if (v.isGenericDict()) {
    auto obj = Napi::Object::New(env);
    for (const auto& entry : v.toGenericDict()) {
      if (!entry.key().isString()) throw Napi::TypeError::New(env, "Cannot convert a dict with non-string keys to JS");
      obj.Set(entry.key().toStringRef(), FromIValue(env, entry.value()));
    }
    return obj;
  }
  throw Napi::TypeError::New(env, "Cannot convert a TorchScript value of type " + v.tagKind() + " to JS");
}

}  // namespace gd::js
