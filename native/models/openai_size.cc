#include "models/openai_size.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "models/openai_blocks.h"

namespace gd::openai {

namespace {

double conv(double in, double out, double kernel) { return in * out * kernel * kernel + out; }
double linear(double in, double out) { return in * out + out; }
double norm(double ch) { return 2 * ch; }

double res_block(double ch, double emb, double out, bool scale_shift) {
  double n = norm(ch) + conv(ch, out, 3) + linear(emb, scale_shift ? 2 * out : out) + norm(out) + conv(out, out, 3);
  if (out != ch) n += conv(ch, out, 1);
  return n;
}

double attention(double ch) { return norm(ch) + conv(ch, 3 * ch, 1) + conv(ch, ch, 1); }

bool attends(const NetOptions& o, int64_t ds) {
  return std::find(o.attention_resolutions.begin(), o.attention_resolutions.end(), ds) != o.attention_resolutions.end();
}

struct TorsoCount {
  double params = 0;
  double skip_sum = 0;  // the sum of the widths after each input block (the spatial pools' input)
  double ch = 0;        // width after the middle block
  int64_t ds = 1;
};

// time_embed, input_blocks and middle_block (make_time_embed, make_torso), in closed form: a
// count per block times the blocks, as num_res_blocks may be huge.
TorsoCount torso(const NetOptions& o) {
  TorsoCount t;
  const double mc = static_cast<double>(o.model_channels), emb = 4 * mc, r = static_cast<double>(o.num_res_blocks);
  const std::vector<int64_t> widths = level_widths(o);
  t.params = linear(mc, emb) + linear(emb, emb);
  double ch = static_cast<double>(widths[0]);
  t.params += conv(static_cast<double>(o.in_channels), ch, 3);
  t.skip_sum = ch;
  int64_t ds = 1;
  for (size_t level = 0; level < widths.size(); ++level) {
    const double w = static_cast<double>(widths[level]);
    const double attn = attends(o, ds) ? attention(w) : 0;
    t.params += res_block(ch, emb, w, o.use_scale_shift_norm) + res_block(w, emb, w, o.use_scale_shift_norm) * (r - 1) + attn * r;
    ch = w;
    t.skip_sum += r * w;
    if (level + 1 != widths.size()) {
      t.params += o.resblock_updown ? res_block(ch, emb, ch, o.use_scale_shift_norm) : conv(ch, ch, 3);
      t.skip_sum += w;
      ds *= 2;
    }
  }
  t.params += 2 * res_block(ch, emb, ch, o.use_scale_shift_norm) + attention(ch);
  t.ch = ch;
  t.ds = ds;
  return t;
}

}  // namespace

double unet_parameter_count(const UNetModelOptions& o) {
  TorsoCount t = torso(o);
  const double emb = 4 * static_cast<double>(o.model_channels), r = static_cast<double>(o.num_res_blocks);
  double n = t.params + (o.num_classes > 0 ? static_cast<double>(o.num_classes) * emb : 0);
  const std::vector<int64_t> widths = level_widths(o);
  // The output blocks of level l take the input blocks' widths last-first: num_res_blocks skips
  // of width w_l, then the one below them (the downsample of level l - 1, or the first conv).
  double ch = t.ch;
  int64_t ds = t.ds;
  for (size_t level = widths.size(); level-- > 0;) {
    const double w = static_cast<double>(widths[level]);
    const double below = static_cast<double>(widths[level > 0 ? level - 1 : 0]);
    const double attn = attends(o, ds) ? attention(w) : 0;
    n += res_block(ch + w, emb, w, o.use_scale_shift_norm) + res_block(w + w, emb, w, o.use_scale_shift_norm) * (r - 1) +
         res_block(w + below, emb, w, o.use_scale_shift_norm) + attn * (r + 1);
    ch = w;
    if (level > 0) {
      n += o.resblock_updown ? res_block(ch, emb, ch, o.use_scale_shift_norm) : conv(ch, ch, 3);
      ds /= 2;
    }
  }
  n += norm(ch) + conv(static_cast<double>(widths[0]), static_cast<double>(o.out_channels), 3);
  return n;
}

double encoder_parameter_count(const EncoderUNetModelOptions& o) {
  TorsoCount t = torso(o);
  double n = t.params;
  const double ch = t.ch, out = static_cast<double>(o.out_channels);
  if (o.pool == "adaptive") {
    n += norm(ch) + conv(ch, out, 1);
  } else if (o.pool == "attention") {
    const double side = static_cast<double>(o.image_size / std::max<int64_t>(t.ds, 1));
    n += norm(ch) + ch * (side * side + 1) + conv(ch, 3 * ch, 1) + conv(ch, out, 1);
  } else {
    n += linear(ch + t.skip_sum, 2048) + (o.pool == "spatial" ? 0 : norm(2048)) + linear(2048, out);
  }
  return n;
}

void check_fits_in_memory(double count, const char* net) {
  const double bytes = count * 4;
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory) {
    char msg[256];
    std::snprintf(msg, sizeof(msg), "%s: these options make %.3g parameters (%.1f GiB in float32), more than this machine's %.1f GiB of memory",
                  net, count, bytes / (1 << 30), memory / (1 << 30));
    TORCH_CHECK(false, msg);
  }
}

}  // namespace gd::openai
