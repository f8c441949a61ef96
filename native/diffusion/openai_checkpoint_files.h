// The pieces of openai/guided-diffusion's checkpoint files that both their TrainLoop's save() and
// classifier_train.py's save_model write (defined in openai_train_checkpoint.cc): the six-digit
// step in the names, a model's state dict with given parameters, AdamW's state_dict.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <string>
#include <vector>

#include "checkpoints/torch_save_writer.h"
#include "diffusion/optim.h"

namespace gd {

// "{n:06d}".
std::string openai_step_name(int64_t n);
// master_params_to_state_dict: model's state dict (named_parameters order, then its buffers)
// with params (in named_parameters order) in place of its parameters.
checkpoints::SaveValue openai_state_dict(const torch::jit::Module& model, const std::vector<at::Tensor>& params);
// torch.optim.AdamW.state_dict() of adam: per parameter index that has taken a step its step
// count and moments; one param_group with hyper (the next step's).
checkpoints::SaveValue adamw_state_dict(const FusedAdam& adam, const AdamHyper& hyper);

}  // namespace gd
