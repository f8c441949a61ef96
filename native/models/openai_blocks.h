// Building blocks of openai/guided-diffusion's networks (guided_diffusion/unet.py, nn.py),
// built as TorchScript modules with their parameter names, shared by the UNetModel
// (openai_unet.h) and the EncoderUNetModel (openai_encoder.h).
//
// Numerics follow theirs op for op: GroupNorm runs in float32 whatever the activations'
// dtype (their GroupNorm32), attention softmaxes in float32, and with use_fp16 only the
// convolutions of the torso (input/middle/output blocks) hold float16 weights, as their
// convert_to_fp16 leaves them; the time embedding, norms and linear layers stay float32.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/jit_builder.h"

namespace gd::openai {

/// The constructor arguments shared by UNetModel and EncoderUNetModel (unet.py names).
/// Only 2-D images; conv_resample is always on, as in every released checkpoint.
struct NetOptions {
  /// `image_size`: side of the images; the encoder's attention pool is sized from it.
  int64_t image_size = 0;
  /// `in_channels`, `model_channels`, `out_channels` (all required, positive).
  int64_t in_channels = 3;
  int64_t model_channels = 0;
  int64_t out_channels = 0;
  /// `num_res_blocks`: residual blocks per level (required, positive).
  int64_t num_res_blocks = 0;
  /// `attention_resolutions`: downsample rates (1, 2, 4, ...) at which blocks get
  /// self-attention; script_util turns "32,16,8" into image_size // res.
  std::vector<int64_t> attention_resolutions;
  /// `dropout` in the residual blocks while training.
  double dropout = 0.0;
  /// `channel_mult`: width of each level as a multiple of model_channels, truncated to
  /// an integer (0.5 is allowed, as in their 512x512 models).
  std::vector<double> channel_mult{1, 2, 4, 8};
  /// `use_fp16`: the torso's convolutions in float16 (their convert_to_fp16).
  bool use_fp16 = false;
  /// `num_heads`, `num_head_channels` (-1: use num_heads), `num_heads_upsample`
  /// (-1: num_heads; only used when num_head_channels is -1).
  int64_t num_heads = 1;
  int64_t num_head_channels = -1;
  int64_t num_heads_upsample = -1;
  bool use_scale_shift_norm = false;
  /// `resblock_updown`: residual blocks that resample instead of plain (strided) convs.
  bool resblock_updown = false;
  /// `use_new_attention_order`: split q, k, v before the heads (their QKVAttention)
  /// instead of after (QKVAttentionLegacy).
  bool use_new_attention_order = false;
  /// `use_checkpoint`: training recomputes each ResBlock and AttentionBlock in backward
  /// instead of keeping its activations (gradient checkpointing). Recorded as the net's
  /// `use_checkpoint` attribute; forward() is unchanged, the training walk of
  /// diffusion/openai_checkpointed.h reads it.
  bool use_checkpoint = false;
};

/// Checks the shared options; `net` ("UNetModel", "EncoderUNetModel") starts the message,
/// which names the option. Also checks that every norm's width is divisible by 32, and the heads
/// where there is attention (has_output_blocks: UNetModel's decoder, with num_heads_upsample).
void check_net_options(const NetOptions& o, const char* net, bool has_output_blocks);

/// Width of each level: int(mult * model_channels).
std::vector<int64_t> level_widths(const NetOptions& o);

/// Their normalization(channels), GroupNorm32: 32 groups, eps 1e-5, `weight` (ones) and
/// `bias` (zeros); computed in float32, returned in the input's dtype.
torch::jit::Module make_group_norm32(const JitBuilder& b, int64_t channels);

/// nn.Conv1d / nn.Conv2d (dims 1 or 2) with `weight` and `bias`, PyTorch's default init.
torch::jit::Module make_conv(const JitBuilder& b, int64_t dims, int64_t in, int64_t out,
                             int64_t kernel, int64_t stride = 1, int64_t padding = 0);

/// nn.Linear with PyTorch's default init (the builder's).
torch::jit::Module make_linear(const JitBuilder& b, int64_t in, int64_t out);

/// nn.Embedding(num, dim): `weight` (num, dim), N(0, 1). forward(indices).
torch::jit::Module make_embedding(const JitBuilder& b, int64_t num, int64_t dim);

/// nn.Dropout(p): forward(x) drops in training only.
torch::jit::Module make_dropout(const JitBuilder& b, double p);

/// ResBlock(channels, emb_channels, dropout, out_channels, use_scale_shift_norm, up, down):
/// `in_layers` (norm, SiLU, conv3), `emb_layers` (SiLU, Linear), `out_layers` (norm, SiLU,
/// Dropout, conv3 zeroed), `skip_connection` conv1 when the width changes.
/// forward(x, emb).
torch::jit::Module make_res_block(const JitBuilder& b, int64_t channels, int64_t emb_channels,
                                  double dropout, int64_t out_channels,
                                  bool use_scale_shift_norm, bool up = false,
                                  bool down = false);

/// QKV attention over (N, 3 * heads * ch, T) -> (N, heads * ch, T), ch the width of a
/// head; legacy splits heads before q/k/v (QKVAttentionLegacy), otherwise after
/// (QKVAttention). No parameters.
torch::jit::Module make_qkv_attention(const JitBuilder& b, int64_t heads, int64_t ch,
                                      bool legacy);

/// AttentionBlock(channels, num_heads, num_head_channels, use_new_attention_order):
/// `norm`, `qkv` Conv1d(c, 3c, 1), `attention`, `proj_out` Conv1d(c, c, 1) zeroed.
/// forward(x) = x + attention over the positions.
torch::jit::Module make_attention_block(const JitBuilder& b, int64_t channels,
                                        int64_t num_heads, int64_t num_head_channels,
                                        bool use_new_attention_order);

/// Downsample(ch, use_conv=True): `op` Conv2d(ch, out, 3, stride 2, padding 1).
torch::jit::Module make_downsample(const JitBuilder& b, int64_t channels, int64_t out);
/// Upsample(ch, use_conv=True): nearest x2, then `conv` Conv2d(ch, out, 3, padding 1).
torch::jit::Module make_upsample(const JitBuilder& b, int64_t channels, int64_t out);

/// TimestepEmbedSequential: children "0", "1", ...; forward(x, emb) passes emb to the
/// children flagged in `takes_emb` (the residual blocks).
torch::jit::Module make_timestep_sequential(const JitBuilder& b,
                                            const std::vector<torch::jit::Module>& children,
                                            const std::vector<bool>& takes_emb);

/// Source of a method `timestep_embedding(self, timesteps: Tensor) -> Tensor`: their
/// sinusoidal embedding (cos then sin, max_period 10000) of width `dim`, in float32.
std::string timestep_embedding_method(int64_t dim);

/// The torso shared by both nets: `input_blocks` and `middle_block` (the caller registers
/// them after time_embed and label_emb, their order).
struct Torso {
  torch::jit::Module input_blocks;
  torch::jit::Module middle_block;
  /// Width after each input block (the skips the UNet's output blocks take).
  std::vector<int64_t> input_block_chans;
  /// Width and downsample rate after the input blocks.
  int64_t ch = 0;
  int64_t ds = 1;
};

/// `time_embed`: Linear(model_channels, 4 model_channels), SiLU, Linear(4 mc, 4 mc).
torch::jit::Module make_time_embed(const JitBuilder& b, const NetOptions& o);
/// Builds input_blocks and middle_block for options already checked.
Torso make_torso(const JitBuilder& b, const NetOptions& o);

/// Zeroes every parameter under `m` (their zero_module: output convs start at zero, so a
/// fresh block is the identity).
void zero_module(torch::jit::Module& m);

/// Casts the weights and biases of every convolution under `m` to float16 (their
/// convert_module_to_f16 applied to a subtree).
void convert_convs_to_fp16(torch::jit::Module& m);

/// TorchScript lines (4-space indented) of the checks both forwards start with: x is
/// (N, in_channels, H, W), H and W divisible by 2^(levels - 1), timesteps has shape (N,).
std::string input_checks_source(const char* net, int64_t in_channels, size_t levels);

/// Registers the attributes both nets carry (their constructor arguments): gd_kind etc.
void add_net_attributes(torch::jit::Module& m, const NetOptions& o, const std::string& kind);

}  // namespace gd::openai
