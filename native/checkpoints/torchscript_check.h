// A look at a checkpoint file's zip structure (with our zip reader) and its pickles before
// LibTorch's jit::load parses them, so that what is not a TorchScript archive at all (truncated,
// random bytes, another zip, a torch.save() file) gets a clear message and never reaches
// LibTorch's readers, and no pickle makes LibTorch's unpickler allocate beyond its size.
#pragma once

#include <string>

namespace gd::checkpoints {

// Empty when `path` is a complete zip archive laid out as TorchScript saves one (every entry
// under one folder, with <folder>/data.pkl and <folder>/code/) whose pickles ask for no more
// than their size; else what is wrong, as a phrase that follows
// "<path> is not a TorchScript checkpoint: ".
std::string TorchScriptArchiveProblem(const std::string& path);

}  // namespace gd::checkpoints
