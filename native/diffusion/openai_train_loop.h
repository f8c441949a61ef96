// Their TrainLoop.run_loop over images in memory: batches drawn as their load_data gives them
// (shuffled each pass, the last partial batch dropped, each image flipped left-right with
// probability 1/2), one OpenaiTrainStep per batch, their logger dumped every log_interval steps
// and their save() every save_interval steps and at the end, lr_anneal_steps ending the run.
// Blocks: the caller runs it on a thread of its own.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diffusion/openai_train_step.h"

namespace gd {

struct OpenaiLoopOptions {
  int64_t batch_size = 1;
  // > 0: this call takes at most this many steps (their loop has no such limit and runs until
  // lr_anneal_steps, or for ever); 0: none.
  int64_t steps = 0;
  int64_t log_interval = 10;
  int64_t save_interval = 10000;
  std::string out_dir;  // empty: nothing is saved
  bool random_flip = true;
  std::function<void(const StepLog&)> on_log;
  // The number in the files' names, and their paths.
  std::function<void(int64_t, const std::vector<std::string>&)> on_save;
  // Called after each step (and its log and save); throws to stop the run there.
  std::function<void()> after_step;
  // Instead of images: the next batch (images, labels or undefined), or nothing when the data
  // has ended, which ends the run as lr_anneal_steps would.
  std::function<std::optional<std::pair<at::Tensor, at::Tensor>>()> next_batch;
};

struct OpenaiLoopResult {
  int64_t steps_run = 0;
  std::vector<int64_t> saved;  // the numbers of the checkpoints written, in order
};

// images: float [N, C, H, W] in [-1, 1]; labels: int64 [N] or undefined (unconditional). Both
// undefined when options.next_batch gives the batches.
OpenaiLoopResult run_openai_loop(OpenaiTrainStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                 const OpenaiLoopOptions& options);

}  // namespace gd
