// Gradient checkpointing of one TorchScript block (openai's use_checkpoint, their nn.checkpoint):
// the block runs without recording autograd, only its inputs are kept, and backward runs it
// again with grad enabled to get the gradients of its inputs and of its parameters. Training
// then holds one block's activations at a time instead of the whole net's.
//
// TorchScript cannot call torch.utils.checkpoint, so this is a C++ autograd Function that a
// C++ walk of a net (openai_checkpointed.h) calls per block.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <vector>

namespace gd {

/// block.forward(inputs), whose backward recomputes it. The block's parameters (all of them,
/// recursively) are inputs of the autograd node, so they receive gradients as if the block had
/// run with autograd. The recomputation draws the same random numbers as the first run (the
/// default generators of the CPU and of the inputs' device are set back to their state before
/// it, as torch.utils.checkpoint's preserve_rng_state) and runs under the same autocast
/// setting. With grad mode off, it is a plain block.forward(inputs).
at::Tensor checkpointed_forward(const torch::jit::Module& block, const std::vector<at::Tensor>& inputs);

}  // namespace gd
