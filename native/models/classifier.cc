#include "models/classifier.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "models/jit_builder.h"
#include "models/unet.h"

namespace gd {

namespace tj = torch::jit;

tj::Module make_linear_classifier(const LinearClassifierOptions& o) {
  TORCH_CHECK(o.image_size > 0, "LinearClassifier: image_size must be a positive integer, got ",
              o.image_size);
  TORCH_CHECK(o.channels > 0, "LinearClassifier: channels must be a positive integer, got ",
              o.channels);
  TORCH_CHECK(o.num_classes > 0, "LinearClassifier: num_classes must be a positive integer, got ",
              o.num_classes);
  JitBuilder b;
  tj::Module m = b.module("LinearClassifier");
  m.register_module("linear_t", b.linear(1, o.num_classes));
  m.register_module("linear_img", b.linear(o.image_size * o.image_size * o.channels,
                                           o.num_classes));
  add_string_attribute(m, "gd_kind", "classifier");
  add_string_attribute(m, "gd_arch", "linear");
  add_int_attribute(m, "image_size", o.image_size);
  add_int_attribute(m, "channels", o.channels);
  add_int_attribute(m, "num_classes", o.num_classes);
  // As classifier.pt computes it; dtype 6 is float32 (TorchScript spells dtypes as ints).
  m.define(R"TS(
def forward(self, x: Tensor, t: Tensor) -> Tensor:
    b = x.size(0)
    return self.linear_t.forward(t.view([b, 1]).to(6)) + self.linear_img.forward(x.reshape([b, -1]))
)TS");
  return m;
}

namespace {

void check_options(const ClassifierOptions& o) {
  TORCH_CHECK(o.image_size > 0, "Classifier: image_size must be a positive integer, got ",
              o.image_size);
  TORCH_CHECK(o.channels > 0, "Classifier: channels must be a positive integer, got ",
              o.channels);
  TORCH_CHECK(o.num_classes > 0, "Classifier: num_classes must be a positive integer, got ",
              o.num_classes);
  TORCH_CHECK(o.dim >= 4 && o.dim % 2 == 0,
              "Classifier: dim must be an even integer of at least 4, got ", o.dim);
  TORCH_CHECK(!o.dim_mults.empty(), "Classifier: dim_mults must not be empty");
  for (size_t i = 0; i < o.dim_mults.size(); ++i) {
    TORCH_CHECK(o.dim_mults[i] > 0, "Classifier: dim_mults must hold positive integers, got ",
                o.dim_mults[i], " at index ", i);
  }
  TORCH_CHECK(o.dim_mults.size() <= 16, "Classifier: at most 16 levels (dim_mults), got ",
              o.dim_mults.size());
  const int64_t factor = int64_t{1} << (o.dim_mults.size() - 1);
  TORCH_CHECK(o.image_size % factor == 0, "Classifier: image_size must be divisible by ", factor,
              " (2^(len(dim_mults)-1)), got ", o.image_size);
  TORCH_CHECK(o.num_res_blocks > 0, "Classifier: num_res_blocks must be a positive integer, got ",
              o.num_res_blocks);
  for (int64_t r : o.attention_resolutions) {
    TORCH_CHECK(r > 0, "Classifier: attention_resolutions must hold positive integers, got ", r);
  }
  TORCH_CHECK(o.pool == "attention" || o.pool == "avg",
              "Classifier: pool must be \"attention\" or \"avg\", got \"", o.pool, "\"");
  TORCH_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, "Classifier: dropout must be in [0, 1), got ",
              o.dropout);
  TORCH_CHECK(o.heads > 0, "Classifier: heads must be a positive integer, got ", o.heads);
  TORCH_CHECK(o.dim_head > 0, "Classifier: dim_head must be a positive integer, got ",
              o.dim_head);
}

// Attention pooling over a side x side map of `dim` channels: the mean token, prepended to
// the flattened map (plus a learned positional embedding), queries all tokens.
tj::Module make_attention_pool(const JitBuilder& b, int64_t side, int64_t dim, int64_t heads,
                               int64_t dim_head) {
  const int64_t hidden = heads * dim_head;
  const int64_t tokens = side * side + 1;
  tj::Module m = b.module("AttentionPool2d");
  add_parameter(m, "pos_emb",
                at::randn({tokens, dim}, at::kFloat) / std::sqrt(static_cast<double>(dim)));
  m.register_module("to_qkv", b.linear(dim, hidden * 3, /*bias=*/false));
  m.register_module("to_out", b.linear(hidden, dim));
  add_int_attribute(m, "side", side);
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    b = x.size(0)
    assert x.size(2) == $side and x.size(3) == $side, "Classifier: attention pooling was built for {}x{} feature maps, got {}x{} (use the image size the classifier was built for)".format($side, $side, x.size(2), x.size(3))
    tokens = x.flatten(2).transpose(1, 2)
    tokens = torch.cat([tokens.mean([1], True), tokens], 1) + self.pos_emb
    q, k, v = self.to_qkv.forward(tokens).chunk(3, -1)
    q = q[:, :1].reshape([b, 1, $heads, $dim_head]).transpose(1, 2) * $scale
    k = k.reshape([b, $tokens, $heads, $dim_head]).transpose(1, 2)
    v = v.reshape([b, $tokens, $heads, $dim_head]).transpose(1, 2)
    attn = torch.matmul(q, k.transpose(-1, -2)).softmax(-1)
    out = torch.matmul(attn, v).transpose(1, 2).reshape([b, $hidden])
    return self.to_out.forward(out)
)TS",
                       {{"side", std::to_string(side)},
                        {"tokens", std::to_string(tokens)},
                        {"heads", std::to_string(heads)},
                        {"dim_head", std::to_string(dim_head)},
                        {"hidden", std::to_string(hidden)},
                        {"scale", script_float(std::pow(static_cast<double>(dim_head), -0.5))}}));
  return m;
}

}  // namespace

