#include "models/unet.h"

#include "models/openai_blocks.h"  // make_embedding: nn.Embedding

#include <cmath>
#include <sstream>
#include <string>
#include <utility>

namespace gd {

namespace tj = torch::jit;

namespace {

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

// Modules are built in the order of the reference's __init__, so that the same seed draws
// the same initial weights as Python would. Every statement below draws at most once from
// the generator per expression, because C++ leaves the order of function arguments open.

tj::Module make_block(const JitBuilder& b, int64_t in, int64_t out, RmsScale norm_scale,
                      double dropout) {
  TORCH_CHECK(dropout >= 0.0 && dropout < 1.0, "Block: dropout must be in [0, 1), got ", dropout);
  tj::Module m = b.module("Block");
  m.register_module("proj", b.conv2d(in, out, 3));
  m.register_module("norm", b.rms_norm(out, norm_scale));
  m.register_module("act", b.silu());
  const std::string drop =
      dropout > 0.0 ? "    x = torch.dropout(x, " + script_float(dropout) + ", self.training)\n"
                    : "";
  // With scale and shift, RMSNorm's gain g * sqrt(n) and (scale + 1) make one per-channel
  // factor and addcmul adds shift in the same pass: two passes over x instead of five after
  // the normalization (the same products, rounded in another order). The normalization is
  // RMSNorm's (jit_builder.cc), written out here to fold its gain.
  m.define(fill_source(R"TS(
def forward(self, x: Tensor, scale: Optional[Tensor]=None, shift: Optional[Tensor]=None) -> Tensor:
    x = self.proj.forward(x)
    if scale is not None and shift is not None:
        n = x / x.square().sum([1], True).sqrt().clamp_min(1e-12)
        x = torch.addcmul(shift, n, self.norm.g * (x.size($axis) ** 0.5) * (scale + 1))
    else:
        x = self.norm.forward(x)
    x = self.act.forward(x)
)TS",
                       {{"axis", norm_scale == RmsScale::Width ? "-1" : "1"}}) +
           drop + "    return x\n");
  return m;
}

tj::Module make_resnet_block(const JitBuilder& b, int64_t in, int64_t out, int64_t time_emb_dim,
                             RmsScale norm_scale, double dropout, int64_t classes_emb_dim) {
  tj::Module m = b.module("ResnetBlock");
  tj::Module act = b.silu();
  tj::Module lin = b.linear(time_emb_dim + classes_emb_dim, out * 2);
  m.register_module("mlp", b.sequential({act, lin}));
  m.register_module("block1", make_block(b, in, out, norm_scale, dropout));
  m.register_module("block2", make_block(b, out, out, norm_scale));
  const bool has_res_conv = in != out;
  if (has_res_conv) m.register_module("res_conv", b.conv2d(in, out, 1));
  const bool classes = classes_emb_dim > 0;
  m.define(fill_source(R"TS(
def forward(self, x: Tensor, time_emb: Tensor$class_arg) -> Tensor:
    t = self.mlp.forward($cond)[:, :, None, None]
    scale, shift = t.chunk(2, 1)
    h = self.block1.forward(x, scale, shift)
    h = self.block2.forward(h)
    return h + $res
)TS",
                       {{"res", has_res_conv ? "self.res_conv.forward(x)" : "x"},
                        {"class_arg", classes ? ", class_emb: Tensor" : ""},
                        {"cond", classes ? "torch.cat([time_emb, class_emb], -1)" : "time_emb"}}));
  return m;
}

