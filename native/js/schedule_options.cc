#include "js/schedule_options.h"

#include "diffusion/respace.h"
#include "js/common.h"

namespace gd::js {

Schedule ScheduleFromOptions(const Napi::Value& o) {
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
  // A respaced (or rescaled) schedule carries the map to the base timesteps the model sees.
  Napi::Value respacing = Option(o, "timestepRespacing");
  Napi::Value rescale_v = Option(o, "rescaleTimesteps");
  const bool rescale = !IsMissing(rescale_v) && ToBool(rescale_v, "rescaleTimesteps");
  at::Tensor betas = make_betas(so);
  if (IsMissing(respacing) && !rescale) return schedule_from_betas(betas);
  const std::string spec = IsMissing(respacing) ? "" : ToString(respacing, "timestepRespacing");
  std::vector<int64_t> kept;
  if (spec.empty()) {
    for (int64_t k = 0; k < so.timesteps; ++k) kept.push_back(k);
  } else {
    kept = space_timesteps(so.timesteps, spec);
  }
  return respace(betas, kept, rescale);
}

}  // namespace gd::js
