#include "diffusion/openai_checkpointed.h"

#include <ATen/ATen.h>

#include <string>

#include "diffusion/block_checkpoint.h"

namespace gd::openai {

namespace {

torch::jit::Module child(const torch::jit::Module& m, const std::string& name) {
  return m.attr(name).toModule();
}

// The blocks their use_checkpoint wraps: ResBlock (with resblock_updown, the resampling ones too)
// and AttentionBlock. Class names are mangled only in their qualifier.
bool checkpointed_kind(const torch::jit::Module& block) {
  const std::string kind = block.type()->name()->name();
  return kind == "ResBlock" || kind == "AttentionBlock";
}

bool takes_emb(const torch::jit::Module& block) {
  // forward(self, x, emb): ResBlock; forward(self, x): everything else in a TimestepEmbedSequential.
  return block.get_method("forward").function().getSchema().arguments().size() == 3;
}

// A TimestepEmbedSequential (make_timestep_sequential): its children in order, emb to those
// that take it.
at::Tensor run_sequential(const torch::jit::Module& seq, at::Tensor h, const at::Tensor& emb) {
  for (const torch::jit::Module& block : seq.children()) {
    std::vector<at::Tensor> inputs{h};
    if (takes_emb(block)) inputs.push_back(emb);
    if (checkpointed_kind(block)) {
      h = checkpointed_forward(block, inputs);
    } else {
      torch::jit::Module handle = block;
      h = handle.forward(std::vector<c10::IValue>(inputs.begin(), inputs.end())).toTensor();
    }
  }
  return h;
}

// unet.py's UNetModel.forward, as openai_unet.cc's forward source.
at::Tensor walk_unet(torch::jit::Module& m, const std::vector<c10::IValue>& inputs, at::ScalarType torso) {
  const at::Tensor x = inputs.at(0).toTensor();
  const at::Tensor emb = m.get_method("embed")(inputs).toTensor();
  at::Tensor h = x.to(torso);
  std::vector<at::Tensor> skips;
  for (const torch::jit::Module& block : child(m, "input_blocks").children()) {
    h = run_sequential(block, h, emb);
    skips.push_back(h);
  }
  h = run_sequential(child(m, "middle_block"), h, emb);
  for (const torch::jit::Module& block : child(m, "output_blocks").children()) {
    h = run_sequential(block, at::cat({h, skips.back()}, 1), emb);
    skips.pop_back();
  }
  return child(m, "out").forward({h.to(x.scalar_type())}).toTensor();
}

// EncoderUNetModel.forward, as openai_encoder.cc's forward source: the spatial pools read the
// mean of every block's output.
at::Tensor walk_encoder(torch::jit::Module& m, const std::vector<c10::IValue>& inputs, at::ScalarType torso) {
  const at::Tensor x = inputs.at(0).toTensor();
  const at::Tensor emb = m.get_method("embed")(inputs).toTensor();
  const std::string pool = m.attr("pool").toStringRef();
  const bool spatial = pool == "spatial" || pool == "spatial_v2";
  at::Tensor h = x.to(torso);
  std::vector<at::Tensor> means;
  for (const torch::jit::Module& block : child(m, "input_blocks").children()) {
    h = run_sequential(block, h, emb);
    if (spatial) means.push_back(h.to(x.scalar_type()).mean({2, 3}));
  }
  h = run_sequential(child(m, "middle_block"), h, emb);
  if (spatial) {
    means.push_back(h.to(x.scalar_type()).mean({2, 3}));
    return child(m, "out").forward({at::cat(means, -1)}).toTensor();
  }
  return child(m, "out").forward({h.to(x.scalar_type())}).toTensor();
}

}  // namespace

bool checkpoints_now(const torch::jit::Module& model) {
  return at::GradMode::is_enabled() && model.is_training() && model.hasattr("use_checkpoint") &&
         model.attr("use_checkpoint").isBool() && model.attr("use_checkpoint").toBool() &&
         model.hasattr("gd_kind") && model.find_method("embed").has_value();
}

c10::IValue forward_net(torch::jit::Module& model, std::vector<c10::IValue> inputs) {
  if (!checkpoints_now(model)) return model.forward(std::move(inputs));
  const std::string kind = model.attr("gd_kind").toStringRef();
  // The torso's dtype, as forward's x.to(input_blocks[0][0].weight.dtype): float16 with use_fp16.
  const at::ScalarType torso =
      child(child(child(model, "input_blocks"), "0"), "0").attr("weight").toTensor().scalar_type();
  if (kind == "openai_unet") return walk_unet(model, inputs, torso);
  if (kind == "openai_encoder") return walk_encoder(model, inputs, torso);
  return model.forward(std::move(inputs));
}

}  // namespace gd::openai
