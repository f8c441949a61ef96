// openai/guided-diffusion's EncoderUNetModel (guided_diffusion/unet.py), the noise-aware
// classifier of their released checkpoints: the UNetModel's input half and middle block,
// then a pooling head. Built as a TorchScript module with their parameter names
// (`input_blocks.0.0.weight`, `out.2.positional_embedding`, ...), so that their state
// dicts load unchanged and the same weights give their logits.
#pragma once

#include <torch/script.h>

#include <string>

#include "models/openai_blocks.h"

namespace gd::openai {

/// EncoderUNetModel's constructor arguments: the shared ones, and `pool`:
///   "adaptive"   out = (norm, SiLU, global average, Conv2d(ch, out_channels, 1), flatten)
///   "attention"  out = (norm, SiLU, AttentionPool2d): CLIP's attention pooling, which
///                 needs num_head_channels and images of exactly image_size
///   "spatial"    out = (Linear(features, 2048), ReLU, Linear(2048, out_channels)) over the
///                 spatial means of every block's output
///   "spatial_v2" out = (Linear(features, 2048), norm, SiLU, Linear(2048, out_channels))
struct EncoderUNetModelOptions : NetOptions {
  std::string pool = "adaptive";
};

/// Builds the EncoderUNetModel with fresh weights. Its method:
///   forward(self, x: Tensor, timesteps: Tensor) -> Tensor
/// x (N, in_channels, H, W), timesteps (N,); returns logits (N, out_channels) in x's
/// dtype. Attributes: gd_kind = "openai_encoder", pool and the options. Throws c10::Error
/// naming a bad option.
torch::jit::Module make_encoder_unet_model(const EncoderUNetModelOptions& options);

}  // namespace gd::openai
