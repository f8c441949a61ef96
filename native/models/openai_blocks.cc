#include "models/openai_blocks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace gd::openai {

namespace tj = torch::jit;

namespace {

// Attention over this many tokens or more runs the fused kernel (make_qkv_attention).
constexpr int64_t kFlashAttentionLength = 512;

std::string str(int64_t v) { return std::to_string(v); }

int64_t heads_for(int64_t channels, int64_t num_heads, int64_t num_head_channels) {
  return num_head_channels == -1 ? num_heads : channels / num_head_channels;
}

}  // namespace

std::vector<int64_t> level_widths(const NetOptions& o) {
  std::vector<int64_t> widths;
  // int(mult * model_channels) in Python truncates toward zero.
  for (double mult : o.channel_mult) {
    widths.push_back(static_cast<int64_t>(mult * static_cast<double>(o.model_channels)));
  }
  return widths;
}

void check_net_options(const NetOptions& o, const char* net, bool has_output_blocks) {
  TORCH_CHECK(o.image_size > 0, net, ": image_size must be a positive integer, got ", o.image_size);
  TORCH_CHECK(o.in_channels > 0, net, ": in_channels must be a positive integer, got ",
              o.in_channels);
  TORCH_CHECK(o.model_channels > 0, net, ": model_channels must be a positive integer, got ",
              o.model_channels);
  TORCH_CHECK(o.out_channels > 0, net, ": out_channels must be a positive integer, got ",
              o.out_channels);
  TORCH_CHECK(o.num_res_blocks > 0, net, ": num_res_blocks must be a positive integer, got ",
              o.num_res_blocks);
  TORCH_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, net, ": dropout must be in [0, 1), got ",
              o.dropout);
  TORCH_CHECK(!o.channel_mult.empty(), net, ": channel_mult must not be empty");
  for (int64_t r : o.attention_resolutions) {
    TORCH_CHECK(r >= 0, net, ": attention_resolutions must hold downsample rates >= 0, got ", r);
  }
  TORCH_CHECK(o.num_heads > 0, net, ": num_heads must be a positive integer, got ", o.num_heads);
  TORCH_CHECK(o.num_head_channels == -1 || o.num_head_channels > 0, net,
              ": num_head_channels must be a positive integer or -1, got ", o.num_head_channels);
  TORCH_CHECK(o.num_heads_upsample == -1 || o.num_heads_upsample > 0, net,
              ": num_heads_upsample must be a positive integer or -1, got ", o.num_heads_upsample);
  const std::vector<int64_t> widths = level_widths(o);
  for (size_t i = 0; i < widths.size(); ++i) {
    TORCH_CHECK(o.channel_mult[i] > 0 && widths[i] > 0 && widths[i] % 32 == 0, net,
                ": channel_mult[", i, "] * model_channels = ", widths[i],
                " must be a positive multiple of 32 (their GroupNorm has 32 groups)");
  }
  // Heads split a width only where there is attention: the levels whose downsample rate is in
  // attention_resolutions and the middle block (the deepest width). unet.py's AttentionBlock
  // asserts that num_head_channels divides its width; a num_heads that does not divide it
  // builds there and fails at the first forward, so it is refused here, earlier.
  const int64_t up_heads = o.num_heads_upsample == -1 ? o.num_heads : o.num_heads_upsample;
  auto check_heads = [&](int64_t w, int64_t heads, const char* heads_name) {
    if (o.num_head_channels != -1) {
      TORCH_CHECK(w % o.num_head_channels == 0, net, ": attention at a width of ", w,
                  " channels, which is not divisible by num_head_channels ", o.num_head_channels);
    } else {
      TORCH_CHECK(w % heads == 0, net, ": attention at a width of ", w,
                  " channels, which is not divisible by ", heads_name, " ", heads);
    }
  };
  int64_t ds = 1;
  for (size_t level = 0; level < widths.size(); ++level) {
    const auto& attn = o.attention_resolutions;
    if (std::find(attn.begin(), attn.end(), ds) != attn.end()) {
      check_heads(widths[level], o.num_heads, "num_heads");
      if (has_output_blocks) check_heads(widths[level], up_heads, "num_heads_upsample");
    }
    if (level + 1 < widths.size()) ds *= 2;
  }
  check_heads(widths.back(), o.num_heads, "num_heads");
}

