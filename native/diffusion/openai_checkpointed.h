// Training openai's UNetModel and EncoderUNetModel with use_checkpoint (their unet.py runs
// each ResBlock's and AttentionBlock's _forward under nn.checkpoint): the same computation as
// their forward(), walked in C++ so each of those blocks can go through checkpointed_forward
// (block_checkpoint.h); the embedding, the plain convs and resamplers, the skips and the head run
// with autograd as usual. forward() itself stays the TorchScript one: sampling, saving and
// Python see no difference.
#pragma once

#include <torch/script.h>

#include <vector>

namespace gd::openai {

/// Whether `model` is an openai net built with use_checkpoint (its `use_checkpoint`
/// attribute), in training mode, called with grad mode on: then forward_net walks it.
bool checkpoints_now(const torch::jit::Module& model);

/// model.forward(inputs), walked block by block with checkpointing when checkpoints_now(model),
/// else the module's own forward. inputs as forward's: (x, timesteps[, y]) for the UNetModel,
/// (x, timesteps) for the EncoderUNetModel.
c10::IValue forward_net(torch::jit::Module& model, std::vector<c10::IValue> inputs);

}  // namespace gd::openai
