#include "models/jit_builder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace gd {

namespace tj = torch::jit;

std::string script_float(double value) {
  TORCH_CHECK(std::isfinite(value), "script_float: not a finite number: ", value);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  std::string s(buf);
  // "2" would be read as an int: keep it a float literal.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string fill_source(std::string source,
                        std::vector<std::pair<std::string, std::string>> values) {
  // Longest names first, so that `$dim_head` is not eaten by `$dim`.
  std::sort(values.begin(), values.end(), [](const auto& a, const auto& b) {
    return a.first.size() > b.first.size();
  });
  for (const auto& [name, value] : values) {
    const std::string key = "$" + name;
    for (size_t pos = source.find(key); pos != std::string::npos;
         pos = source.find(key, pos + value.size())) {
      source.replace(pos, key.size(), value);
    }
  }
  TORCH_INTERNAL_ASSERT(source.find('$') == std::string::npos,
                        "fill_source: unfilled placeholder in\n", source);
  return source;
}

JitBuilder::JitBuilder() : unit_(std::make_shared<tj::CompilationUnit>()) {}

JitBuilder::JitBuilder(std::shared_ptr<tj::CompilationUnit> unit) : unit_(std::move(unit)) {
  TORCH_CHECK(unit_, "JitBuilder: null CompilationUnit");
}

tj::Module JitBuilder::module(const std::string& kind) const {
  // The `__torch__` prefix is what Python's importer expects of module classes.
  tj::Module m(c10::QualifiedName("__torch__.gd." + kind), unit_, /*shouldMangle=*/true);
  // Module::train() and Python's .eval() expect every module to have it.
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

void register_numbered(tj::Module& parent, const std::vector<tj::Module>& children) {
  for (size_t i = 0; i < children.size(); ++i) {
    parent.register_module(std::to_string(i), children[i]);
  }
}

tj::Module JitBuilder::sequential(const std::vector<tj::Module>& children) const {
  TORCH_CHECK(!children.empty(), "JitBuilder::sequential: no children");
  tj::Module m = module("Sequential");
  register_numbered(m, children);
  std::ostringstream src;
  src << "def forward(self, x: Tensor) -> Tensor:\n";
  for (size_t i = 0; i < children.size(); ++i) {
    src << "    x = getattr(self, \"" << i << "\").forward(x)\n";
  }
  src << "    return x\n";
  m.define(src.str());
  return m;
}

tj::Module JitBuilder::module_list(const std::vector<tj::Module>& children) const {
  tj::Module m = module("ModuleList");
  register_numbered(m, children);
  return m;
}

void add_parameter(tj::Module& module, const std::string& name, at::Tensor value,
                   bool requires_grad) {
  value = value.detach();
  value.set_requires_grad(requires_grad);
  module.register_parameter(name, std::move(value), /*is_buffer=*/false);
}

at::Tensor kaiming_uniform(at::IntArrayRef shape, int64_t fan_in) {
  TORCH_CHECK(fan_in > 0, "kaiming_uniform: fan_in must be positive, got ", fan_in);
  // Same arithmetic as torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)).
  const double a = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1 + a * a));
  const double stdev = gain / std::sqrt(static_cast<double>(fan_in));
  const double bound = std::sqrt(3.0) * stdev;
  return at::empty(shape, at::kFloat).uniform_(-bound, bound);
}

at::Tensor fan_in_uniform(at::IntArrayRef shape, int64_t fan_in) {
  TORCH_CHECK(fan_in > 0, "fan_in_uniform: fan_in must be positive, got ", fan_in);
  const double bound = 1 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound);
}

tj::Module JitBuilder::conv2d(int64_t in, int64_t out, int64_t kernel, bool bias) const {
  TORCH_CHECK(in > 0 && out > 0 && kernel > 0, "Conv2d: channels and kernel must be positive, got ",
              in, ", ", out, ", ", kernel);
  tj::Module m = module("Conv2d");
  const int64_t fan_in = in * kernel * kernel;
  add_parameter(m, "weight", kaiming_uniform({out, in, kernel, kernel}, fan_in));
  if (bias) add_parameter(m, "bias", fan_in_uniform({out}, fan_in));
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.conv2d(x, self.weight, $bias, [1, 1], [$pad, $pad], [1, 1], 1)
)TS",
                       {{"bias", bias ? "self.bias" : "None"},
                        {"pad", std::to_string(kernel / 2)}}));
  add_int_attribute(m, "in_channels", in);
  add_int_attribute(m, "out_channels", out);
  return m;
}

