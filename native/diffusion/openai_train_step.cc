#include "diffusion/openai_train_step.h"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gd {

std::vector<at::Tensor> model_parameters(const torch::jit::Module& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) out.push_back(p.value);
  return out;
}

void log_loss_dict(MeanLog& log, const std::vector<std::pair<std::string, at::Tensor>>& terms, const at::Tensor& t,
                   int64_t timesteps) {
  const at::Tensor ts = t.to(at::kCPU, at::kLong).contiguous();
  for (const auto& [key, values] : terms) {
    const at::Tensor v = values.detach().to(at::kCPU, at::kDouble).contiguous();
    log.add(key, values.detach().mean().item<double>());
    for (int64_t i = 0; i < v.numel(); ++i) {
      const int64_t quartile = 4 * ts.data_ptr<int64_t>()[i] / timesteps;
      log.add(key + "_q" + std::to_string(quartile), v.data_ptr<double>()[i]);
    }
  }
}

std::pair<double, double> grad_and_param_norm(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  double grad_sq = 0, param_sq = 0;
  for (const auto& p : params) {
    const double pn = p.norm(2).item<double>();
    param_sq += pn * pn;
    if (p.grad().defined()) {
      const double gn = p.grad().norm(2).item<double>();
      grad_sq += gn * gn;
    }
  }
  return {std::sqrt(grad_sq), std::sqrt(param_sq)};
}

OpenaiTrainStep::OpenaiTrainStep(Denoiser denoiser, Schedule schedule, LossType loss_type, OpenaiTrainOptions options,
                                 std::shared_ptr<ScheduleSampler> sampler, at::Generator generator)
    : denoiser_(std::move(denoiser)),
      schedule_(std::move(schedule)),
      loss_type_(loss_type),
      options_(std::move(options)),
      sampler_(std::move(sampler)),
      generator_(std::move(generator)),
      mp_(model_parameters(denoiser_.module()), options_.fp16),
      params_(mp_.master()),
      adam_(params_, /*adamw=*/true),
      hyper_{options_.lr, 0.9, 0.999, 1e-8, options_.weight_decay} {
  std::ostringstream msg;
  if (!(options_.lr > 0) || !std::isfinite(options_.lr)) msg << "lr must be a positive number; got " << options_.lr;
  else if (!(options_.weight_decay >= 0)) msg << "weight_decay must be >= 0; got " << options_.weight_decay;
  else if (options_.lr_anneal_steps < 0) msg << "lr_anneal_steps must be >= 0; got " << options_.lr_anneal_steps;
  else if (options_.ema_rate.empty()) msg << "ema_rate needs at least one rate";
  else if (params_.empty()) msg << "the model has no parameters; nothing to train";
  else if (!sampler_ || sampler_->timesteps() != schedule_.timesteps)
    msg << "the schedule sampler must cover the diffusion's " << schedule_.timesteps << " steps";
  else if (!data_parallel_problem(options_.parallel).empty()) msg << data_parallel_problem(options_.parallel);
  else if (options_.parallel.active() && sampler_->loss_aware())
    msg << "schedule_sampler loss-second-moment is not supported with data-parallel training yet (theirs all-gathers the "
           "ranks' losses); use uniform";
  for (double r : options_.ema_rate) {
    if (msg.tellp() == 0 && !(r >= 0 && r <= 1)) msg << "each ema_rate must be in [0, 1]; got " << r;
  }
  if (msg.tellp() > 0) throw std::invalid_argument(msg.str());
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < options_.ema_rate.size(); ++i) {
    std::vector<at::Tensor> copy;
    for (const auto& p : params_) copy.push_back(p.detach().clone());
    ema_.push_back(std::move(copy));
  }
}

std::vector<std::string> OpenaiTrainStep::param_names() const {
  std::vector<std::string> out;
  for (const auto& p : denoiser_.module().named_parameters(true)) out.push_back(p.name);
  return out;
}

