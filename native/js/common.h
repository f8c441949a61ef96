// Conversions between JS values and LibTorch values, and the one place where C++ exceptions
// become JS errors. Everything in native/js uses these; nothing below native/js knows JS.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

namespace gd::js {

// Rethrows the exception in flight as a JS error: Napi errors pass through, LibTorch's
// c10::Error keeps its message (without the C++ backtrace), anything else becomes Error.
[[noreturn]] void RethrowAsJs(Napi::Env env);
// A LibTorch message without its C++ backtrace; of a TorchScript traceback, the last line.
std::string TrimTorchMessage(std::string msg);

// Wraps a callback body so that every exception leaves as a JS error, never an abort.
#define GD_GUARD(env, ...)             \
  try {                                \
    __VA_ARGS__                        \
  } catch (...) {                      \
    ::gd::js::RethrowAsJs(env);        \
  }

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// "Expected <what> for <name> but received <value>" in the manner of sharp.
std::string Describe(const Napi::Value& v);

bool IsMissing(const Napi::Value& v);  // undefined or null
double ToNumber(const Napi::Value& v, const char* name);
int64_t ToInt(const Napi::Value& v, const char* name);
int64_t ToNonNegativeInt(const Napi::Value& v, const char* name);
bool ToBool(const Napi::Value& v, const char* name);
// A JS number, boolean or BigInt as a LibTorch scalar, typed as Python would type the same
// literal: an integral number (or a BigInt) is an int, a fractional one a float, so that
// int64.add(1) stays int64 and 2**40 + 1 stays exact (PyTorch's wrapped-number promotion).
at::Scalar ToScalar(const Napi::Value& v, const char* name);
std::string ToString(const Napi::Value& v, const char* name);
// A shape: an array of non-negative integers (or a single integer).
std::vector<int64_t> ToShape(const Napi::Value& v, const char* name);
// One dim or a list of dims (possibly negative).
std::vector<int64_t> ToDims(const Napi::Value& v, const char* name);

at::ScalarType ToDtype(Napi::Env env, const std::string& name);
std::string DtypeName(at::ScalarType t);
at::Device ToDevice(Napi::Env env, const std::string& name);
std::string DeviceName(const at::Device& d);

// Reads {dtype, device, requiresGrad} from an options object into TensorOptions.
at::TensorOptions ToTensorOptions(const Napi::Value& options, at::TensorOptions base = {});
bool OptionRequiresGrad(const Napi::Value& options);

// Property lookup on an options object; undefined when options is missing.
Napi::Value Option(const Napi::Value& options, const char* key);

}  // namespace gd::js