tj::Module make_linear_attention(const JitBuilder& b, int64_t dim, int64_t heads,
                                 int64_t dim_head, RmsScale norm_scale) {
  TORCH_CHECK(heads > 0 && dim_head > 0, "LinearAttention: heads and dim_head must be positive");
  const int64_t hidden = heads * dim_head;
  tj::Module m = b.module("LinearAttention");
  m.register_module("to_qkv", b.conv2d(dim, hidden * 3, 1, /*bias=*/false));
  tj::Module out_conv = b.conv2d(hidden, dim, 1);
  m.register_module("to_out", b.sequential({out_conv, b.rms_norm(dim, norm_scale)}));
  // q is softmaxed over features, k over positions. The reference's einsums are written as
  // matmuls over transposed views, and to_qkv runs as three convolutions over slices of its
  // weight: q, k and v each come out contiguous, so the softmaxes and matmuls read them in
  // place (chunks of one output are strided across the batch, and each of them was copied:
  // a tenth of a step at 32x32). The scale of q is applied to the small context instead
  // (the same product, rounded once elsewhere).
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    b = x.size(0)
    hh = x.size(2)
    ww = x.size(3)
    w = self.to_qkv.weight
    q = torch.conv2d(x, w[0:$hidden]).reshape([b, $heads, $dim_head, hh * ww])
    k = torch.conv2d(x, w[$hidden:$hidden2]).reshape([b, $heads, $dim_head, hh * ww])
    v = torch.conv2d(x, w[$hidden2:$hidden3]).reshape([b, $heads, $dim_head, hh * ww])
    q = q.softmax(-2)
    k = k.softmax(-1)
    context = torch.matmul(k, v.transpose(-1, -2)) * $scale
    out = torch.matmul(context.transpose(-1, -2), q)
    out = out.reshape([b, $hidden, hh, ww])
    return self.to_out.forward(out)
)TS",
                       {{"heads", str(heads)},
                        {"dim_head", str(dim_head)},
                        {"hidden", str(hidden)},
                        {"hidden2", str(2 * hidden)},
                        {"hidden3", str(3 * hidden)},
                        {"scale", script_float(std::pow(static_cast<double>(dim_head), -0.5))}}));
  return m;
}

tj::Module make_attention(const JitBuilder& b, int64_t dim, int64_t heads, int64_t dim_head) {
  TORCH_CHECK(heads > 0 && dim_head > 0, "Attention: heads and dim_head must be positive");
  const int64_t hidden = heads * dim_head;
  tj::Module m = b.module("Attention");
  m.register_module("to_qkv", b.conv2d(dim, hidden * 3, 1, /*bias=*/false));
  m.register_module("to_out", b.conv2d(hidden, dim, 1));
  // Output channels are (head, feature), head outermost: 'b h (x y) d -> b (h d) x y'. The
  // output is computed as v @ attn^T, already (b, h, d, x y): no permute copy.
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    b = x.size(0)
    hh = x.size(2)
    ww = x.size(3)
    q, k, v = self.to_qkv.forward(x).chunk(3, 1)
    q = q.reshape([b, $heads, $dim_head, hh * ww])
    k = k.reshape([b, $heads, $dim_head, hh * ww])
    v = v.reshape([b, $heads, $dim_head, hh * ww])
    q = q * $scale
    sim = torch.matmul(q.transpose(-1, -2), k)
    attn = sim.softmax(-1)
    out = torch.matmul(v, attn.transpose(-1, -2))
    out = out.reshape([b, $hidden, hh, ww])
    return self.to_out.forward(out)
)TS",
                       {{"heads", str(heads)},
                        {"dim_head", str(dim_head)},
                        {"hidden", str(hidden)},
                        {"scale", script_float(std::pow(static_cast<double>(dim_head), -0.5))}}));
  return m;
}

tj::Module make_pre_norm(const JitBuilder& b, int64_t dim, const tj::Module& fn,
                         RmsScale norm_scale) {
  tj::Module m = b.module("PreNorm");
  m.register_module("fn", fn);
  m.register_module("norm", b.rms_norm(dim, norm_scale));
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return self.fn.forward(self.norm.forward(x))
)TS");
  return m;
}

tj::Module make_residual(const JitBuilder& b, const tj::Module& fn) {
  tj::Module m = b.module("Residual");
  m.register_module("fn", fn);
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return self.fn.forward(x) + x
)TS");
  return m;
}

tj::Module make_downsample(const JitBuilder& b, int64_t in, int64_t out) {
  tj::Module unshuffle = b.pixel_unshuffle(2);
  tj::Module conv = b.conv2d(in * 4, out, 1);
  return b.sequential({unshuffle, conv});
}

