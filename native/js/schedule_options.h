// A diffusion schedule from the options GaussianDiffusion hands the addon (timesteps,
// betaSchedule, scheduleFnKwargs, timestepRespacing, rescaleTimesteps): NativeDiffusion's, and
// the one a classifier trainer built from their diffusion flags needs without a model.
#pragma once

#include <napi.h>

#include "diffusion/schedule.h"

namespace gd::js {

Schedule ScheduleFromOptions(const Napi::Value& options);

}  // namespace gd::js
