// Reads the state dict of a torch.save() file without Python and without running anything in
// it: the zip format (PyTorch >= 1.6) and the old pickle format. Storages are read straight into
// tensors; tensors that share a storage (views, offsets, strides) share it here too.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace gd::checkpoints {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// The state dict in a torch.save file: the file itself when it is a dict of tensors, else the
// one entry of its top-level dict that is ({'state_dict': ...}, {'model': ..., 'step': ...}).
// `key` picks an entry when there are several, e.g. a denoising-diffusion-pytorch Trainer
// checkpoint's 'model' or 'ema'; weights named ema_model.* (the EMA wrapper's copy) come back
// without that prefix. Throws CheckpointRefused with a phrase that follows "<path> ".
NamedTensors ReadTorchSave(const std::string& path, const std::string& key = "");

}  // namespace gd::checkpoints