namespace {

// classifier_free_guidance's Downsample: nn.Conv2d(in, out, 4, 2, 1).
tj::Module make_strided_downsample(const JitBuilder& b, int64_t in, int64_t out) {
  tj::Module m = b.module("Conv2d");
  const int64_t fan_in = in * 16;
  add_parameter(m, "weight", kaiming_uniform({out, in, 4, 4}, fan_in));
  add_parameter(m, "bias", fan_in_uniform({out}, fan_in));
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.conv2d(x, self.weight, self.bias, [2, 2], [1, 1], [1, 1], 1)
)TS");
  add_int_attribute(m, "in_channels", in);
  add_int_attribute(m, "out_channels", out);
  return m;
}

}  // namespace

tj::Module make_upsample(const JitBuilder& b, int64_t in, int64_t out) {
  tj::Module up = b.upsample_nearest(2);
  tj::Module conv = b.conv2d(in, out, 3);
  return b.sequential({up, conv});
}

tj::Module make_time_mlp(const JitBuilder& b, int64_t dim, int64_t time_dim, bool learned,
                         bool random, int64_t learned_dim) {
  const bool fourier = learned || random;
  tj::Module pos = fourier ? b.random_or_learned_sinusoidal_pos_emb(learned_dim, random)
                           : b.sinusoidal_pos_emb(dim);
  const int64_t fourier_dim = fourier ? learned_dim + 1 : dim;
  tj::Module lin1 = b.linear(fourier_dim, time_dim);
  tj::Module act = b.gelu();
  tj::Module lin2 = b.linear(time_dim, time_dim);
  return b.sequential({pos, lin1, act, lin2});
}