tj::Module JitBuilder::linear(int64_t in, int64_t out, bool bias) const {
  TORCH_CHECK(in > 0 && out > 0, "Linear: features must be positive, got ", in, ", ", out);
  tj::Module m = module("Linear");
  add_parameter(m, "weight", kaiming_uniform({out, in}, in));
  if (bias) add_parameter(m, "bias", fan_in_uniform({out}, in));
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.linear(x, self.weight, $bias)
)TS",
                       {{"bias", bias ? "self.bias" : "None"}}));
  add_int_attribute(m, "in_features", in);
  add_int_attribute(m, "out_features", out);
  return m;
}

tj::Module JitBuilder::rms_norm(int64_t dim, RmsScale scale) const {
  TORCH_CHECK(dim > 0, "RMSNorm: dim must be positive, got ", dim);
  tj::Module m = module("RMSNorm");
  add_parameter(m, "g", at::ones({1, dim, 1, 1}, at::kFloat));
  // F.normalize(x, dim=1) spelled out: x / max(||x||_2, 1e-12), then * g * sqrt(n). The norm
  // is sqrt(sum(x^2)): linalg_vector_norm over the channel dim of NCHW was 17x slower, a
  // quarter of the Unet's time on CPU. g * sqrt(n) is one small factor: one pass over x less.
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    denom = x.square().sum([1], True).sqrt().clamp_min(1e-12)
    return x / denom * (self.g * (x.size($axis) ** 0.5))
)TS",
                       {{"axis", scale == RmsScale::Width ? "-1" : "1"}}));
  return m;
}

tj::Module JitBuilder::silu() const {
  tj::Module m = module("SiLU");
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return torch.silu(x)\n");
  return m;
}

tj::Module JitBuilder::gelu() const {
  tj::Module m = module("GELU");
  m.define("def forward(self, x: Tensor) -> Tensor:\n    return torch.gelu(x)\n");
  return m;
}

tj::Module JitBuilder::pixel_unshuffle(int64_t factor) const {
  TORCH_CHECK(factor > 0, "PixelUnshuffle: factor must be positive, got ", factor);
  tj::Module m = module("PixelUnshuffle");
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.pixel_unshuffle(x, $f)
)TS",
                       {{"f", std::to_string(factor)}}));
  return m;
}

tj::Module JitBuilder::upsample_nearest(int64_t factor) const {
  TORCH_CHECK(factor > 0, "Upsample: factor must be positive, got ", factor);
  tj::Module m = module("UpsampleNearest");
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    return torch.upsample_nearest2d(x, None, [$f, $f])
)TS",
                       {{"f", script_float(static_cast<double>(factor))}}));
  return m;
}

tj::Module JitBuilder::sinusoidal_pos_emb(int64_t dim) const {
  TORCH_CHECK(dim >= 4 && dim % 2 == 0,
              "SinusoidalPosEmb: dim must be even and at least 4, got ", dim);
  tj::Module m = module("SinusoidalPosEmb");
  const int64_t half = dim / 2;
  // Python computes math.log(10000) / (half - 1) in double; so do we, then bake it in.
  const double step = std::log(10000.0) / static_cast<double>(half - 1);
  m.define(fill_source(R"TS(
def forward(self, x: Tensor) -> Tensor:
    emb = torch.exp(torch.arange($half, device=x.device) * $neg_step)
    emb = x[:, None] * emb[None, :]
    return torch.cat([emb.sin(), emb.cos()], -1)
)TS",
                       {{"half", std::to_string(half)}, {"neg_step", script_float(-step)}}));
  add_int_attribute(m, "dim", dim);
  return m;
}

