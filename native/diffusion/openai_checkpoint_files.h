// The pieces of openai/guided-diffusion's checkpoint files that both their TrainLoop's save() and
// classifier_train.py's save_model write, and both resume_checkpoints read (defined in
// openai_train_checkpoint.cc): the six-digit step in the names, a model's state dict with given
// parameters, AdamW's state_dict.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <string>
#include <vector>

#include "checkpoints/torch_save_writer.h"
#include "diffusion/mixed_precision.h"
#include "diffusion/optim.h"

namespace gd {

// "{n:06d}".
std::string openai_step_name(int64_t n);
// master_params_to_state_dict: model's state dict (named_parameters order, then its buffers)
// with params (in named_parameters order) in place of its parameters.
checkpoints::SaveValue openai_state_dict(const torch::jit::Module& model, const std::vector<at::Tensor>& params);
// torch.optim.AdamW.state_dict() of adam: per parameter index that has taken a step its step
// count and moments; one param_group with hyper (the next step's).
// flat (use_fp16): one entry per group of their flat masters, the moments of the group's
// parameters concatenated in its shape ((-1), then (1, -1)), as their fp16 TrainLoop saves.
checkpoints::SaveValue adamw_state_dict(const FusedAdam& adam, const AdamHyper& hyper, const FlatGroups* flat = nullptr);

// parse_resume_step_from_filename: the integer after the last "model" up to the next "."; 0
// when there is none.
int64_t parse_resume_step(const std::string& path);
// load_state_dict(strict) of a torch.save state dict file; errors name the file.
void load_model_file(torch::jit::Module model, const std::string& file);
// A state dict file's tensors of the given parameter names, copied into targets (same order;
// an EMA, or use_fp16's float32 masters); checked whole before any is changed.
void load_named_params(const std::string& file, const std::vector<std::string>& names, const std::vector<at::Tensor>& targets);
// AdamW.load_state_dict of a torch.save file into adam (names: its parameters' names, for the
// messages); returns the file's param_group. Checked whole before adam is changed.
// flat (use_fp16): the file holds their flat masters' state (as adamw_state_dict writes it).
AdamHyper load_adamw_state(const std::string& file, FusedAdam& adam, const std::vector<std::string>& names,
                           const FlatGroups* flat = nullptr);

}  // namespace gd
