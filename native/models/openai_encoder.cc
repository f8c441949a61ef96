#include "models/openai_encoder.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "models/openai_size.h"

namespace gd::openai {

namespace tj = torch::jit;

namespace {

constexpr const char* kNet = "EncoderUNetModel";
constexpr int64_t kSpatialWidth = 2048;  // their hidden width of the spatial heads

bool spatial(const std::string& pool) { return pool == "spatial" || pool == "spatial_v2"; }

// AttentionPool2d(spacial_dim, embed_dim, num_heads_channels, output_dim): attention over
// the positions and their mean, read out at the mean's position.
tj::Module make_attention_pool(const JitBuilder& b, int64_t side, int64_t ch,
                               int64_t head_channels, int64_t out) {
  tj::Module m = b.module("AttentionPool2d");
  const int64_t positions = side * side + 1;
  add_parameter(m, "positional_embedding",
                at::randn({ch, positions}, at::kFloat) / std::sqrt(static_cast<double>(ch)));
  m.register_module("qkv_proj", make_conv(b, 1, ch, 3 * ch, 1));
  m.register_module("c_proj", make_conv(b, 1, ch, out, 1));
  m.register_module("attention", make_qkv_attention(b, ch / head_channels, head_channels,
                                                    /*legacy=*/false));
  std::ostringstream s;
  s << "def forward(self, x: Tensor) -> Tensor:\n"
    << "    assert x.size(2) * x.size(3) + 1 == " << positions
    << ", \"EncoderUNetModel: the attention pool needs images of " << side << "x" << side
    << " at its input (image_size), got {}x{}\".format(x.size(2), x.size(3))\n"
    << "    x = x.reshape(x.size(0), x.size(1), -1)\n"
    << "    x = torch.cat([x.mean(-1, True), x], -1)\n"
    << "    x = x + self.positional_embedding[None, :, :].to(x.dtype)\n"
    << "    x = self.qkv_proj.forward(x)\n"
    << "    x = self.attention.forward(x)\n"
    << "    x = self.c_proj.forward(x)\n"
    << "    return x[:, :, 0]\n";
  m.define(s.str());
  return m;
}

tj::Module simple(const JitBuilder& b, const char* kind, const std::string& body) {
  tj::Module m = b.module(kind);
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return " + body + "\n");
  return m;
}

tj::Module make_head(const JitBuilder& b, const EncoderUNetModelOptions& o, const Torso& t) {
  const int64_t ch = t.ch;
  if (o.pool == "adaptive") {
    tj::Module norm = make_group_norm32(b, ch);
    tj::Module act = b.silu();
    tj::Module pool = simple(b, "AdaptiveAvgPool2d", "torch.adaptive_avg_pool2d(x, [1, 1])");
    tj::Module conv = make_conv(b, 2, ch, o.out_channels, 1);
    zero_module(conv);
    tj::Module flat = simple(b, "Flatten", "torch.flatten(x, 1)");
    return b.sequential({norm, act, pool, conv, flat});
  }
  if (o.pool == "attention") {
    tj::Module norm = make_group_norm32(b, ch);
    tj::Module act = b.silu();
    tj::Module pool = make_attention_pool(b, o.image_size / t.ds, ch, o.num_head_channels,
                                          o.out_channels);
    return b.sequential({norm, act, pool});
  }
  int64_t features = ch;  // the middle block's means, after every input block's
  for (int64_t c : t.input_block_chans) features += c;
  tj::Module lin1 = make_linear(b, features, kSpatialWidth);
  if (o.pool == "spatial") {
    tj::Module act = simple(b, "ReLU", "torch.relu(x)");
    tj::Module lin2 = make_linear(b, kSpatialWidth, o.out_channels);
    return b.sequential({lin1, act, lin2});
  }
  tj::Module norm = make_group_norm32(b, kSpatialWidth);
  tj::Module act = b.silu();
  tj::Module lin2 = make_linear(b, kSpatialWidth, o.out_channels);
  return b.sequential({lin1, norm, act, lin2});
}

// The lines of forward() up to the time embedding `emb`, shared with embed().
std::string encoder_embedding_lines(const EncoderUNetModelOptions& o) {
  return input_checks_source(kNet, o.in_channels, o.channel_mult.size()) +
         "    emb = self.time_embed.forward(self.timestep_embedding(timesteps))\n";
}

// embed(x, timesteps): forward's checks and embedding alone, for the checkpointed training
// walk (diffusion/openai_checkpointed.h).
std::string encoder_embed_source(const EncoderUNetModelOptions& o) {
  return "def embed(self, x: Tensor, timesteps: Tensor) -> Tensor:\n" + encoder_embedding_lines(o) +
         "    return emb\n";
}

std::string forward_source(const EncoderUNetModelOptions& o, size_t n_input) {
  const bool sp = spatial(o.pool);
  std::ostringstream s;
  s << "def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:\n"
    << encoder_embedding_lines(o)
    << "    h = x.to(getattr(getattr(self.input_blocks, \"0\"), \"0\").weight.dtype)\n";
  if (sp) s << "    results: List[Tensor] = []\n";
  for (size_t i = 0; i < n_input; ++i) {
    s << "    h = getattr(self.input_blocks, \"" << i << "\").forward(h, emb)\n";
    if (sp) s << "    results.append(h.to(x.dtype).mean([2, 3]))\n";
  }
  s << "    h = self.middle_block.forward(h, emb)\n";
  if (sp) {
    s << "    results.append(h.to(x.dtype).mean([2, 3]))\n"
      << "    return self.out.forward(torch.cat(results, -1))\n";
  } else {
    s << "    return self.out.forward(h.to(x.dtype))\n";
  }
  return s.str();
}

}  // namespace

tj::Module make_encoder_unet_model(const EncoderUNetModelOptions& options) {
  check_net_options(options, kNet, /*has_output_blocks=*/false);
  const EncoderUNetModelOptions& o = options;
  TORCH_CHECK(o.pool == "adaptive" || o.pool == "attention" || spatial(o.pool), kNet,
              ": pool must be 'adaptive', 'attention', 'spatial' or 'spatial_v2', got '", o.pool,
              "'");
  TORCH_CHECK(o.pool != "attention" || o.num_head_channels != -1, kNet,
              ": pool 'attention' needs num_head_channels (their AttentionPool2d sizes its "
              "heads by it)");
  check_fits_in_memory(encoder_parameter_count(o), kNet);

  JitBuilder b;
  tj::Module m = b.module("EncoderUNetModel");
  m.register_module("time_embed", make_time_embed(b, o));
  Torso t = make_torso(b, o);
  TORCH_CHECK(o.pool != "attention" || o.image_size % t.ds == 0, kNet, ": image_size ",
              o.image_size, " must be divisible by ", t.ds, " for the attention pool");
  m.register_module("input_blocks", t.input_blocks);
  m.register_module("middle_block", t.middle_block);
  m.register_module("out", make_head(b, o, t));

  if (o.use_fp16) {
    // Their convert_to_fp16 leaves the head in float32.
    for (const char* part : {"input_blocks", "middle_block"}) {
      tj::Module sub = m.attr(part).toModule();
      convert_convs_to_fp16(sub);
    }
  }
  add_net_attributes(m, o, "openai_encoder");
  add_string_attribute(m, "pool", o.pool);
  m.define(timestep_embedding_method(o.model_channels));
  m.define(encoder_embed_source(o));
  m.define(forward_source(o, t.input_block_chans.size()));
  return m;
}

}  // namespace gd::openai
