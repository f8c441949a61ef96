#include "models/openai_unet.h"

#include "models/openai_size.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace gd::openai {

namespace tj = torch::jit;

namespace {

constexpr const char* kNet = "UNetModel";

// The lines of forward() up to the embedding `emb` (the input checks, the time embedding and
// the labels'), shared with embed().
std::string embedding_lines(const UNetModelOptions& o) {
  std::ostringstream s;
  s << input_checks_source(kNet, o.in_channels, o.channel_mult.size())
    << "    emb = self.time_embed.forward(self.timestep_embedding(timesteps))\n";
  if (o.num_classes > 0) {
    s << "    assert y is not None, \"UNetModel: y (class labels of shape (N,)) is required: "
         "the model is class-conditional (num_classes="
      << o.num_classes << ")\"\n"
      << "    assert y.dim() == 1 and y.size(0) == x.size(0), \"UNetModel: y must have shape "
         "({},), got {}\".format(x.size(0), y.shape)\n"
      // dtype 11 is bool (define() does not resolve torch.bool).
      << "    assert not y.is_floating_point() and y.dtype != 11, \"UNetModel: y must "
         "hold integer class labels, got dtype {}\".format(y.dtype)\n"
      // The range check reads y back, so only where that costs no device sync.
      << "    if y.device.type == \"cpu\" and y.numel() > 0:\n"
      << "        assert bool(y.min() >= 0) and bool(y.max() < " << o.num_classes
      << "), \"UNetModel: class labels must be in [0, " << o.num_classes
      << "), got {}..{}\".format(int(y.min()), int(y.max()))\n"
      << "    emb = emb + self.label_emb.forward(y)\n";
  } else {
    s << "    assert y is None, \"UNetModel: y was given but the model is not "
         "class-conditional (num_classes is not set)\"\n";
  }
  return s.str();
}

// embed(x, timesteps, y): forward's checks and embedding alone, for the checkpointed
// training walk (diffusion/openai_checkpointed.h), which runs the blocks itself.
std::string embed_source(const UNetModelOptions& o) {
  return "def embed(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor]=None) -> Tensor:\n" +
         embedding_lines(o) + "    return emb\n";
}

// forward(), unrolled: TorchScript cannot index children with a loop variable.
std::string forward_source(const UNetModelOptions& o, size_t n_input, size_t n_output) {
  std::ostringstream s;
  s << "def forward(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor]=None) -> Tensor:\n"
    << embedding_lines(o);
  // The torso runs in the dtype of its convs (float16 with use_fp16), as their
  // h = x.type(self.dtype) does.
  s << "    h = x.to(getattr(getattr(self.input_blocks, \"0\"), \"0\").weight.dtype)\n";
  for (size_t i = 0; i < n_input; ++i) {
    s << "    h = getattr(self.input_blocks, \"" << i << "\").forward(h, emb)\n"
      << "    hs" << i << " = h\n";
  }
  s << "    h = self.middle_block.forward(h, emb)\n";
  for (size_t j = 0; j < n_output; ++j) {
    s << "    h = torch.cat([h, hs" << n_input - 1 - j << "], 1)\n"
      << "    h = getattr(self.output_blocks, \"" << j << "\").forward(h, emb)\n";
  }
  s << "    return self.out.forward(h.to(x.dtype))\n";
  return s.str();
}

}  // namespace

tj::Module make_unet_model(const UNetModelOptions& options) {
  check_net_options(options, kNet, /*has_output_blocks=*/true);
  TORCH_CHECK(options.num_classes >= 0, kNet,
              ": num_classes must be a positive integer (or unset), got ", options.num_classes);
  check_fits_in_memory(unet_parameter_count(options), kNet);
  const UNetModelOptions& o = options;
  const int64_t emb_dim = o.model_channels * 4;
  const int64_t up_heads = o.num_heads_upsample == -1 ? o.num_heads : o.num_heads_upsample;
  const std::vector<int64_t> widths = level_widths(o);

  JitBuilder b;
  tj::Module m = b.module("UNetModel");
  // Registered in their __init__ order, so named_parameters() lists their state_dict order.
  m.register_module("time_embed", make_time_embed(b, o));
  if (o.num_classes > 0) m.register_module("label_emb", make_embedding(b, o.num_classes, emb_dim));
  Torso t = make_torso(b, o);
  m.register_module("input_blocks", t.input_blocks);
  m.register_module("middle_block", t.middle_block);

  std::vector<int64_t> skips = t.input_block_chans;
  std::vector<tj::Module> blocks;
  int64_t ch = t.ch, ds = t.ds;
  for (size_t level = widths.size(); level-- > 0;) {
    for (int64_t i = 0; i <= o.num_res_blocks; ++i) {
      const int64_t ich = skips.back();
      skips.pop_back();
      std::vector<tj::Module> layers{make_res_block(b, ch + ich, emb_dim, o.dropout,
                                                    widths[level], o.use_scale_shift_norm)};
      std::vector<bool> takes{true};
      ch = widths[level];
      if (std::find(o.attention_resolutions.begin(), o.attention_resolutions.end(), ds) !=
          o.attention_resolutions.end()) {
        layers.push_back(make_attention_block(b, ch, up_heads, o.num_head_channels,
                                              o.use_new_attention_order));
        takes.push_back(false);
      }
      if (level > 0 && i == o.num_res_blocks) {
        layers.push_back(o.resblock_updown
                             ? make_res_block(b, ch, emb_dim, o.dropout, ch,
                                              o.use_scale_shift_norm, /*up=*/true)
                             : make_upsample(b, ch, ch));
        takes.push_back(o.resblock_updown);
        ds /= 2;
      }
      blocks.push_back(make_timestep_sequential(b, layers, takes));
    }
  }
  const size_t n_output = blocks.size();
  m.register_module("output_blocks", b.module_list(blocks));

  {
    tj::Module norm = make_group_norm32(b, ch);
    tj::Module act = b.silu();
    tj::Module conv = make_conv(b, 2, widths[0], o.out_channels, 3, 1, 1);
    zero_module(conv);
    m.register_module("out", b.sequential({norm, act, conv}));
  }

  if (o.use_fp16) {
    for (const char* part : {"input_blocks", "middle_block", "output_blocks"}) {
      tj::Module sub = m.attr(part).toModule();
      convert_convs_to_fp16(sub);
    }
  }
  add_net_attributes(m, o, "openai_unet");
  add_int_attribute(m, "num_classes", o.num_classes);
  m.define(timestep_embedding_method(o.model_channels));
  m.define(embed_source(o));
  m.define(forward_source(o, t.input_block_chans.size(), n_output));
  return m;
}

}  // namespace gd::openai
