// The native half of TrainLoop.runLoop and ClassifierTrainLoop.runLoop: a training loop
// (diffusion/openai_train_loop.h, diffusion/openai_classifier_loop.h) on a thread of its own as a
// JsJob, each dumped log and each save posted to the JS thread.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "diffusion/train_loop_common.h"

namespace gd::js {

// A loop to run: given the job's hooks, runs to its end (on the job's thread).
using LoopRun = std::function<OpenaiLoopResult(const LoopHooks& hooks)>;
// The trainer's step count and resumed step after the run, for the promise's result.
using LoopCounts = std::function<std::pair<int64_t, int64_t>()>;

// What both trainers' wrappers and their loop jobs hand to JS: a step's log as {key: number},
// the paths a save wrote, and a tensor argument that may be left out.
Napi::Object StepLogObject(Napi::Env env, const StepLog& log);
Napi::Array PathArray(Napi::Env env, const std::vector<std::string>& paths);
at::Tensor OptionalTensor(const Napi::Value& v, const char* name);

// runLoop's options object into settings: batchSize, steps, logInterval, saveInterval, outDir,
// randomFlip (checked and filled by lib/openai/run-loop.ts's callers).
void ReadLoopSettings(const Napi::Value& options, LoopSettings& settings);

// Starts the run (its data captured by `run`); returns {promise, cancel()}. `busy` is true from now until the run no longer
// touches the trainer (the trainer's other methods refuse to run meanwhile). With `pushed` (no
// images), the batches come from JS: the object also has push(batch, y?) -> Promise<boolean>
// (true once the loop has taken that batch, false if the run ended first) and close() (no more
// batches: the run ends when it has taken those pushed).
Napi::Object StartOpenaiLoop(Napi::Env env, LoopRun run, LoopCounts counts, std::shared_ptr<std::atomic<bool>> busy,
                             Napi::Value on_log, Napi::Value on_save, bool pushed);

}  // namespace gd::js
