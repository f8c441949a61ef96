// openai/guided-diffusion's UNetModel (guided_diffusion/unet.py), the diffusion model of
// their released checkpoints, built as a TorchScript module with their parameter names
// (`time_embed.0.weight`, `label_emb.weight`, `input_blocks.1.0.in_layers.2.weight`,
// `out.2.weight`, ...), so that their state dicts load unchanged and the same weights
// give their outputs.
#pragma once

#include <torch/script.h>

#include <cstdint>

#include "models/openai_blocks.h"

namespace gd::openai {

/// UNetModel's constructor arguments: the shared ones, and `num_classes` (0: the model is
/// not class-conditional; their None).
struct UNetModelOptions : NetOptions {
  int64_t num_classes = 0;
};

/// Builds the UNetModel with fresh weights (PyTorch's default init; the convs their
/// zero_module zeroes start at zero). Its method:
///   forward(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor]=None) -> Tensor
/// x (N, in_channels, H, W), H and W divisible by 2^(len(channel_mult) - 1), timesteps
/// (N,), y (N,) integer class labels, given if and only if num_classes is set; returns
/// (N, out_channels, H, W) in x's dtype. Attributes: gd_kind = "openai_unet" and the
/// options. Throws c10::Error naming a bad option.
torch::jit::Module make_unet_model(const UNetModelOptions& options);

}  // namespace gd::openai