tj::Module make_group_norm32(const JitBuilder& b, int64_t channels) {
  TORCH_CHECK(channels % 32 == 0, "GroupNorm32: channels must be a multiple of 32, got ", channels);
  tj::Module m = b.module("GroupNorm32");
  add_parameter(m, "weight", at::ones({channels}, at::kFloat));
  add_parameter(m, "bias", at::zeros({channels}, at::kFloat));
  // .float() is a no-op on float32 tensors; it keeps the norm in float32 when the
  // activations (use_fp16) or, after a module-wide .to(), the parameters are not.
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    y = torch.group_norm(x.float(), 32, self.weight.float(), self.bias.float(), 1e-05)
    return y.to(x.dtype)
)TS");
  add_int_attribute(m, "num_channels", channels);
  return m;
}

tj::Module make_conv(const JitBuilder& b, int64_t dims, int64_t in, int64_t out, int64_t kernel,
                     int64_t stride, int64_t padding) {
  TORCH_CHECK(dims == 1 || dims == 2, "conv: dims must be 1 or 2, got ", dims);
  TORCH_CHECK(in > 0 && out > 0 && kernel > 0, "conv: channels and kernel must be positive");
  tj::Module m = b.module(dims == 1 ? "Conv1d" : "Conv2d");
  const int64_t fan_in = in * (dims == 1 ? kernel : kernel * kernel);
  std::vector<int64_t> shape{out, in, kernel};
  if (dims == 2) shape.push_back(kernel);
  add_parameter(m, "weight", kaiming_uniform(shape, fan_in));
  add_parameter(m, "bias", fan_in_uniform({out}, fan_in));
  const std::string s = str(stride), p = str(padding);
  m.define(dims == 1
               ? fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.conv1d(x, self.weight, self.bias, [$s], [$p], [1], 1)
)TS",
                             {{"s", s}, {"p", p}})
               : fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.conv2d(x, self.weight, self.bias, [$s, $s], [$p, $p], [1, 1], 1)
)TS",
                             {{"s", s}, {"p", p}}));
  add_int_attribute(m, "in_channels", in);
  add_int_attribute(m, "out_channels", out);
  return m;
}

tj::Module make_linear(const JitBuilder& b, int64_t in, int64_t out) { return b.linear(in, out); }

tj::Module make_embedding(const JitBuilder& b, int64_t num, int64_t dim) {
  tj::Module m = b.module("Embedding");
  add_parameter(m, "weight", at::randn({num, dim}, at::kFloat));
  m.define(R"TS(
def forward(self, indices: Tensor) -> Tensor:
    return torch.embedding(self.weight, indices)
)TS");
  add_int_attribute(m, "num_embeddings", num);
  return m;
}

tj::Module make_dropout(const JitBuilder& b, double p) {
  tj::Module m = b.module("Dropout");
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.dropout(x, $p, self.training)
)TS",
                       {{"p", script_float(p)}}));
  return m;
}

tj::Module make_res_block(const JitBuilder& b, int64_t channels, int64_t emb_channels,
                          double dropout, int64_t out_channels, bool use_scale_shift_norm,
                          bool up, bool down) {
  TORCH_CHECK(!(up && down), "ResBlock: up and down are exclusive");
  tj::Module m = b.module("ResBlock");
  {
    tj::Module norm = make_group_norm32(b, channels);
    tj::Module act = b.silu();
    tj::Module conv = make_conv(b, 2, channels, out_channels, 3, 1, 1);
    m.register_module("in_layers", b.sequential({norm, act, conv}));
  }
  {
    tj::Module act = b.silu();
    tj::Module lin = make_linear(b, emb_channels, use_scale_shift_norm ? 2 * out_channels
                                                                      : out_channels);
    m.register_module("emb_layers", b.sequential({act, lin}));
  }
  {
    tj::Module norm = make_group_norm32(b, out_channels);
    tj::Module act = b.silu();
    tj::Module drop = make_dropout(b, dropout);
    tj::Module conv = make_conv(b, 2, out_channels, out_channels, 3, 1, 1);
    zero_module(conv);  // their zero_module: a fresh block starts as the identity
    m.register_module("out_layers", b.sequential({norm, act, drop, conv}));
  }
  const bool skip_conv = out_channels != channels;
  if (skip_conv) m.register_module("skip_connection", make_conv(b, 2, channels, out_channels, 1));

  // Resampling without a conv (their Upsample/Downsample with use_conv=False), applied to
  // the normalized h before in_layers' conv and to x for the skip.
  const std::string resample =
      up ? "torch.upsample_nearest2d($v, None, [2.0, 2.0])"
         : "torch.avg_pool2d($v, [2, 2], [2, 2], [0, 0], False, True, None)";
  std::ostringstream s;
  s << "def forward(self, x: Tensor, emb: Tensor) -> Tensor:\n";
  if (up || down) {
    s << "    h = getattr(self.in_layers, \"1\").forward(getattr(self.in_layers, \"0\").forward(x))\n"
      << "    h = " << fill_source(resample, {{"v", "h"}}) << "\n"
      << "    x = " << fill_source(resample, {{"v", "x"}}) << "\n"
      << "    h = getattr(self.in_layers, \"2\").forward(h)\n";
  } else {
    s << "    h = self.in_layers.forward(x)\n";
  }
  s << "    emb_out = self.emb_layers.forward(emb).to(h.dtype)[:, :, None, None]\n";
  if (use_scale_shift_norm) {
    s << "    scale, shift = torch.chunk(emb_out, 2, 1)\n"
      << "    h = getattr(self.out_layers, \"0\").forward(h) * (1 + scale) + shift\n"
      << "    h = getattr(self.out_layers, \"1\").forward(h)\n"
      << "    h = getattr(self.out_layers, \"2\").forward(h)\n"
      << "    h = getattr(self.out_layers, \"3\").forward(h)\n";
  } else {
    s << "    h = self.out_layers.forward(h + emb_out)\n";
  }
  s << "    return " << (skip_conv ? "self.skip_connection.forward(x)" : "x") << " + h\n";
  m.define(s.str());
  add_int_attribute(m, "channels", channels);
  add_int_attribute(m, "out_channels", out_channels);
  return m;
}

