// The JS face of diffusion/openai_train_step.h, made by NativeDiffusion.openaiTrainer(options).
#pragma once

#include <napi.h>

#include "diffusion/denoiser.h"
#include "diffusion/schedule.h"

namespace gd::js {

// options (validated and filled by lib/openai/train.ts): lr, weightDecay, lrAnnealSteps,
// microbatch, emaRate (numbers), scheduleSampler, lossType, seed.
Napi::Value NewOpenaiTrainer(Napi::Env env, const Denoiser& denoiser, const Schedule& schedule, const Napi::Value& options);

}  // namespace gd::js
