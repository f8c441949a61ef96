#include "diffusion/openai_classifier_step.h"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <filesystem>

#include "diffusion/openai_checkpoint_files.h"
#include "diffusion/training.h"
#include "diffusion/openai_checkpointed.h"

namespace gd {

namespace {

// Their compute_top_k(reduction="none"): 1 where the label is among the k largest logits.
at::Tensor top_k_hits(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  const at::Tensor top = std::get<1>(logits.detach().topk(k, -1));
  return top.eq(labels.unsqueeze(1)).to(at::kFloat).sum(-1);
}

}  // namespace

OpenaiClassifierStep::OpenaiClassifierStep(torch::jit::Module classifier, Schedule schedule, OpenaiClassifierTrainOptions options,
                                           std::shared_ptr<ScheduleSampler> sampler, at::Generator generator)
    : classifier_(std::move(classifier)),
      schedule_(std::move(schedule)),
      options_(options),
      sampler_(std::move(sampler)),
      generator_(std::move(generator)),
      mp_(model_parameters(classifier_), options_.fp16),
      params_(mp_.master()),
      adam_(params_, /*adamw=*/true),
      hyper_{options_.lr, 0.9, 0.999, 1e-8, options_.weight_decay} {
  std::ostringstream msg;
  if (!(options_.lr > 0) || !std::isfinite(options_.lr)) msg << "lr must be a positive number; got " << options_.lr;
  else if (!(options_.weight_decay >= 0)) msg << "weight_decay must be >= 0; got " << options_.weight_decay;
  else if (options_.iterations < 1) msg << "iterations must be >= 1; got " << options_.iterations;
  else if (params_.empty()) msg << "the classifier has no parameters; nothing to train";
  else if (!sampler_ || sampler_->timesteps() != schedule_.timesteps)
    msg << "the schedule sampler must cover the diffusion's " << schedule_.timesteps << " steps";
  else if (!data_parallel_problem(options_.parallel).empty()) msg << data_parallel_problem(options_.parallel);
  if (msg.tellp() > 0) throw std::invalid_argument(msg.str());
}

void OpenaiClassifierStep::forward_backward_log(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t_given,
                                                const at::Tensor& noise_given, const std::string& prefix, MeanLog& log) {
  if (!x0.defined() || x0.dim() != 4 || x0.size(0) < 1) throw std::invalid_argument("the batch must be images [B, C, H, W] with B >= 1");
  const int64_t batch = x0.size(0);
  if (!y.defined() || y.dim() != 1 || y.size(0) != batch) {
    throw std::invalid_argument("y must be the batch's class labels, int64 [" + std::to_string(batch) + "]");
  }
  if (!options_.noised && (t_given.defined() || noise_given.defined())) {
    throw std::invalid_argument("t and noise are for a noised classifier; with noised false x is not noised and t is 0");
  }
  if (t_given.defined() && (t_given.dim() != 1 || t_given.size(0) != batch)) {
    throw std::invalid_argument("t must be int64 [" + std::to_string(batch) + "]");
  }
  if (noise_given.defined() && !noise_given.sizes().equals(x0.sizes())) throw std::invalid_argument("noise must have the batch's shape");
  const at::Tensor labels = y.to(x0.device(), at::kLong);
  at::Tensor t, x = x0;
  if (options_.noised) {
    t = t_given.defined() ? t_given.to(x0.device()) : sampler_->sample(batch, generator_).first.to(x0.device());
    check_training_batch(x0, t);
    const at::Tensor noise = noise_given.defined() ? noise_given.to(x0.device(), x0.scalar_type())
                                                   : at::randn(x0.sizes(), generator_, at::TensorOptions().dtype(at::kFloat)).to(x0.device(), x0.scalar_type());
    x = q_sample(schedule_.to(x0.device()), x0, t, noise);
  } else {
    t = at::zeros({batch}, x0.options().dtype(at::kLong));
  }
  const int64_t micro = options_.microbatch > 0 ? std::min(options_.microbatch, batch) : batch;
  bool checked = false;
  for (int64_t i = 0; i < batch; i += micro) {
    const int64_t n = std::min(micro, batch - i);
    const at::Tensor sub_t = t.narrow(0, i, n), sub_y = labels.narrow(0, i, n);
    c10::IValue out = openai::forward_net(classifier_, {x.narrow(0, i, n), sub_t});  // use_checkpoint
    if (!out.isTensor() || out.toTensor().dim() != 2) throw std::runtime_error("the classifier must return logits [B, classes]");
    const at::Tensor logits = out.toTensor();
    if (!checked) {
      check_class_labels(label_range(labels), logits.size(1));
      checked = true;
    }
    const at::Tensor loss = at::cross_entropy_loss(logits, sub_y, /*weight=*/{}, at::Reduction::None);
    std::vector<std::pair<std::string, at::Tensor>> logged{{prefix + "_loss", loss.detach()},
                                                           {prefix + "_acc@1", top_k_hits(logits, sub_y, 1)}};
    // Their topk(5) needs five classes; with fewer they could not run at all.
    if (logits.size(1) >= 5) logged.emplace_back(prefix + "_acc@5", top_k_hits(logits, sub_y, 5));
    log_loss_dict(log, logged, sub_t, schedule_.timesteps);
    const at::Tensor mean = loss.mean();
    if (mean.requires_grad()) {
      const double value = mean.item<double>();
      // With use_fp16 a non-finite loss overflows the gradients and the step is skipped, as theirs.
      if (!std::isfinite(value) && !mp_.use_fp16() && options_.parallel.active()) {
        if (bad_loss_ == 0) bad_loss_ = value;
      } else if (!std::isfinite(value) && !mp_.use_fp16()) {
        throw std::runtime_error("the loss is not finite (" + std::to_string(value) + ") at step " + std::to_string(step_ + 1) +
                                 "; lower lr or check the data");
      }
      mp_.scale(mean * (static_cast<double>(n) / static_cast<double>(batch))).backward();
    }
  }
}

StepLog OpenaiClassifierStep::run(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t, const at::Tensor& noise) {
  // As OpenaiTrainStep: the profiling executor would round a module's backward differently after its first calls.
  torch::jit::GraphOptimizerEnabledGuard no_jit_optimizer(false);
  c10::AutoGradMode grad_on(true);
  const bool was_training = classifier_.is_training();
  classifier_.train(true);
  // set_annealed_lr before the step, at the fraction of iterations done (resumed steps counted);
  // without it the lr stays the optimizer's, a resumed one's as loaded.
  AdamHyper hyper = hyper_;
  const int64_t done = step_ + resume_step_;
  if (options_.anneal_lr) hyper.lr = options_.lr * (1.0 - static_cast<double>(done) / static_cast<double>(options_.iterations));
  MeanLog log;
  const DataParallel& par = options_.parallel;
  try {
    if (par.active() && !synced_) {
      // As DDP's construction (their sync_params): every rank starts from rank 0's weights.
      at::NoGradGuard no_grad;
      par.broadcast(params_);
      mp_.model_from_master();
      synced_ = true;
    }
    mp_.zero_grad();
    adam_.zero_grad();
    bad_loss_ = 0;
    forward_backward_log(x0, y, t, noise, "train", log);
    mp_.grads_to_master();
    if (par.active()) average_gradients_or_throw(params_, par, bad_loss_, step_ + 1);
  } catch (...) {
    classifier_.train(was_training);
    mp_.zero_grad();
    adam_.zero_grad();
    throw;
  }
  classifier_.train(was_training);
  const bool took_step = mp_.unscale_or_skip(log);
  adam_.set_hyper(hyper);
  hyper_ = hyper;
  if (took_step) {
    at::NoGradGuard no_grad;
    adam_.step();
    mp_.finish_step();
  }
  window_.add(log);
  StepLog out;
  log.into(out);
  last_counts_ = {{"step", static_cast<double>(done)}, {"samples", static_cast<double>((done + 1) * x0.size(0) * par.world_size)}};
  out.insert(last_counts_.begin(), last_counts_.end());
  ++step_;
  return out;
}

StepLog OpenaiClassifierStep::dump_log() {
  StepLog out = last_counts_;
  window_.into(out);
  window_.clear();
  return out;
}

void OpenaiClassifierStep::resume(const std::string& model_path) {
  if (step_ > 0) throw std::invalid_argument("resume_checkpoint: this trainer has taken steps already; resume a fresh one");
  std::vector<std::string> names;
  for (const auto& p : classifier_.named_parameters(true)) names.push_back(p.name);
  const int64_t number = parse_resume_step(model_path);
  const std::string opt = (std::filesystem::path(model_path).parent_path() / ("opt" + openai_step_name(number) + ".pt")).string();
  load_model_file(classifier_, model_path);
  // use_fp16: the masters take the file's float32 weights, not the model's float16 roundings.
  if (mp_.use_fp16()) load_named_params(model_path, names, params_);
  if (std::filesystem::exists(opt)) hyper_ = load_adamw_state(opt, adam_, names, mp_.flat_groups());
  resume_step_ = number;
}

std::vector<std::string> OpenaiClassifierStep::save(const std::string& dir) const {
  if (step_ == 0) throw std::invalid_argument("save: no step taken yet (their save_model names the files by the last step)");
  const std::string n = openai_step_name(step_ - 1 + resume_step_);
  const std::string model = (std::filesystem::path(dir) / ("model" + n + ".pt")).string();
  const std::string opt = (std::filesystem::path(dir) / ("opt" + n + ".pt")).string();
  checkpoints::WriteTorchSave(model, openai_state_dict(classifier_, params_));
  checkpoints::WriteTorchSave(opt, adamw_state_dict(adam_, hyper_, mp_.flat_groups()));
  return {model, opt};
}

StepLog OpenaiClassifierStep::evaluate(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t, const at::Tensor& noise) {
  at::NoGradGuard no_grad;
  const bool was_training = classifier_.is_training();
  classifier_.train(false);
  MeanLog log;
  try {
    forward_backward_log(x0, y, t, noise, "val", log);
  } catch (...) {
    classifier_.train(was_training);
    throw;
  }
  classifier_.train(was_training);
  window_.add(log);
  StepLog out;
  log.into(out);
  return out;
}

}  // namespace gd