tj::Module make_qkv_attention(const JitBuilder& b, int64_t heads, int64_t ch, bool legacy) {
  TORCH_CHECK(heads > 0 && ch > 0, "QKVAttention: heads and channels must be positive");
  tj::Module m = b.module(legacy ? "QKVAttentionLegacy" : "QKVAttention");
  // q and k are each scaled by ch^-1/4 before the product (steadier in float16 than
  // scaling the product); the softmax runs in float32.
  const char* split = legacy ? R"TS(
    q, k, v = qkv.reshape(bs * $heads, ch * 3, length).split(ch, 1)
    q = q * scale
    k = k * scale
)TS"
                             : R"TS(
    q, k, v = qkv.chunk(3, 1)
    q = (q * scale).view(bs * $heads, ch, length)
    k = (k * scale).view(bs * $heads, ch, length)
    v = v.reshape(bs * $heads, ch, length)
)TS";
  // From `flash_length` tokens on, the length x length weights of the einsum no longer fit in
  // the caches and its bmm and softmax run at memory speed (a 32x32 level of the 64x64 net:
  // 100 MB of weights per block); the fused kernel of scaled_dot_product_attention (CPU: flash
  // attention) works in tiles and is 5-9x faster there, forward and backward, and slower below
  // (bench/OPENAI_NETS.md). It needs each head's q, k, v as contiguous [length, ch] rows; its
  // softmax accumulates in float32 as theirs; it scales the product by ch^-1/2 at once.
  const char* heads_view = legacy ? "qkv.view(bs, $heads, 3, ch, length).transpose(3, 4).contiguous().unbind(2)"
                                  : "qkv.view(bs, 3, $heads, ch, length).transpose(3, 4).contiguous().unbind(1)";
  m.define(fill_source(std::string(R"TS(
def forward(self, qkv: Tensor) -> Tensor:
    bs = qkv.size(0)
    width = qkv.size(1)
    length = qkv.size(2)
    assert width == 3 * $heads * $ch, "QKVAttention: expected {} channels, got {}".format(3 * $heads * $ch, width)
    ch = $ch
    scale = $scale
    if length >= $flash_length:
        qkv_heads = )TS") + heads_view + R"TS(
        a = torch.scaled_dot_product_attention(qkv_heads[0], qkv_heads[1], qkv_heads[2])
        return a.transpose(2, 3).reshape(bs, -1, length)
)TS" + split + R"TS(
    weight = torch.einsum("bct,bcs->bts", [q, k])
    weight = torch.softmax(weight.float(), -1).to(weight.dtype)
    a = torch.einsum("bts,bcs->bct", [weight, v])
    return a.reshape(bs, -1, length)
)TS",
                       {{"heads", str(heads)},
                        {"ch", str(ch)},
                        {"scale", script_float(1.0 / std::sqrt(std::sqrt(static_cast<double>(ch))))},
                        {"flash_length", std::to_string(kFlashAttentionLength)}}));
  add_int_attribute(m, "n_heads", heads);
  return m;
}