StepLog OpenaiTrainStep::run(const at::Tensor& x0, const at::Tensor& y, const at::Tensor& t_given,
                             const at::Tensor& weights_given, const at::Tensor& noise_given) {
  if (!x0.defined() || x0.dim() < 2 || x0.size(0) < 1) throw std::invalid_argument("the batch must be images [B, C, H, W] with B >= 1");
  const int64_t batch = x0.size(0);
  const int64_t micro = options_.microbatch > 0 ? options_.microbatch : batch;
  if (t_given.defined() != weights_given.defined()) throw std::invalid_argument("t and weights go together: give both or neither");
  // As the trainer of trainer.h: the profiling executor would round a traced module's backward
  // differently after its first calls.
  torch::jit::GraphOptimizerEnabledGuard no_jit_optimizer(false);
  c10::AutoGradMode grad_on(true);
  torch::jit::Module model = denoiser_.module();
  const bool was_training = model.is_training();
  model.train(true);
  MeanLog log;
  const DataParallel& par = options_.parallel;
  // Data parallel: every rank must reach the all-reduce, so a non-finite loss is told to all
  // ranks through it and thrown on each after.
  double bad_loss = 0;
  try {
    if (par.active() && !synced_) {
      // As DDP's construction (and their sync_params): every rank starts from rank 0's state.
      at::NoGradGuard no_grad;
      std::vector<at::Tensor> start;
      for (const auto& p : params_) start.push_back(p.detach());
      for (const auto& e : ema_) start.insert(start.end(), e.begin(), e.end());
      par.broadcast(start);
      mp_.model_from_master();
      synced_ = true;
    }
    mp_.zero_grad();
    adam_.zero_grad();
    for (int64_t i = 0; i < batch; i += micro) {
      const int64_t n = std::min(micro, batch - i);
      const at::Tensor x = x0.narrow(0, i, n);
      at::Tensor t, w;
      if (t_given.defined()) {
        t = t_given.narrow(0, i, n);
        w = weights_given.narrow(0, i, n).to(x.device(), at::kFloat);
      } else {
        std::tie(t, w) = sampler_->sample(n, generator_);
        w = w.to(x.device());
      }
      t = t.to(x.device());
      at::Tensor noise = noise_given.defined() ? noise_given.narrow(0, i, n)
                                               : at::randn(x.sizes(), generator_, at::TensorOptions().dtype(at::kFloat)).to(x.device());
      const Denoiser d = y.defined() ? denoiser_.with_labels(y.narrow(0, i, n)) : denoiser_;
      const LossTerms terms = training_losses(d, schedule_, x, t, noise, loss_type_);
      if (sampler_->loss_aware()) {
        const at::Tensor ts = t.to(at::kCPU, at::kLong).contiguous();
        const at::Tensor ls = terms.loss.detach().to(at::kCPU, at::kDouble).contiguous();
        sampler_->update(std::vector<int64_t>(ts.data_ptr<int64_t>(), ts.data_ptr<int64_t>() + n),
                         std::vector<double>(ls.data_ptr<double>(), ls.data_ptr<double>() + n));
      }
      const at::Tensor loss = (terms.loss * w).mean();
      std::vector<std::pair<std::string, at::Tensor>> logged{{"loss", terms.loss * w}};
      if (terms.mse.defined()) logged.emplace_back("mse", terms.mse * w);
      if (terms.vb.defined()) logged.emplace_back("vb", terms.vb * w);
      log_loss_dict(log, logged, t, schedule_.timesteps);
      const double value = loss.item<double>();
      // With use_fp16 a non-finite loss overflows the gradients and the step is skipped, as theirs.
      if (!std::isfinite(value) && !mp_.use_fp16()) {
        if (!par.active()) {
          throw std::runtime_error("the loss is not finite (" + std::to_string(value) + ") at step " + std::to_string(step_ + 1) +
                                   "; lower lr or check the data");
        }
        if (bad_loss == 0) bad_loss = value;
      }
      mp_.scale(loss).backward();
    }
    mp_.grads_to_master();
    if (par.active()) average_gradients_or_throw(params_, par, bad_loss, step_ + 1);
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);

  at::NoGradGuard no_grad;
  const bool took_step = mp_.unscale_or_skip(log);
  window_.add(log);
  StepLog out;
  log.into(out);

  if (took_step) {
    adam_.set_hyper(hyper_);
    adam_.step();
    mp_.finish_step();
    // Their update_ema: ema = ema * rate + param * (1 - rate), of the masters.
    for (size_t r = 0; r < ema_.size(); ++r) {
      at::_foreach_mul_(ema_[r], options_.ema_rate[r]);
      at::_foreach_add_(ema_[r], params_, 1.0 - options_.ema_rate[r]);
    }
  }
  // _anneal_lr runs after the step with the step count before its increment: step s + 1 takes
  // lr * (1 - s / lr_anneal_steps), s counting the resumed run's steps too.
  const int64_t s = step_ + resume_step_;
  if (options_.lr_anneal_steps > 0) {
    hyper_.lr = options_.lr * (1.0 - static_cast<double>(s) / static_cast<double>(options_.lr_anneal_steps));
  }
  out["step"] = static_cast<double>(s);
  // Their global_batch: batch_size times the ranks.
  out["samples"] = static_cast<double>((s + 1) * batch * par.world_size);
  last_counts_ = {{"step", out["step"]}, {"samples", out["samples"]}};
  ++step_;
  return out;
}

StepLog OpenaiTrainStep::dump_log() {
  StepLog out = last_counts_;
  window_.into(out);
  window_.clear();
  return out;
}

}  // namespace gd