tj::Module JitBuilder::random_or_learned_sinusoidal_pos_emb(int64_t dim, bool is_random) const {
  TORCH_CHECK(dim >= 2 && dim % 2 == 0,
              "RandomOrLearnedSinusoidalPosEmb: dim must be a positive even integer, got ", dim);
  tj::Module m = module("RandomOrLearnedSinusoidalPosEmb");
  add_parameter(m, "weights", at::randn({dim / 2}, at::kFloat), /*requires_grad=*/!is_random);
  // Same order of operations as the reference: t * w * 2 * pi.
  m.define(R"TS(
def forward(self, x: Tensor) -> Tensor:
    x = x[:, None]
    freqs = x * self.weights[None, :] * 2 * 3.141592653589793
    fouriered = torch.cat([freqs.sin(), freqs.cos()], -1)
    return torch.cat([x.to(fouriered.dtype), fouriered], -1)
)TS");
  add_int_attribute(m, "dim", dim);
  add_bool_attribute(m, "is_random", is_random);
  return m;
}

void add_int_attribute(tj::Module& module, const std::string& name, int64_t value) {
  module.register_attribute(name, c10::IntType::get(), value);
}

void add_bool_attribute(tj::Module& module, const std::string& name, bool value) {
  module.register_attribute(name, c10::BoolType::get(), value);
}

void add_float_attribute(tj::Module& module, const std::string& name, double value) {
  module.register_attribute(name, c10::FloatType::get(), value);
}

void add_string_attribute(tj::Module& module, const std::string& name, const std::string& value) {
  module.register_attribute(name, c10::StringType::get(), value);
}

void add_int_list_attribute(tj::Module& module, const std::string& name,
                            const std::vector<int64_t>& value) {
  module.register_attribute(name, c10::ListType::ofInts(), c10::List<int64_t>(value));
}

void load_named_tensors(tj::Module& module,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        bool strict) {
  // The model's names in its own order (the order of Python's state_dict), so that the first
  // difference reported is the first layer where a checkpoint and the model's options part.
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) targets.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) targets.emplace_back(b.name, b.value);
  std::map<std::string, size_t> target_index;
  for (size_t i = 0; i < targets.size(); i++) target_index.emplace(targets[i].first, i);
  std::map<std::string, const at::Tensor*> source;
  for (const auto& [name, value] : tensors) {
    TORCH_CHECK(value.defined(), "load_named_tensors: '", name, "' is an undefined tensor");
    source[name] = &value;
  }
  auto shape = [](const at::Tensor& t) {
    std::ostringstream s;
    s << t.sizes();
    return s.str();
  };

  std::vector<std::string> missing, unexpected, misshaped;
  std::string first;  // the first difference in the model's order, as the error's headline
  for (const auto& [name, value] : targets) {
    auto it = source.find(name);
    if (it == source.end()) {
      if (!strict) continue;
      missing.push_back(name + " " + shape(value));
      if (first.empty()) first = "names do not match the model's.";
    } else if (it->second->sizes() != value.sizes()) {
      misshaped.push_back(name);
      if (first.empty()) {
        first = "shape of '" + name + "' is " + shape(*it->second) + " in the source but " + shape(value) + " in the model";
      }
    }
  }
  if (strict) {
    for (const auto& [name, value] : tensors) {
      if (!target_index.count(name)) unexpected.push_back(name + " " + shape(value));
    }
    if (first.empty() && !unexpected.empty()) first = "names do not match the model's.";
  }
  if (!first.empty()) {
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " in all)";
      return s;
    };
    std::string msg = "load_named_tensors: " + first;
    const bool names_first = first.rfind("names", 0) == 0;
    if (!names_first && (misshaped.size() > 1 || !missing.empty() || !unexpected.empty())) {
      msg += ". Other differences:";
      if (misshaped.size() > 1) msg += " " + std::to_string(misshaped.size() - 1) + " more shapes differ.";
    }
    if (!missing.empty()) msg += " Missing: " + join(missing) + ".";
    if (!unexpected.empty()) msg += " Unexpected: " + join(unexpected) + ".";
    if (names_first && !misshaped.empty()) msg += " Shapes differ: " + join(misshaped) + ".";
    TORCH_CHECK(false, msg);
  }
  at::NoGradGuard no_grad;
  for (const auto& [name, value] : tensors) {
    auto it = target_index.find(name);
    if (it != target_index.end()) targets[it->second].second.copy_(value);
  }
}

}  // namespace gd