tj::Module make_attention_block(const JitBuilder& b, int64_t channels, int64_t num_heads,
                                int64_t num_head_channels, bool use_new_attention_order) {
  TORCH_CHECK(num_head_channels == -1 || channels % num_head_channels == 0,
              "AttentionBlock: channels ", channels, " not divisible by num_head_channels ",
              num_head_channels);
  const int64_t heads = heads_for(channels, num_heads, num_head_channels);
  tj::Module m = b.module("AttentionBlock");
  m.register_module("norm", make_group_norm32(b, channels));
  m.register_module("qkv", make_conv(b, 1, channels, channels * 3, 1));
  m.register_module("attention", make_qkv_attention(b, heads, channels / heads,
                                                        !use_new_attention_order));
  tj::Module proj = make_conv(b, 1, channels, channels, 1);
  zero_module(proj);
  m.register_module("proj_out", proj);
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    b = x.size(0)
    c = x.size(1)
    hh = x.size(2)
    ww = x.size(3)
    x = x.reshape(b, c, -1)
    qkv = self.qkv.forward(self.norm.forward(x))
    h = self.proj_out.forward(self.attention.forward(qkv))
    return (x + h).reshape(b, c, hh, ww)
)TS");
  add_int_attribute(m, "num_heads", heads);
  return m;
}

tj::Module make_downsample(const JitBuilder& b, int64_t channels, int64_t out) {
  tj::Module m = b.module("Downsample");
  m.register_module("op", make_conv(b, 2, channels, out, 3, 2, 1));
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return self.op.forward(x)
)TS");
  return m;
}

tj::Module make_upsample(const JitBuilder& b, int64_t channels, int64_t out) {
  tj::Module m = b.module("Upsample");
  m.register_module("conv", make_conv(b, 2, channels, out, 3, 1, 1));
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return self.conv.forward(torch.upsample_nearest2d(x, None, [2.0, 2.0]))
)TS");
  return m;
}

tj::Module make_timestep_sequential(const JitBuilder& b, const std::vector<tj::Module>& children,
                                    const std::vector<bool>& takes_emb) {
  TORCH_CHECK(!children.empty() && children.size() == takes_emb.size(),
              "TimestepEmbedSequential: bad children");
  tj::Module m = b.module("TimestepEmbedSequential");
  register_numbered(m, children);
  std::ostringstream s;
  s << "def forward(self, x: Tensor, emb: Tensor) -> Tensor:\n";
  for (size_t i = 0; i < children.size(); ++i) {
    s << "    x = getattr(self, \"" << i << "\").forward(x" << (takes_emb[i] ? ", emb" : "")
      << ")\n";
  }
  s << "    return x\n";
  m.define(s.str());
  return m;
}

std::string timestep_embedding_method(int64_t dim) {
  TORCH_CHECK(dim > 0, "timestep_embedding: dim must be positive, got ", dim);
  const int64_t half = dim / 2;
  // dtype 6 is float32: a module's define() resolves `torch` to the ops only, not dtypes.
  std::string src = fill_source(R"TS(
def timestep_embedding(self, timesteps: Tensor) -> Tensor:
    freqs = torch.exp($neg_log * torch.arange(0, $half, dtype=6) / $half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
)TS",
                                {{"neg_log", script_float(-std::log(10000.0))},
                                 {"half", str(half)}});
  if (dim % 2) src += "    emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], -1)\n";
  return src + "    return emb\n";
}

tj::Module make_time_embed(const JitBuilder& b, const NetOptions& o) {
  const int64_t time_embed_dim = o.model_channels * 4;
  tj::Module lin1 = make_linear(b, o.model_channels, time_embed_dim);
  tj::Module act = b.silu();
  tj::Module lin2 = make_linear(b, time_embed_dim, time_embed_dim);
  return b.sequential({lin1, act, lin2});
}

void zero_module(tj::Module& m) {
  at::NoGradGuard no_grad;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) p.value.zero_();
}

