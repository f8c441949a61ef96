// Reads the state dict of a torch.save() file without Python and without running anything in
// it: the zip format (PyTorch >= 1.6) and the old pickle format. Storages are read straight into
// tensors; tensors that share a storage (views, offsets, strides) share it here too.
#pragma once

#include <ATen/ATen.h>

#include "checkpoints/pickle_reader.h"

#include <functional>
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

// Calls `visit` with whatever object a torch.save file (zip format) holds, e.g. an optimizer's
// state_dict ({'state': {0: {...}}, 'param_groups': [...]}), read with the same guards; the values
// live only during the call. Throws CheckpointRefused as ReadTorchSave.
void VisitTorchSave(const std::string& path, const std::function<void(const Value&)>& visit);

}  // namespace gd::checkpoints
