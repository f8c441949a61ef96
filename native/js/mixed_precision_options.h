// The options of both openai trainers that set their MixedPrecisionTrainer: useFp16,
#pragma once

#include <napi.h>

#include "diffusion/mixed_precision.h"
#include "js/common.h"

namespace gd::js {

inline MixedPrecisionOptions ParseMixedPrecision(const Napi::Value& o, MixedPrecisionOptions defaults) {
  MixedPrecisionOptions out = defaults;
  const Napi::Value use = Option(o, "useFp16");
  if (!IsMissing(use)) out.use_fp16 = ToBool(use, "useFp16");
  const Napi::Value growth = Option(o, "fp16ScaleGrowth");
  if (!IsMissing(growth)) out.fp16_scale_growth = ToNumber(growth, "fp16ScaleGrowth");
  return out;
}

}  // namespace gd::js
