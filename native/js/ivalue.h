// JS values <-> TorchScript IValues, for calling scripted methods from JS.
#pragma once

#include <napi.h>
#include <ATen/core/ivalue.h>

namespace gd::js {

// Tensor -> Tensor; integer number -> int; other number -> float; boolean; string;
// null/undefined -> None; array -> list (of tensors, ints or floats).
c10::IValue ToIValue(const Napi::Value& v, const char* name);
// Tensor -> Tensor; tuple/list -> array; int/float -> number; bool; string; None -> null;
// dict with string keys -> object.
Napi::Value FromIValue(Napi::Env env, const c10::IValue& v);

}  // namespace gd::js
