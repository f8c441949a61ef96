// The Unet of denoising-diffusion-pytorch (module `guided_diffusion`), built as a
// TorchScript module with the reference's parameter names, shapes and computation
// (docs/reference-unet.md), so that a state_dict saved in Python loads unchanged and the
// same weights give the same output.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <vector>

#include "models/jit_builder.h"

namespace gd {

/// Options of the reference Unet (Python names in comments).
struct UnetOptions {
  /// `dim` (required): base width. Even and >= 4 unless the time embedding is learned.
  int64_t dim = 0;
  /// `init_dim`: width after the first conv; 0 means dim.
  int64_t init_dim = 0;
  /// `out_dim`: output channels; 0 means channels, or 2 * channels with learned_variance.
  int64_t out_dim = 0;
  /// `dim_mults`: width of each resolution level, as multiples of dim.
  std::vector<int64_t> dim_mults{1, 2, 4, 8};
  /// `channels`: image channels.
  int64_t channels = 3;
  /// `self_condition`: the input gets the self-conditioning image (zeros when absent)
  /// concatenated before x, doubling the input channels.
  bool self_condition = false;
  /// `learned_variance`: only changes the default out_dim (2 * channels).
  bool learned_variance = false;
  /// `learned_sinusoidal_cond`: learned Fourier features instead of the fixed embedding.
  bool learned_sinusoidal_cond = false;
  /// `random_fourier_features`: random (frozen) Fourier features instead.
  bool random_fourier_features = false;
  /// `learned_sinusoidal_dim`: size of those features (even).
  int64_t learned_sinusoidal_dim = 16;
  /// `num_classes` > 0: the class-conditional Unet of the reference's classifier-free
  /// guidance module (classifier_free_guidance.Unet) instead: `classes_emb` Embedding(K, dim),
  /// `null_classes_emb` (dim,), `classes_mlp`, every ResnetBlock's mlp over [time, class]
  /// embeddings, strided 4x4 convolutions to downsample and a final ResnetBlock to init_dim.
  /// Its forward takes labels y in [0, K], K standing for "no class" (their dropped class).
  int64_t num_classes = 0;
};

/// Builds the Unet with freshly initialized weights (PyTorch's default init, drawn from
/// the global generator). Its method:
///   forward(self, x: Tensor, time: Tensor, x_self_cond: Optional[Tensor]=None) -> Tensor
/// with x (B, channels, H, W), H and W divisible by 2^(len(dim_mults)-1), time (B,);
/// returns (B, out_dim, H, W). Attributes: gd_kind = "unet", dim, init_dim, out_dim,
/// dim_mults, channels, self_condition, learned_variance, learned_sinusoidal_cond,
/// random_fourier_features, random_or_learned_sinusoidal_cond, learned_sinusoidal_dim.
/// With num_classes: forward(self, x, time, y: Tensor) instead, and the attributes
/// num_classes and null_class (= num_classes, the label that selects null_classes_emb).
/// Throws c10::Error naming the bad option.
torch::jit::Module make_unet(const UnetOptions& options);

// ---- Building blocks of the reference Unet, shared with the classifier ----------------

/// Block(i, o): `proj` Conv(i, o, 3), `norm` RMSNorm(o); optional x * (scale + 1) + shift;
/// SiLU; then dropout(p) in training when p > 0.
/// forward(x, scale: Optional[Tensor]=None, shift: Optional[Tensor]=None).
torch::jit::Module make_block(const JitBuilder& b, int64_t in, int64_t out,
                              RmsScale norm_scale = RmsScale::Width, double dropout = 0.0);

/// ResnetBlock(i, o, time_emb_dim): `mlp` = Sequential(SiLU, Linear(time_emb_dim, 2o)),
/// `block1` (with the dropout), `block2`, `res_conv` Conv(i, o, 1) when i != o.
/// forward(x, time_emb) -> block2(block1(x, scale, shift)) + res_conv(x).
/// classes_emb_dim > 0: the mlp's Linear takes time_emb_dim + classes_emb_dim features and
/// forward(x, time_emb, class_emb) feeds it cat([time_emb, class_emb], -1).
torch::jit::Module make_resnet_block(const JitBuilder& b, int64_t in, int64_t out,
                                     int64_t time_emb_dim,
                                     RmsScale norm_scale = RmsScale::Width,
                                     double dropout = 0.0, int64_t classes_emb_dim = 0);

/// LinearAttention(d): `to_qkv` Conv(d, 3*heads*dim_head, 1, no bias),
/// `to_out` = Sequential(Conv(heads*dim_head, d, 1), RMSNorm(d)). forward(x).
torch::jit::Module make_linear_attention(const JitBuilder& b, int64_t dim, int64_t heads = 4,
                                         int64_t dim_head = 32,
                                         RmsScale norm_scale = RmsScale::Width);

/// Attention(d), full softmax attention over positions: `to_qkv` Conv(d, 3*heads*dim_head,
/// 1, no bias), `to_out` Conv(heads*dim_head, d, 1). forward(x).
torch::jit::Module make_attention(const JitBuilder& b, int64_t dim, int64_t heads = 4,
                                  int64_t dim_head = 32);

/// PreNorm: `norm` RMSNorm(dim), `fn`; forward(x) = fn(norm(x)).
torch::jit::Module make_pre_norm(const JitBuilder& b, int64_t dim, const torch::jit::Module& fn,
                                 RmsScale norm_scale = RmsScale::Width);

/// Residual: `fn`; forward(x) = fn(x) + x.
torch::jit::Module make_residual(const JitBuilder& b, const torch::jit::Module& fn);

/// Downsample(i, o): Sequential(pixel-unshuffle by 2, Conv(4i, o, 1)); the conv is `1`.
torch::jit::Module make_downsample(const JitBuilder& b, int64_t in, int64_t out);

/// Upsample(i, o): Sequential(nearest x2, Conv(i, o, 3)); the conv is `1`.
torch::jit::Module make_upsample(const JitBuilder& b, int64_t in, int64_t out);

/// time_mlp: Sequential(pos_emb, Linear(fourier_dim, time_dim), GELU, Linear(time_dim,
/// time_dim)), fourier_dim = dim for the fixed sinusoidal embedding, or learned_dim + 1
/// when learned or random. forward(t: (B,)) -> (B, time_dim).
torch::jit::Module make_time_mlp(const JitBuilder& b, int64_t dim, int64_t time_dim,
                                 bool learned = false, bool random = false,
                                 int64_t learned_dim = 16);

}  // namespace gd