Torso make_torso(const JitBuilder& b, const NetOptions& o) {
  Torso t;
  const int64_t emb_dim = o.model_channels * 4;
  const std::vector<int64_t> widths = level_widths(o);
  auto attends = [&](int64_t ds) {
    return std::find(o.attention_resolutions.begin(), o.attention_resolutions.end(), ds) !=
           o.attention_resolutions.end();
  };

  std::vector<tj::Module> blocks;
  int64_t ch = widths[0];
  blocks.push_back(make_timestep_sequential(b, {make_conv(b, 2, o.in_channels, ch, 3, 1, 1)},
                                            {false}));
  t.input_block_chans.push_back(ch);
  int64_t ds = 1;
  for (size_t level = 0; level < widths.size(); ++level) {
    for (int64_t i = 0; i < o.num_res_blocks; ++i) {
      std::vector<tj::Module> layers{make_res_block(b, ch, emb_dim, o.dropout, widths[level],
                                                    o.use_scale_shift_norm)};
      std::vector<bool> takes{true};
      ch = widths[level];
      if (attends(ds)) {
        layers.push_back(make_attention_block(b, ch, o.num_heads, o.num_head_channels,
                                              o.use_new_attention_order));
        takes.push_back(false);
      }
      blocks.push_back(make_timestep_sequential(b, layers, takes));
      t.input_block_chans.push_back(ch);
    }
    if (level + 1 != widths.size()) {
      tj::Module down = o.resblock_updown
                            ? make_res_block(b, ch, emb_dim, o.dropout, ch,
                                             o.use_scale_shift_norm, false, /*down=*/true)
                            : make_downsample(b, ch, ch);
      blocks.push_back(make_timestep_sequential(b, {down}, {o.resblock_updown}));
      t.input_block_chans.push_back(ch);
      ds *= 2;
    }
  }
  t.input_blocks = b.module_list(blocks);

  tj::Module res1 = make_res_block(b, ch, emb_dim, o.dropout, ch, o.use_scale_shift_norm);
  tj::Module attn = make_attention_block(b, ch, o.num_heads, o.num_head_channels,
                                         o.use_new_attention_order);
  tj::Module res2 = make_res_block(b, ch, emb_dim, o.dropout, ch, o.use_scale_shift_norm);
  t.middle_block = make_timestep_sequential(b, {res1, attn, res2}, {true, false, true});
  t.ch = ch;
  t.ds = ds;
  return t;
}

void convert_convs_to_fp16(tj::Module& m) {
  for (const auto& sub : m.modules()) {
    const std::string kind = sub.type()->name()->qualifiedName();
    if (kind.find(".Conv1d") == std::string::npos && kind.find(".Conv2d") == std::string::npos) {
      continue;
    }
    tj::Module conv = sub;  // a handle to the same object
    for (const char* name : {"weight", "bias"}) {
      if (!conv.hasattr(name)) continue;
      at::Tensor p = conv.attr(name).toTensor();
      add_parameter(conv, name, p.to(at::kHalf), p.requires_grad());
    }
  }
}

std::string input_checks_source(const char* net, int64_t in_channels, size_t levels) {
  const int64_t factor = int64_t{1} << (levels - 1);
  std::ostringstream s;
  s << "    assert x.dim() == 4 and x.size(1) == " << in_channels << ", \"" << net
    << ": x must have shape (N, " << in_channels << ", H, W), got {}\".format(x.shape)\n"
    << "    assert x.size(2) % " << factor << " == 0 and x.size(3) % " << factor << " == 0, \""
    << net << ": image height and width must be divisible by " << factor
    << ", got {}x{}\".format(x.size(2), x.size(3))\n"
    << "    assert timesteps.dim() == 1 and timesteps.size(0) == x.size(0), \"" << net
    << ": timesteps must have shape ({},), got {}\".format(x.size(0), timesteps.shape)\n";
  return s.str();
}

void add_net_attributes(tj::Module& m, const NetOptions& o, const std::string& kind) {
  add_string_attribute(m, "gd_kind", kind);
  add_int_attribute(m, "image_size", o.image_size);
  add_int_attribute(m, "in_channels", o.in_channels);
  add_int_attribute(m, "model_channels", o.model_channels);
  add_int_attribute(m, "out_channels", o.out_channels);
  add_int_attribute(m, "num_res_blocks", o.num_res_blocks);
  add_int_list_attribute(m, "attention_resolutions", o.attention_resolutions);
  add_float_attribute(m, "dropout", o.dropout);
  m.register_attribute("channel_mult", c10::ListType::ofFloats(),
                       c10::List<double>(o.channel_mult));
  add_bool_attribute(m, "use_fp16", o.use_fp16);
  add_int_attribute(m, "num_heads", o.num_heads);
  add_int_attribute(m, "num_head_channels", o.num_head_channels);
  add_int_attribute(m, "num_heads_upsample",
                    o.num_heads_upsample == -1 ? o.num_heads : o.num_heads_upsample);
  add_bool_attribute(m, "use_scale_shift_norm", o.use_scale_shift_norm);
  add_bool_attribute(m, "resblock_updown", o.resblock_updown);
  add_bool_attribute(m, "use_new_attention_order", o.use_new_attention_order);
  add_bool_attribute(m, "use_checkpoint", o.use_checkpoint);
}

}  // namespace gd::openai
