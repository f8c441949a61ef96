// Helpers to build models as TorchScript modules (torch::jit::Module) from C++.
//
// A model built here is an ordinary script module: `save()` writes a file that Python's
// `torch.jit.load` runs, and its parameters carry the dotted names of the Python
// reference's state_dict (`downs.0.1.block1.proj.weight`). Every module gets a class of
// its own (mangled to be unique in the builder's CompilationUnit), a `training` attribute
// like nn.Module, and methods written in TorchScript source through `Module::define`.
// Numbered children ("0", "1", ...) mirror nn.Sequential / nn.ModuleList; TorchScript
// source reaches them as `getattr(self.downs, "0").forward(x)`.
//
// Parameters are initialized like PyTorch's defaults with the global at:: generator, so
// `torch.manualSeed(n)` makes a freshly built model reproducible.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gd {

/// How RMSNorm rescales its L2-normalized channels.
/// Width: by sqrt(x.shape[-1]), the quirk of the reference Unet (keep it for its weights).
/// Channels: by sqrt(x.shape[1]), the usual RMSNorm (the classifier uses it).
enum class RmsScale { Width, Channels };

/// Formats a double as a TorchScript float literal that parses back to the same value.
std::string script_float(double value);

/// Replaces every `$name` in `source` by its value (longest names first), so that module
/// sources can be written as raw-string templates.
std::string fill_source(std::string source,
                        std::vector<std::pair<std::string, std::string>> values);

/// Builds modules in one CompilationUnit (a fresh one unless given).
class JitBuilder {
 public:
  JitBuilder();
  explicit JitBuilder(std::shared_ptr<torch::jit::CompilationUnit> unit);

  const std::shared_ptr<torch::jit::CompilationUnit>& unit() const { return unit_; }

  /// An empty module of class `__torch__.gd.<kind>` (mangled when taken), training = true.
  torch::jit::Module module(const std::string& kind) const;

  /// Children registered as "0", "1", ...; forward(x) runs them in order (nn.Sequential).
  torch::jit::Module sequential(const std::vector<torch::jit::Module>& children) const;
  /// Children registered as "0", "1", ...; no forward (nn.ModuleList).
  torch::jit::Module module_list(const std::vector<torch::jit::Module>& children) const;

  /// nn.Conv2d(in, out, kernel, padding=kernel//2, bias=bias): `weight`, `bias`.
  torch::jit::Module conv2d(int64_t in, int64_t out, int64_t kernel, bool bias = true) const;
  /// nn.Linear(in, out, bias=bias): `weight` (out, in), `bias`.
  torch::jit::Module linear(int64_t in, int64_t out, bool bias = true) const;
  /// RMSNorm over channels: `g` (1, dim, 1, 1), ones; F.normalize(x, dim=1) * g * sqrt(n).
  torch::jit::Module rms_norm(int64_t dim, RmsScale scale = RmsScale::Width) const;
  /// Parameterless activations and reshapes.
  torch::jit::Module silu() const;
  torch::jit::Module gelu() const;
  torch::jit::Module pixel_unshuffle(int64_t factor) const;
  torch::jit::Module upsample_nearest(int64_t factor) const;
  /// Fixed sinusoidal embedding of timesteps (B,) -> (B, dim); dim even, >= 4.
  torch::jit::Module sinusoidal_pos_emb(int64_t dim) const;
  /// Learned (or random, frozen) Fourier features: `weights` (dim/2,), randn;
  /// (B,) -> (B, dim + 1).
  torch::jit::Module random_or_learned_sinusoidal_pos_emb(int64_t dim, bool is_random) const;

 private:
  std::shared_ptr<torch::jit::CompilationUnit> unit_;
};

/// Registers `children` on `parent` under the names "0", "1", ...
void register_numbered(torch::jit::Module& parent,
                       const std::vector<torch::jit::Module>& children);

/// Registers a float parameter; requires_grad as nn.Parameter would have it.
void add_parameter(torch::jit::Module& module, const std::string& name, at::Tensor value,
                   bool requires_grad = true);

/// PyTorch's default weight init: kaiming_uniform_(a=sqrt(5)), i.e. U(-b, b) with
/// b = sqrt(1/3) * sqrt(3/fan_in).
at::Tensor kaiming_uniform(at::IntArrayRef shape, int64_t fan_in);
/// PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
at::Tensor fan_in_uniform(at::IntArrayRef shape, int64_t fan_in);

/// Plain attributes that tell how a module was built (readable from Python as `m.name`).
void add_int_attribute(torch::jit::Module& module, const std::string& name, int64_t value);
void add_bool_attribute(torch::jit::Module& module, const std::string& name, bool value);
void add_float_attribute(torch::jit::Module& module, const std::string& name, double value);
void add_string_attribute(torch::jit::Module& module, const std::string& name,
                          const std::string& value);
void add_int_list_attribute(torch::jit::Module& module, const std::string& name,
                            const std::vector<int64_t>& value);

/// Copies tensors into the module's parameters and buffers of the same dotted names
/// (state_dict semantics), without recording autograd. Shapes must match. With `strict`,
/// the names must be exactly the module's. The error leads with the first difference in the
/// module's order (a shape, with both shapes, or a missing name), then lists missing and
/// unexpected names with their shapes. Nothing is copied unless everything matches.
/// Values are converted to each parameter's dtype and device.
void load_named_tensors(torch::jit::Module& module,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        bool strict = true);

}  // namespace gd
