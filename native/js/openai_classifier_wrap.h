// The JS face of diffusion/openai_classifier_step.h, made by
// NativeDiffusion.openaiClassifierTrainer(classifier, options).
#pragma once

#include <napi.h>
#include <torch/script.h>

#include "diffusion/schedule.h"

namespace gd::js {

// options (validated and filled by lib/openai/classifier-train.ts): lr, weightDecay, microbatch,
// noised, iterations, annealLr, scheduleSampler, seed.
Napi::Value NewOpenaiClassifierTrainer(Napi::Env env, const torch::jit::Module& classifier, const Schedule& schedule,
                                       const Napi::Value& options);

}  // namespace gd::js
