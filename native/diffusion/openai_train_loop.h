// Their TrainLoop.run_loop over images in memory: batches drawn as their load_data gives them
// (shuffled each pass, the last partial batch dropped, each image flipped left-right with
// probability 1/2), one OpenaiTrainStep per batch, their logger dumped every log_interval steps
// and their save() every save_interval steps and at the end, lr_anneal_steps ending the run.
// Blocks: the caller runs it on a thread of its own.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "diffusion/openai_train_step.h"
#include "diffusion/train_loop_common.h"

namespace gd {

// steps: their loop has no such limit and runs until lr_anneal_steps, or for ever.
struct OpenaiLoopOptions : LoopHooks, LoopSettings {};

// images: float [N, C, H, W] in [-1, 1]; labels: int64 [N] or undefined (unconditional). Both
// undefined when options.next_batch gives the batches.
OpenaiLoopResult run_openai_loop(OpenaiTrainStep& trainer, const at::Tensor& images, const at::Tensor& labels,
                                 const OpenaiLoopOptions& options);

}  // namespace gd
