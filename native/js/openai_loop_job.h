// TrainLoop.runLoop's native half: run_openai_loop (diffusion/openai_train_loop.h) on a thread
// of its own as a JsJob, each dumped log and each save posted to the JS thread.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "diffusion/openai_train_loop.h"

namespace gd::js {

// Starts the run; returns {promise, cancel()}. `busy` is true from now until the run no longer
// touches the trainer (the trainer's other methods refuse to run meanwhile).
Napi::Object StartOpenaiLoop(Napi::Env env, std::shared_ptr<OpenaiTrainStep> trainer, std::shared_ptr<std::atomic<bool>> busy,
                             at::Tensor images, at::Tensor labels, OpenaiLoopOptions options, Napi::Value on_log,
                             Napi::Value on_save);

}  // namespace gd::js
