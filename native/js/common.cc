#include "js/common.h"

#include <c10/util/Exception.h>

#include <cctype>
#include <cmath>
#include <new>
#include <sstream>

#include "js/option_keys.h"

namespace gd::js {

// LibTorch messages can carry a long TorchScript trace after the message; keep the message.
// An error raised inside a TorchScript method arrives as the interpreter's traceback (its
// source lines, indented or not) followed by the cause, a Python-style exception line
// ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x768 and 192x10)", possibly
// continued on further lines): that cause is what went wrong.
namespace {
bool IsExceptionLine(const std::string& line) {
  size_t i = 0;
  while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == '.')) ++i;
  if (i == 0 || line.compare(i, 2, ": ") != 0) return false;
  const std::string name = line.substr(0, i);
  auto ends = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends("Error") || ends("Exception");
}
}  // namespace

std::string TrimTorchMessage(std::string msg) {
  const std::string interp = "The following operation failed in the TorchScript interpreter.";
  if (const size_t at = msg.find(interp); at != std::string::npos) {
    const std::string context = msg.substr(0, at);  // what a caller said before the traceback
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // The cause starts at the last exception line.
    size_t cause_at = std::string::npos;
    for (size_t start = at; start < msg.size();) {
      size_t end = msg.find('\n', start);
      if (end == std::string::npos) end = msg.size();
      if (IsExceptionLine(msg.substr(start, end - start))) cause_at = start;
      start = end + 1;
    }
    if (cause_at == std::string::npos) return msg;
    std::string cause = msg.substr(cause_at);
    return context + cause.substr(cause.find(": ") + 2);  // without "RuntimeError: "
  }
  const char* markers[] = {"\nException raised from ", "\nframe #"};
  for (const char* m : markers) {
    auto pos = msg.find(m);
    if (pos != std::string::npos) msg.erase(pos);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

void RethrowAsJs(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    // The allocators' messages name the bytes asked for ("you tried to allocate N bytes").
    throw Napi::RangeError::New(env, TrimTorchMessage(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, TrimTorchMessage(e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "out of memory: the allocation failed");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, TrimTorchMessage(e.what()));
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBigInt()) return v.ToString().Utf8Value() + "n";
  if (v.IsSymbol()) return "a symbol";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

bool IsMissing(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

double ToNumber(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string("Expected number for ") + name + " but received " + Describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t ToInt(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string("Expected integer for ") + name + " but received " + Describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) {
    ThrowRange(v.Env(), std::string("Expected integer for ") + name + " but received " + Describe(v));
  }
  // An integer all the same, but one a JS number does not hold exactly (2**64 is a rounding).
  if (std::fabs(d) > 9.007199254740991e15) {
    ThrowRange(v.Env(), std::string("Expected a safe integer (magnitude at most 2^53 - 1) for ") + name + " but received " +
                            v.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

int64_t ToNonNegativeInt(const Napi::Value& v, const char* name) {
  int64_t i = ToInt(v, name);
  if (i < 0) ThrowRange(v.Env(), std::string("Expected non-negative integer for ") + name + " but received " + Describe(v));
  return i;
}

bool ToBool(const Napi::Value& v, const char* name) {
  if (!v.IsBoolean()) ThrowType(v.Env(), std::string("Expected boolean for ") + name + " but received " + Describe(v));
  return v.As<Napi::Boolean>().Value();
}

at::Scalar ToScalar(const Napi::Value& v, const char* name) {
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) ThrowRange(v.Env(), std::string("Expected a BigInt in the int64 range for ") + name + " but received " + Describe(v));
    return at::Scalar(i);
  }
  if (!v.IsNumber()) ThrowType(v.Env(), std::string("Expected number, boolean or BigInt for ") + name + " but received " + Describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  // -0 is kept a float: in JS it only comes from float arithmetic, and its sign matters there.
  // 2^63 itself does not fit int64, hence the strict bound.
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.223372036854775808e18 && !(d == 0 && std::signbit(d))) {
    return at::Scalar(static_cast<int64_t>(d));
  }
  return at::Scalar(d);
}

std::string ToString(const Napi::Value& v, const char* name) {
  if (!v.IsString()) ThrowType(v.Env(), std::string("Expected string for ") + name + " but received " + Describe(v));
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> ToShape(const Napi::Value& v, const char* name) {
  if (v.IsNumber()) return {ToNonNegativeInt(v, name)};
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of integers for ") + name + " but received " + Describe(v));
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    out[i] = ToNonNegativeInt(arr.Get(i), item.c_str());
  }
  return out;
}

std::vector<int64_t> ToDims(const Napi::Value& v, const char* name) {
  if (v.IsNumber()) return {ToInt(v, name)};
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an integer or array of integers for ") + name + " but received " + Describe(v));
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    out[i] = ToInt(arr.Get(i), item.c_str());
  }
  return out;
}

namespace {
struct DtypeEntry {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeEntry kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"uint8", at::kByte},  {"bool", at::kBool},
};
}  // namespace

at::ScalarType ToDtype(Napi::Env env, const std::string& name) {
  for (const auto& e : kDtypes) {
    if (name == e.name) return e.type;
  }
  if (name == "float") return at::kFloat;
  if (name == "double") return at::kDouble;
  if (name == "half") return at::kHalf;
  if (name == "long") return at::kLong;
  if (name == "int") return at::kInt;
  ThrowType(env, "Unknown dtype '" + name +
                     "'; expected one of float32, float64, float16, bfloat16, int64, int32, uint8, bool");
}

std::string DtypeName(at::ScalarType t) {
  for (const auto& e : kDtypes) {
    if (t == e.type) return e.name;
  }
  return c10::toString(t);
}

at::Device ToDevice(Napi::Env env, const std::string& name) {
  bool ok = name == "cpu" || name == "cuda" ||
            (name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
             name.find_first_not_of("0123456789", 5) == std::string::npos && name.size() < 9);
  if (!ok) ThrowType(env, "Unknown device '" + name + "'; expected 'cpu', 'cuda' or 'cuda:N'");
  return at::Device(name);
}

std::string DeviceName(const at::Device& d) { return d.str(); }

Napi::Value Option(const Napi::Value& options, const char* key) {
  if (!options.IsObject()) return options.Env().Undefined();
  return options.As<Napi::Object>().Get(key);
}

at::TensorOptions ToTensorOptions(const Napi::Value& options, at::TensorOptions base) {
  if (IsMissing(options)) return base;
  if (!options.IsObject()) ThrowType(options.Env(), "Expected an options object but received " + Describe(options));
  auto env = options.Env();
  // shape: tensor()'s, read in lib/torch.ts.
  RejectUnknownKeys(options, {"dtype", "device", "requiresGrad", "shape"}, "tensor options");
  auto dtype = Option(options, "dtype");
  if (!IsMissing(dtype)) base = base.dtype(ToDtype(env, ToString(dtype, "dtype")));
  auto device = Option(options, "device");
  if (!IsMissing(device)) base = base.device(ToDevice(env, ToString(device, "device")));
  return base;
}

bool OptionRequiresGrad(const Napi::Value& options) {
  auto v = Option(options, "requiresGrad");
  return IsMissing(v) ? false : ToBool(v, "requiresGrad");
}

}  // namespace gd::js
