// Noise-aware classifiers for classifier guidance, built as TorchScript modules.
// Both have forward(self, x: Tensor, t: Tensor) -> Tensor: x (B, channels, H, W) noisy
// images, t (B,) timesteps (int64 or float); returns logits (B, num_classes).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gd {

/// The seed's linear classifier (test/fixtures/reference-case/classifier.pt):
///   logits = linear_t(t.float()[:, None]) + linear_img(x.flatten(1))
/// Parameters: linear_t.{weight (num_classes, 1), bias}, linear_img.{weight (num_classes,
/// image_size^2 * channels), bias}, so that classifier.pt's state_dict loads unchanged.
struct LinearClassifierOptions {
  /// Side of the square input images (required).
  int64_t image_size = 0;
  /// Image channels.
  int64_t channels = 3;
  /// Number of classes (required).
  int64_t num_classes = 0;
};

/// Attributes: gd_kind = "classifier", gd_arch = "linear", image_size, channels,
/// num_classes. Throws c10::Error naming the bad option.
torch::jit::Module make_linear_classifier(const LinearClassifierOptions& options);

/// A noise-aware classifier in the manner of Dhariwal & Nichol (2021): the encoder half of
/// a Unet, then pooling to logits. Built from the Unet's blocks (ResnetBlock with
/// scale-shift from the time embedding, full attention, pixel-unshuffle downsampling);
/// its RMSNorms scale by sqrt(channels), the usual RMSNorm, not by the width as the
/// reference Unet does.
///
/// Layout (parameter names):
///   init_conv            Conv(channels, dim, 3)
///   time_mlp.{1,3}       sinusoidal(dim) -> Linear(dim, 4 dim) -> GELU -> Linear(4 dim, 4 dim)
///   downs.i              one per dim_mults entry, width dim * dim_mults[i]:
///     blocks.j           num_res_blocks ResnetBlocks (the first changes the width)
///     attns.j            Residual(PreNorm(Attention)) after each block, only at levels
///                        whose feature-map side is in attention_resolutions
///     downsample         pixel-unshuffle + Conv 1x1, all levels but the last
///   mid_block1, mid_attn, mid_block2   at the last width
///   final_norm           RMSNorm, then SiLU
///   pool                 (pool == "attention") attention pooling: `pos_emb`
///                        (side^2 + 1, width), `to_qkv`, `to_out`; the mean token,
///                        prepended to the flattened map, attends to all tokens
///   to_logits            Linear(width, num_classes)
struct ClassifierOptions {
  /// Side of the square input images (required); divisible by 2^(len(dim_mults)-1).
  int64_t image_size = 0;
  /// Image channels.
  int64_t channels = 3;
  /// Number of classes (required).
  int64_t num_classes = 0;
  /// Base width (even, >= 4: it is also the sinusoidal time-embedding size).
  int64_t dim = 32;
  /// Width of each level as multiples of dim; the feature map halves between levels.
  std::vector<int64_t> dim_mults{1, 2, 2};
  /// Residual blocks per level (>= 1).
  int64_t num_res_blocks = 1;
  /// Feature-map sides (image_size, image_size/2, ...) at which blocks get attention.
  std::vector<int64_t> attention_resolutions{16};
  /// "attention" (attention pooling; the input must then be image_size x image_size)
  /// or "avg" (global average pooling; any size divisible by 2^(len(dim_mults)-1)).
  std::string pool = "attention";
  /// Dropout in the residual blocks while training, in [0, 1).
  double dropout = 0.0;
  /// Attention heads and width per head (in the blocks, the middle and the pooling).
  int64_t heads = 4;
  int64_t dim_head = 32;
};

/// Attributes: gd_kind = "classifier", gd_arch = "encoder", image_size, channels,
/// num_classes, dim, dim_mults, num_res_blocks, attention_resolutions, pool_type (the
/// `pool` option; `pool` itself is the attention-pooling module), dropout.
/// Throws c10::Error naming the bad option.
torch::jit::Module make_classifier(const ClassifierOptions& options);

}  // namespace gd
