// TrainLoop.runLoop's native half: run_openai_loop (diffusion/openai_train_loop.h) on a thread
// of its own as a JsJob, each dumped log and each save posted to the JS thread.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "diffusion/openai_train_loop.h"

namespace gd::js {

// Starts the run; returns {promise, cancel()}. `busy` is true from now until the run no longer
// touches the trainer (the trainer's other methods refuse to run meanwhile). With `pushed` (no
// images), the batches come from JS: the object also has push(batch, y?) -> Promise<boolean>
// (true once the loop has taken that batch, false if the run ended first) and close() (no more
// batches: the run ends when it has taken those pushed).
Napi::Object StartOpenaiLoop(Napi::Env env, std::shared_ptr<OpenaiTrainStep> trainer, std::shared_ptr<std::atomic<bool>> busy,
                             at::Tensor images, at::Tensor labels, OpenaiLoopOptions options, Napi::Value on_log,
                             Napi::Value on_save, bool pushed);

}  // namespace gd::js
