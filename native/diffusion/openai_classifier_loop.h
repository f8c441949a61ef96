// classifier_train.py's main loop over images in memory: for each step a training batch drawn as
// their load_data gives them (shuffled each pass, the last partial batch dropped, flipped with
// probability 1/2), their set_annealed_lr and one OpenaiClassifierStep; a val batch through
// evaluate() every eval_interval steps; their logger dumped every log_interval steps; save_model
// every save_interval steps (not at step 0) and at the end. The run ends at their iterations
// (resumed steps counted), after `steps`, or when after_step throws (no end save then).
// Blocks: the caller runs it on a thread of its own.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "diffusion/openai_classifier_step.h"
#include "diffusion/train_loop_common.h"

namespace gd {

// steps: 0 runs until their iterations.
struct ClassifierLoopOptions : LoopHooks, LoopSettings {
  int64_t eval_interval = 5;
};

// images float [N, C, H, W] in [-1, 1] with labels int64 [N]; val_images / val_labels the same
// for their val_data_dir, or undefined (no val pass).
OpenaiLoopResult run_classifier_loop(OpenaiClassifierStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                     const at::Tensor& val_images, const at::Tensor& val_labels, const ClassifierLoopOptions& options);

}  // namespace gd