namespace {

void check_options(const UnetOptions& o) {
  TORCH_CHECK(o.dim > 0, "Unet: dim must be a positive integer, got ", o.dim);
  TORCH_CHECK(o.init_dim >= 0, "Unet: init_dim must be a positive integer (or 0 for dim), got ",
              o.init_dim);
  TORCH_CHECK(o.out_dim >= 0,
              "Unet: out_dim must be a positive integer (or 0 for the default), got ", o.out_dim);
  TORCH_CHECK(o.channels > 0, "Unet: channels must be a positive integer, got ", o.channels);
  TORCH_CHECK(!o.dim_mults.empty(), "Unet: dim_mults must not be empty");
  for (size_t i = 0; i < o.dim_mults.size(); ++i) {
    TORCH_CHECK(o.dim_mults[i] > 0, "Unet: dim_mults must hold positive integers, got ",
                o.dim_mults[i], " at index ", i);
  }
  TORCH_CHECK(o.num_classes >= 0, "Unet: num_classes must be a positive integer (or 0 for none), got ",
              o.num_classes);
  TORCH_CHECK(!(o.num_classes > 0 && o.self_condition),
              "Unet: num_classes (the classifier-free guidance Unet) has no self_condition");
  if (o.learned_sinusoidal_cond || o.random_fourier_features) {
    TORCH_CHECK(o.learned_sinusoidal_dim > 0 && o.learned_sinusoidal_dim % 2 == 0,
                "Unet: learned_sinusoidal_dim must be a positive even integer, got ",
                o.learned_sinusoidal_dim);
  } else {
    TORCH_CHECK(o.dim >= 4 && o.dim % 2 == 0,
                "Unet: dim must be even and at least 4 for the sinusoidal time embedding, got ",
                o.dim);
  }
}

// forward(), unrolled over the levels: TorchScript cannot index children with a loop variable.
std::string unet_forward_source(const UnetOptions& o, size_t levels) {
  std::ostringstream s;
  const int64_t factor = int64_t{1} << (levels - 1);
  const bool classes = o.num_classes > 0;
  const std::string k = std::to_string(o.num_classes);
  const std::string tc = classes ? "t, c" : "t";  // what each ResnetBlock is conditioned on
  s << (classes ? "def forward(self, x: Tensor, time: Tensor, y: Tensor) -> Tensor:\n"
                : "def forward(self, x: Tensor, time: Tensor, x_self_cond: Optional[Tensor]=None) -> Tensor:\n");
  if (levels > 1) {
    s << "    assert x.size(2) % " << factor << " == 0 and x.size(3) % " << factor
      << " == 0, \"Unet: image height and width must be divisible by " << factor
      << ", got {}x{}\".format(x.size(2), x.size(3))\n";
  }
  if (classes) {
    // Label K selects null_classes_emb: what their forward does for a dropped class, so one
    // batched forward serves both halves of classifier-free guidance.
    s << "    assert y.dim() == 1 and y.size(0) == x.size(0), \"Unet: y must hold one class label per image ({}); got shape {}\".format(x.size(0), y.size())\n"
      << "    assert bool((y >= 0).all()) and bool((y <= " << k << ").all()), \"Unet: class labels must be in [0, " << k
      << "] (" << k << ": no class); got {}..{}\".format(int(y.min()), int(y.max()))\n"
      << "    e = torch.embedding(self.classes_emb.weight, y.clamp_max(" << o.num_classes - 1 << "))\n"
      << "    c = torch.where((y == " << k << ")[:, None], self.null_classes_emb[None, :], e)\n"
      << "    c = self.classes_mlp.forward(c)\n";
  }
  if (o.self_condition) {
    s << "    if x_self_cond is None:\n"
         "        cond = torch.zeros_like(x)\n"
         "    else:\n"
         "        cond = x_self_cond\n"
         "    x = torch.cat([cond, x], 1)\n";
  }
  s << "    x = self.init_conv.forward(x)\n"
       "    r = x.clone()\n"
       "    t = self.time_mlp.forward(time)\n";
  for (size_t i = 0; i < levels; ++i) {
    s << "    d" << i << " = getattr(self.downs, \"" << i << "\")\n"
      << "    x = getattr(d" << i << ", \"0\").forward(x, " << tc << ")\n"
      << "    h" << 2 * i << " = x\n"
      << "    x = getattr(d" << i << ", \"1\").forward(x, " << tc << ")\n"
      << "    x = getattr(d" << i << ", \"2\").forward(x)\n"
      << "    h" << 2 * i + 1 << " = x\n"
      << "    x = getattr(d" << i << ", \"3\").forward(x)\n";
  }
  s << "    x = self.mid_block1.forward(x, " << tc << ")\n"
       "    x = self.mid_attn.forward(x)\n"
       "    x = self.mid_block2.forward(x, " << tc << ")\n";
  for (size_t j = 0; j < levels; ++j) {
    const size_t level = levels - 1 - j;  // skips are popped last-in first-out
    s << "    u" << j << " = getattr(self.ups, \"" << j << "\")\n"
      << "    x = torch.cat([x, h" << 2 * level + 1 << "], 1)\n"
      << "    x = getattr(u" << j << ", \"0\").forward(x, " << tc << ")\n"
      << "    x = torch.cat([x, h" << 2 * level << "], 1)\n"
      << "    x = getattr(u" << j << ", \"1\").forward(x, " << tc << ")\n"
      << "    x = getattr(u" << j << ", \"2\").forward(x)\n"
      << "    x = getattr(u" << j << ", \"3\").forward(x)\n";
  }
  s << "    x = torch.cat([x, r], 1)\n"
       "    x = self.final_res_block.forward(x, " << tc << ")\n"
       "    return self.final_conv.forward(x)\n";
  return s.str();
}

}  // namespace