tj::Module make_classifier(const ClassifierOptions& o) {
  check_options(o);
  const RmsScale norm = RmsScale::Channels;
  const size_t levels = o.dim_mults.size();
  const int64_t time_dim = o.dim * 4;
  const int64_t factor = int64_t{1} << (levels - 1);
  auto has_attention = [&](int64_t side) {
    return std::find(o.attention_resolutions.begin(), o.attention_resolutions.end(), side) !=
           o.attention_resolutions.end();
  };

  JitBuilder b;
  tj::Module m = b.module("Classifier");
  m.register_module("init_conv", b.conv2d(o.channels, o.dim, 3));
  m.register_module("time_mlp", make_time_mlp(b, o.dim, time_dim));

  std::ostringstream src;
  src << "def forward(self, x: Tensor, t: Tensor) -> Tensor:\n";
  if (factor > 1) {
    src << "    assert x.size(2) % " << factor << " == 0 and x.size(3) % " << factor
        << " == 0, \"Classifier: image height and width must be divisible by " << factor
        << ", got {}x{}\".format(x.size(2), x.size(3))\n";
  }
  src << "    x = self.init_conv.forward(x)\n"
         "    temb = self.time_mlp.forward(t)\n";

  std::vector<tj::Module> downs;
  int64_t width = o.dim;
  int64_t side = o.image_size;
  for (size_t i = 0; i < levels; ++i) {
    const int64_t out = o.dim * o.dim_mults[i];
    const bool attend = has_attention(side);
    const bool last = i + 1 == levels;
    tj::Module level = b.module("ClassifierLevel");
    std::vector<tj::Module> blocks, attns;
    src << "    l" << i << " = getattr(self.downs, \"" << i << "\")\n";
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      blocks.push_back(make_resnet_block(b, j == 0 ? width : out, out, time_dim, norm, o.dropout));
      src << "    x = getattr(l" << i << ".blocks, \"" << j << "\").forward(x, temb)\n";
      if (attend) {
        attns.push_back(make_residual(
            b, make_pre_norm(b, out, make_attention(b, out, o.heads, o.dim_head), norm)));
        src << "    x = getattr(l" << i << ".attns, \"" << j << "\").forward(x)\n";
      }
    }
    level.register_module("blocks", b.module_list(blocks));
    if (attend) level.register_module("attns", b.module_list(attns));
    if (!last) {
      level.register_module("downsample", make_downsample(b, out, out));
      src << "    x = l" << i << ".downsample.forward(x)\n";
      side /= 2;
    }
    downs.push_back(level);
    width = out;
  }
  m.register_module("downs", b.module_list(downs));

  m.register_module("mid_block1", make_resnet_block(b, width, width, time_dim, norm, o.dropout));
  m.register_module("mid_attn", make_residual(b, make_pre_norm(b, width,
                                                               make_attention(b, width, o.heads,
                                                                              o.dim_head),
                                                               norm)));
  m.register_module("mid_block2", make_resnet_block(b, width, width, time_dim, norm, o.dropout));
  m.register_module("final_norm", b.rms_norm(width, norm));
  src << "    x = self.mid_block1.forward(x, temb)\n"
         "    x = self.mid_attn.forward(x)\n"
         "    x = self.mid_block2.forward(x, temb)\n"
         "    x = torch.silu(self.final_norm.forward(x))\n";
  if (o.pool == "attention") {
    m.register_module("pool", make_attention_pool(b, side, width, o.heads, o.dim_head));
    src << "    x = self.pool.forward(x)\n";
  } else {
    src << "    x = x.mean([2, 3])\n";
  }
  m.register_module("to_logits", b.linear(width, o.num_classes));
  src << "    return self.to_logits.forward(x)\n";

  add_string_attribute(m, "gd_kind", "classifier");
  add_string_attribute(m, "gd_arch", "encoder");
  add_int_attribute(m, "image_size", o.image_size);
  add_int_attribute(m, "channels", o.channels);
  add_int_attribute(m, "num_classes", o.num_classes);
  add_int_attribute(m, "dim", o.dim);
  add_int_list_attribute(m, "dim_mults", o.dim_mults);
  add_int_attribute(m, "num_res_blocks", o.num_res_blocks);
  add_int_list_attribute(m, "attention_resolutions", o.attention_resolutions);
  add_string_attribute(m, "pool_type", o.pool);  // `pool` is the module
  add_float_attribute(m, "dropout", o.dropout);
  m.define(src.str());
  return m;
}

}  // namespace gd
