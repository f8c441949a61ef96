#include "diffusion/block_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <mutex>
#include <optional>
#include <string>

#include "diffusion/autocast_scope.h"

namespace gd {

namespace {

namespace ag = torch::autograd;

// The generators a block's dropout can draw from: the CPU's, and the inputs' device's.
std::vector<at::Generator> block_generators(const at::Device& device) {
  std::vector<at::Generator> gens{at::globalContext().defaultGenerator(at::kCPU)};
  if (device.type() != at::kCPU) gens.push_back(at::globalContext().defaultGenerator(device));
  return gens;
}

at::Tensor generator_state(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator& gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Sets the generators to the given states for the scope and puts back their current ones
// after, so the recomputation neither sees nor disturbs the draws made since the forward.
class RngFork {
 public:
  RngFork(std::vector<at::Generator> gens, const std::vector<at::Tensor>& states) : gens_(std::move(gens)) {
    for (size_t i = 0; i < gens_.size(); ++i) {
      restore_.push_back(generator_state(gens_[i]));
      set_generator_state(gens_[i], states.at(i));
    }
  }
  ~RngFork() {
    for (size_t i = 0; i < gens_.size(); ++i) set_generator_state(gens_[i], restore_[i]);
  }
  RngFork(const RngFork&) = delete;
  RngFork& operator=(const RngFork&) = delete;

 private:
  std::vector<at::Generator> gens_;
  std::vector<at::Tensor> restore_;
};

std::vector<at::Tensor> block_parameters(const torch::jit::Module& block) {
  std::vector<at::Tensor> out;
  for (const auto& p : block.parameters(/*recurse=*/true)) out.push_back(p);
  return out;
}

at::Tensor run_block(const torch::jit::Module& block, const std::vector<at::Tensor>& inputs) {
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  torch::jit::Module handle = block;  // forward() is not const
  c10::IValue out = handle.forward(std::move(args));
  TORCH_CHECK(out.isTensor(), "gradient checkpointing: a block returned ", out.tagKind(), ", expected a tensor");
  return out.toTensor();
}

struct BlockCheckpoint : ag::Function<BlockCheckpoint> {
  // `params` are the block's own parameters, passed so that the node has edges to them; the
  // block reads them itself.
  static at::Tensor forward(ag::AutogradContext* ctx, const torch::jit::Module& block, at::TensorList inputs,
                            at::TensorList params) {
    const at::Device device = inputs.front().device();
    c10::List<at::Tensor> states;
    for (at::Generator& gen : block_generators(device)) states.push_back(generator_state(gen));
    ctx->saved_data["block"] = block._ivalue();
    ctx->saved_data["rng"] = states;
    ctx->saved_data["n_inputs"] = static_cast<int64_t>(inputs.size());
    ctx->saved_data["n_params"] = static_cast<int64_t>(params.size());
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(device.type());
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(at::autocast::get_autocast_dtype(device.type()));
    ctx->saved_data["optimize"] = torch::jit::getGraphExecutorOptimize();
    ctx->save_for_backward(inputs.vec());
    return run_block(block, inputs.vec());  // Function::apply runs this with grad mode off
  }

  static ag::variable_list backward(ag::AutogradContext* ctx, ag::variable_list grad_outputs) {
    const torch::jit::Module block(ctx->saved_data["block"].toObject());
    const auto n_inputs = static_cast<size_t>(ctx->saved_data["n_inputs"].toInt());
    const std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const std::vector<at::Tensor> params = block_parameters(block);
    TORCH_CHECK(static_cast<int64_t>(params.size()) == ctx->saved_data["n_params"].toInt(),
                "gradient checkpointing: the block's parameters changed between forward and backward");

    std::vector<at::Tensor> inputs;
    std::vector<at::Tensor> targets;  // what needs a gradient, inputs then parameters
    for (size_t i = 0; i < n_inputs; ++i) {
      at::Tensor x = saved[i].detach();
      if (ctx->needs_input_grad(i)) {
        x.requires_grad_(true);
        targets.push_back(x);
      }
      inputs.push_back(x);
    }
    for (size_t j = 0; j < params.size(); ++j) {
      if (ctx->needs_input_grad(n_inputs + j)) targets.push_back(params[j]);
    }

    at::Tensor out;
    {
      const at::Device device = inputs.front().device();
      std::vector<at::Tensor> states = ctx->saved_data["rng"].toTensorVector();
      RngFork rng(block_generators(device), states);
      // Backward runs outside the forward's autocast scope (on CUDA, on another thread): the
      // forward's setting is carried over. A fresh scope starts with an empty cast cache, so the
      // weights' casts are made again, this time recorded by autograd.
      std::optional<AutocastScope> autocast;
      if (ctx->saved_data["autocast"].toBool()) {
        autocast.emplace(device.type(), static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
      }
      torch::jit::GraphOptimizerEnabledGuard optimize(ctx->saved_data["optimize"].toBool());
      at::AutoGradMode grad_on(true);
      out = run_block(block, inputs);
    }
    const ag::variable_list grads =
        ag::grad({out}, targets, {grad_outputs.at(0)}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);

    // One entry per forward argument's tensor, after an undefined one for the block.
    ag::variable_list result{at::Tensor()};
    size_t k = 0;
    for (size_t i = 0; i < n_inputs + params.size(); ++i) {
      result.push_back(ctx->needs_input_grad(i) ? grads.at(k++) : at::Tensor());
    }
    return result;
  }
};

}  // namespace

at::Tensor checkpointed_forward(const torch::jit::Module& block, const std::vector<at::Tensor>& inputs) {
  TORCH_CHECK(!inputs.empty(), "gradient checkpointing: a block needs at least one input");
  if (!at::GradMode::is_enabled()) return run_block(block, inputs);
  const std::vector<at::Tensor> params = block_parameters(block);
  return BlockCheckpoint::apply(block, at::TensorList(inputs), at::TensorList(params));
}

}  // namespace gd