tj::Module make_unet(const UnetOptions& options) {
  check_options(options);
  UnetOptions o = options;
  if (o.init_dim == 0) o.init_dim = o.dim;
  if (o.out_dim == 0) o.out_dim = o.channels * (o.learned_variance ? 2 : 1);
  const bool fourier = o.learned_sinusoidal_cond || o.random_fourier_features;

  JitBuilder b;
  tj::Module m = b.module("Unet");
  const int64_t input_channels = o.channels * (o.self_condition ? 2 : 1);
  m.register_module("init_conv", b.conv2d(input_channels, o.init_dim, 7));

  const int64_t time_dim = o.dim * 4;
  m.register_module("time_mlp", make_time_mlp(b, o.dim, time_dim, o.learned_sinusoidal_cond,
                                              o.random_fourier_features,
                                              o.learned_sinusoidal_dim));
  const bool classes = o.num_classes > 0;
  const int64_t classes_dim = classes ? o.dim * 4 : 0;
  if (classes) {
    m.register_module("classes_emb", openai::make_embedding(b, o.num_classes, o.dim));
    add_parameter(m, "null_classes_emb", at::randn({o.dim}, at::kFloat));
    tj::Module lin1 = b.linear(o.dim, classes_dim);
    tj::Module act = b.gelu();
    tj::Module lin2 = b.linear(classes_dim, classes_dim);
    m.register_module("classes_mlp", b.sequential({lin1, act, lin2}));
  }
  // Their classifier-free guidance module's RMSNorm scales by sqrt(channels), not by the
  // image width as the guided_diffusion module's does.
  const RmsScale norm = classes ? RmsScale::Channels : RmsScale::Width;
  auto resnet_block = [&](int64_t in, int64_t out) {
    return make_resnet_block(b, in, out, time_dim, norm, 0.0, classes_dim);
  };
  auto linear_attention = [&](int64_t d) {
    return make_residual(b, make_pre_norm(b, d, make_linear_attention(b, d, 4, 32, norm), norm));
  };

  std::vector<int64_t> dims{o.init_dim};
  for (int64_t mult : o.dim_mults) dims.push_back(o.dim * mult);
  const size_t levels = o.dim_mults.size();

  std::vector<tj::Module> downs;
  for (size_t i = 0; i < levels; ++i) {
    const int64_t din = dims[i], dout = dims[i + 1];
    const bool last = i + 1 == levels;
    tj::Module block1 = resnet_block(din, din);
    tj::Module block2 = resnet_block(din, din);
    tj::Module attn = linear_attention(din);
    tj::Module down = last      ? b.conv2d(din, dout, 3)
                      : classes ? make_strided_downsample(b, din, dout)
                                : make_downsample(b, din, dout);
    downs.push_back(b.module_list({block1, block2, attn, down}));
  }
  m.register_module("downs", b.module_list(downs));

  const int64_t mid = dims.back();
  m.register_module("mid_block1", resnet_block(mid, mid));
  m.register_module("mid_attn", make_residual(b, make_pre_norm(b, mid, make_attention(b, mid), norm)));
  m.register_module("mid_block2", resnet_block(mid, mid));

  std::vector<tj::Module> ups;
  for (size_t j = 0; j < levels; ++j) {
    const size_t i = levels - 1 - j;
    const int64_t din = dims[i], dout = dims[i + 1];
    const bool last = j + 1 == levels;
    tj::Module block1 = resnet_block(dout + din, dout);
    tj::Module block2 = resnet_block(dout + din, dout);
    tj::Module attn = linear_attention(dout);
    tj::Module up = last ? b.conv2d(dout, din, 3) : make_upsample(b, dout, din);
    ups.push_back(b.module_list({block1, block2, attn, up}));
  }
  m.register_module("ups", b.module_list(ups));

  // The reference builds ResnetBlock(dim * 2, dim), which only runs when init_dim == dim;
  // 2 * init_dim is the same there and also works otherwise. Their classifier-free guidance
  // Unet ends at init_dim.
  const int64_t final_dim = classes ? o.init_dim : o.dim;
  m.register_module("final_res_block", resnet_block(o.init_dim * 2, final_dim));
  m.register_module("final_conv", b.conv2d(final_dim, o.out_dim, 1));

  add_string_attribute(m, "gd_kind", "unet");
  add_int_attribute(m, "dim", o.dim);
  add_int_attribute(m, "init_dim", o.init_dim);
  add_int_attribute(m, "out_dim", o.out_dim);
  add_int_list_attribute(m, "dim_mults", o.dim_mults);
  add_int_attribute(m, "channels", o.channels);
  add_bool_attribute(m, "self_condition", o.self_condition);
  add_bool_attribute(m, "learned_variance", o.learned_variance);
  add_bool_attribute(m, "learned_sinusoidal_cond", o.learned_sinusoidal_cond);
  add_bool_attribute(m, "random_fourier_features", o.random_fourier_features);
  add_bool_attribute(m, "random_or_learned_sinusoidal_cond", fourier);
  add_int_attribute(m, "learned_sinusoidal_dim", o.learned_sinusoidal_dim);
  if (classes) {
    add_int_attribute(m, "num_classes", o.num_classes);
    add_int_attribute(m, "null_class", o.num_classes);
  }

  m.define(unet_forward_source(o, levels));
  return m;
}

}  // namespace gd
