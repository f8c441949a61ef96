#include "diffusion/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "diffusion/autocast_scope.h"
#include "diffusion/optim.h"
#include "diffusion/transfer.h"

namespace gd {

namespace detail {

// The optimizer over the model's trainable parameters, in named_parameters order.
struct OptimizerSlot {
  explicit OptimizerSlot(std::vector<at::Tensor> params, bool adamw) : adam(std::move(params), adamw) {}
  FusedAdam adam;
};

}  // namespace detail

namespace {

constexpr const char* kStateFormat = "gd.training_state.v1";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

[[noreturn]] void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

std::vector<at::Tensor> trainable_parameters(const torch::jit::Module& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    if (p.value.requires_grad()) out.push_back(p.value);
  }
  return out;
}

void ensure_optimizer(TrainState& state, const TrainOptions& o) {
  const bool adamw = o.weight_decay > 0;
  auto& slot = state.optimizer;
  if (!slot) {
    std::vector<at::Tensor> params = trainable_parameters(state.model);
    if (params.empty()) invalid("the model has no parameters that require grad; nothing to train");
    slot = std::make_shared<detail::OptimizerSlot>(std::move(params), adamw);
  } else if (slot->adam.adamw() != adamw) {
    invalid(std::string("this training state was trained with ") + (slot->adam.adamw() ? "AdamW" : "Adam") +
            "; weightDecay > 0 selects AdamW and 0 Adam, and a run cannot switch between them");
  }
  // The options of this run win over saved ones (after a load too).
  slot->adam.set_hyper({o.lr, o.betas.first, o.betas.second, o.eps, o.weight_decay});
}

void validate(const TrainOptions& o, const at::Tensor& data) {
  std::ostringstream msg;
  if (o.steps < 0) msg << "steps must be >= 0; got " << o.steps;
  else if (o.batch_size < 1) msg << "batchSize must be >= 1; got " << o.batch_size;
  else if (!(o.lr > 0) || !std::isfinite(o.lr)) msg << "lr must be a positive number; got " << o.lr;
  else if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    msg << "weightDecay must be >= 0; got " << o.weight_decay;
  else if (!(o.betas.first >= 0 && o.betas.first < 1 && o.betas.second >= 0 && o.betas.second < 1))
    msg << "betas must be in [0, 1); got [" << o.betas.first << ", " << o.betas.second << "]";
  else if (!(o.eps >= 0)) msg << "eps must be >= 0; got " << o.eps;
  else if (std::isnan(o.grad_clip)) msg << "gradClip must be a number";
  else if (!(o.ema_decay >= 0 && o.ema_decay <= 1)) msg << "emaDecay must be in [0, 1]; got " << o.ema_decay;
  else if (o.ema_every < 1) msg << "emaEvery must be >= 1; got " << o.ema_every;
  else if (o.checkpoint_every < 0) msg << "checkpointEvery must be >= 0; got " << o.checkpoint_every;
  else if (o.checkpoint_every > 0 && o.checkpoint_path.empty())
    msg << "checkpointEvery needs a checkpointPath";
  else if (o.loss_window < 1) msg << "lossWindow must be >= 1; got " << o.loss_window;
  else if (o.max_timestep < -1) msg << "maxTimestep must be >= 0; got " << o.max_timestep;
  else if (!(o.cond_drop_prob >= 0 && o.cond_drop_prob < 1))
    msg << "condDropProb must be in [0, 1); got " << o.cond_drop_prob;
  else if (o.clean && o.max_timestep > 0)
    msg << "clean trains at t = 0: maxTimestep must be 0 or unset; got " << o.max_timestep;
  else if (o.autocast && *o.autocast != at::kBFloat16 && *o.autocast != at::kHalf)
    msg << "autocast must be bfloat16 or float16; got " << c10::toString(*o.autocast);
  else if (o.parallel.world_size < 1 || o.parallel.rank < 0 || o.parallel.rank >= o.parallel.world_size)
    msg << "rank " << o.parallel.rank << " is not in a world of " << o.parallel.world_size;
  else if (o.parallel.world_size > 1 && (!o.parallel.average || !o.parallel.broadcast || !o.parallel.agree))
    msg << "data-parallel training needs the collectives of a process group";
  else if (!data.defined() || data.dim() < 2 || data.size(0) < 1)
    msg << "data must be a batch of at least one image [N, C, H, W]; got shape "
        << (data.defined() ? data.sizes() : at::IntArrayRef{});
  else if (!at::isFloatingType(data.scalar_type()))
    msg << "data must be a floating tensor in [-1, 1]; got " << c10::toString(data.scalar_type());
  else return;
  invalid(msg.str());
}

at::Device model_device(const torch::jit::Module& model, const at::Tensor& fallback) {
  for (const auto& p : model.parameters(/*recurse=*/true)) return p.device();
  return fallback.device();
}

// The EMA update over the model's and the EMA copy's parameters and buffers (optim.h).
EmaUpdate make_ema_update(const torch::jit::Module& model, const torch::jit::Module& ema) {
  auto list = [](auto named) {
    std::vector<at::Tensor> out;
    for (const auto& item : named) out.push_back(item.value);
    return out;
  };
  return EmaUpdate(list(model.named_parameters(true)), list(ema.named_parameters(true)),
                   list(model.named_buffers(true)), list(ema.named_buffers(true)));
}


// Restores the model's training flag however the run ends.
class TrainModeGuard {
 public:
  explicit TrainModeGuard(torch::jit::Module model) : model_(std::move(model)), was_(model_.is_training()) {
    model_.train(true);
  }
  ~TrainModeGuard() { model_.train(was_); }

 private:
  torch::jit::Module model_;
  bool was_;
};

torch::jit::Module copy_module(const torch::jit::Module& model) {
  torch::jit::Module copy;
  {
    at::NoGradGuard no_grad;  // deepcopy clones tensors: no CloneBackward on the copies
    copy = model.deepcopy();
  }
  std::vector<bool> flags;
  for (const auto& p : model.parameters(true)) flags.push_back(p.requires_grad());
  size_t i = 0;
  for (const auto& p : copy.parameters(true)) p.requires_grad_(flags.at(i++));
  return copy;
}

// Writes through "<path>.tmp" and renames, so a failed write leaves the old file.
template <typename Write>
void write_atomically(const std::string& path, Write&& write) {
  const std::string tmp = path + ".tmp";
  try {
    write(tmp);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write " + path + ": " + e.what_without_backtrace());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot write " + path + ": rename failed");
  }
}

double tail_mean(const std::vector<double>& v, int64_t window) {
  if (v.empty()) return kNaN;
  const size_t n = std::min(v.size(), static_cast<size_t>(window));
  double sum = 0;
  for (size_t i = v.size() - n; i < v.size(); ++i) sum += v[i];
  return sum / static_cast<double>(n);
}

// One step's inputs: data and labels at random indices, timesteps, noise (in this order).
struct Batch {
  at::Tensor x0, t, noise, labels;
};

// Data parallel: rank 0's model, EMA and generator become every rank's, so the ranks start
// alike even if they were built or seeded differently.
void broadcast_start(TrainState& state, const TrainOptions::Parallel& p) {
  std::vector<at::Tensor> tensors;
  for (const auto* m : {&state.model, &state.ema}) {
    for (const auto& t : m->parameters(true)) tensors.push_back(t);
    for (const auto& t : m->buffers(true)) tensors.push_back(t);
  }
  at::Generator gen = state.generator;
  at::Tensor gen_state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen_state = gen.get_state();
  }
  tensors.push_back(gen_state);
  p.broadcast(tensors);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(gen_state);
}

// Data parallel: after backward, every rank gets the mean of the ranks' gradients, loss and
// accuracy (means over equal slices: the global batch's means). Gradients a step left
// undefined are undefined on every rank (the ranks run the same graph) and stay so.
void average_step(const std::vector<at::Tensor>& params, double& loss, double& accuracy,
                  const TrainOptions::Parallel& p) {
  const bool has_accuracy = !std::isnan(accuracy);
  at::Tensor stats = at::tensor({loss, has_accuracy ? accuracy : 0.0}, at::kDouble);
  if (!params.empty()) stats = stats.to(params.front().device());
  average_gradients(params, p, {stats});
  stats = stats.cpu();
  loss = stats[0].item<double>();
  if (has_accuracy) accuracy = stats[1].item<double>();
}

// The loop shared by both trainers: `loss_of` computes the step's loss (graph attached) and
// may set accuracy.
template <typename LossFn>
TrainResult run_loop(TrainState& state, const Schedule& schedule, const at::Tensor& data,
                     const at::Tensor& labels, const TrainOptions& o, LossFn&& loss_of, bool classifier) {
  validate(o, data);
  if (!state.generator.defined()) invalid("the training state has no generator (use make_train_state)");
  ensure_optimizer(state, o);
  FusedAdam& optimizer = state.optimizer->adam;
  const std::vector<at::Tensor>& params = optimizer.params();

  const at::Device device = model_device(state.model, data);
  const Schedule sched = schedule.to(device);
  const int64_t n = data.size(0);
  const int64_t timesteps = schedule.timesteps;
  if (o.max_timestep >= timesteps) {
    invalid("maxTimestep must be below timesteps (" + std::to_string(timesteps) + "); got " +
            std::to_string(o.max_timestep));
  }
  if (o.clean && !classifier) invalid("clean applies to classifier training only");
  // clean draws t from [0, 0] as maxTimestep 0 does: the same generator stream.
  const int64_t t_range = o.clean ? 1 : o.max_timestep >= 0 ? o.max_timestep + 1 : timesteps;
  const TrainOptions::Parallel& par = o.parallel;
  const bool parallel = par.world_size > 1;
  const int64_t global_batch = o.batch_size * par.world_size;
  // This rank's rows of the global batch.
  auto mine = [&](const at::Tensor& global) {
    return parallel ? global.narrow(0, par.rank * o.batch_size, o.batch_size) : global;
  };
  if (parallel) {
    // The ranks slice one global batch drawn from the same data by the same generator: a
    // rank run with other options or data would train on something else, silently.
    par.agree({{"steps", double(o.steps)}, {"batchSize", double(o.batch_size)}, {"lr", o.lr},
               {"weightDecay", o.weight_decay}, {"gradClip", o.grad_clip}, {"emaDecay", o.ema_decay},
               {"emaEvery", double(o.ema_every)}, {"timesteps", double(timesteps)},
               {"maxTimestep", double(o.max_timestep)}, {"data images", double(data.size(0))},
               {"labels", labels.defined() ? double(labels.numel()) : -1.0}, {"classifier", classifier ? 1.0 : 0.0},
               {"clean", o.clean ? 1.0 : 0.0}, {"condDropProb", o.cond_drop_prob}});
    broadcast_start(state, par);
  }
  const auto cpu_long = at::TensorOptions().dtype(at::kLong);
  const auto cpu_float = at::TensorOptions().dtype(at::kFloat);
  at::Generator gen = state.generator;

  const EmaUpdate ema_update = make_ema_update(state.model, state.ema);
  state.ema.eval();
  TrainModeGuard train_mode(state.model);
  c10::AutoGradMode grad_on(true);
  // TorchScript's profiling executor runs a method's first calls as profiled, then switches
  // to an optimized differentiable graph whose backward rounds differently: a module loaded
  // to resume would then take other code paths than the straight run at the same step.
  // Off on this thread (the setting is thread-local), every step runs the same ops.
  torch::jit::GraphOptimizerEnabledGuard no_jit_optimizer(false);

  TrainResult result;
  result.model = state.model;
  result.ema = state.ema;
  int64_t last_checkpoint = -1;
  const bool writes_checkpoints = !o.checkpoint_path.empty() && par.rank == 0;
  auto checkpoint = [&] {
    save_checkpoint(o.checkpoint_path, state);
    last_checkpoint = state.step;
  };

  while (state.step < o.steps) {
    if (o.should_stop && o.should_stop()) {
      result.stopped = true;
      break;
    }
    Batch b;
    const at::Tensor idx = mine(at::randint(n, {global_batch}, gen, cpu_long));
    b.t = to_device(mine(at::randint(t_range, {global_batch}, gen, cpu_long)), device);
    b.x0 = to_device(data.index_select(0, idx.to(data.device())), device, at::kFloat);
    std::vector<int64_t> noise_shape = b.x0.sizes().vec();
    noise_shape[0] = global_batch;
    b.noise = to_device(mine(at::randn(noise_shape, gen, cpu_float)), device);
    if (labels.defined()) b.labels = to_device(labels.index_select(0, idx.to(labels.device())), device);
    if (o.cond_drop_prob > 0) {
      const at::Tensor drop = to_device(mine(at::rand({global_batch}, gen, cpu_float) < o.cond_drop_prob), device);
      b.labels = at::where(drop, at::full_like(b.labels, o.null_class), b.labels);
    }

    optimizer.zero_grad();
    double accuracy = kNaN;
    at::Tensor loss;
    {
      std::optional<AutocastScope> autocast;
      if (o.autocast) autocast.emplace(device.type(), *o.autocast);
      loss = loss_of(sched, b, gen, accuracy);
    }
    double value = loss.item<double>();
    // Data parallel: every rank must reach the all-reduce, so the ranks check the averaged
    // loss (non-finite on all of them if on one) after backward.
    if (parallel) {
      loss.backward();
      average_step(params, value, accuracy, par);
    }
    if (!std::isfinite(value)) {
      throw std::runtime_error("the loss is not finite (" + std::to_string(value) + ") at step " +
                               std::to_string(state.step + 1) + "; lower lr or check the data");
    }
    if (!parallel) loss.backward();
    if (o.grad_clip > 0) clip_grad_norm(params, o.grad_clip);
    optimizer.step();
    ++state.step;
    if (state.step % o.ema_every == 0) ema_update(o.ema_decay);

    result.losses.push_back(value);
    if (classifier) result.accuracies.push_back(accuracy);
    if (writes_checkpoints && o.checkpoint_every > 0 && state.step % o.checkpoint_every == 0) {
      checkpoint();
    }
    if (o.on_step) o.on_step(state.step, o.steps, value);
  }
  if (writes_checkpoints && last_checkpoint != state.step) checkpoint();

  result.steps = state.step;
  result.steps_run = static_cast<int64_t>(result.losses.size());
  result.final_loss = result.losses.empty() ? kNaN : result.losses.back();
  result.mean_loss = tail_mean(result.losses, o.loss_window);
  result.final_accuracy = result.accuracies.empty() ? kNaN : result.accuracies.back();
  result.mean_accuracy = tail_mean(result.accuracies, o.loss_window);
  return result;
}

// ---- state files ------------------------------------------------------------------------

void write_module(torch::serialize::OutputArchive& archive, const std::string& key,
                  const torch::jit::Module& module) {
  torch::serialize::OutputArchive sub(archive.compilation_unit());
  c10::List<std::string> names;
  c10::List<bool> requires_grad;
  int64_t i = 0;
  for (const auto& p : module.named_parameters(true)) {
    names.push_back(p.name);
    requires_grad.push_back(p.value.requires_grad());
    sub.write(std::to_string(i++), p.value.detach(), /*is_buffer=*/true);
  }
  for (const auto& b : module.named_buffers(true)) {
    names.push_back(b.name);
    requires_grad.push_back(false);
    sub.write(std::to_string(i++), b.value.detach(), /*is_buffer=*/true);
  }
  sub.write("names", c10::IValue(names));
  sub.write("requires_grad", c10::IValue(requires_grad));
  archive.write(key, sub);
}

// Loads the saved tensors into `module` by name (the same names, the same shapes) and
// restores requires_grad. A mismatch names the first name or shape that differs and says
// the checkpoint does not match `what` (the model, the classifier).
void read_module(torch::serialize::InputArchive& archive, const std::string& key, torch::jit::Module& module,
                 const std::string& what) {
  torch::serialize::InputArchive sub;
  archive.read(key, sub);
  c10::IValue names_iv, flags_iv;
  sub.read("names", names_iv);
  sub.read("requires_grad", flags_iv);
  const auto names = names_iv.toList();
  const auto flags = flags_iv.toList();
  if (names.size() != flags.size()) throw std::runtime_error("'" + key + "' is malformed");

  std::map<std::string, std::pair<at::Tensor, bool>> targets;  // tensor, is parameter
  std::vector<std::string> order;                              // the module's names in order
  for (const auto& p : module.named_parameters(true)) {
    targets[p.name] = {p.value, true};
    order.push_back(p.name);
  }
  for (const auto& b : module.named_buffers(true)) {
    targets[b.name] = {b.value, false};
    order.push_back(b.name);
  }
  const std::string mismatch = "the checkpoint does not match the " + what + ": ";
  std::set<std::string> saved_names;
  struct Copy {
    at::Tensor target, saved;
    bool parameter, requires_grad;
  };
  std::vector<Copy> copies;  // made only once everything matches: a mismatch leaves the module as it was
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string name = names.get(i).toStringRef();
    saved_names.insert(name);
    auto it = targets.find(name);
    if (it == targets.end()) throw std::runtime_error(mismatch + "it has '" + name + "', which the " + what + " lacks");
    at::Tensor saved;
    sub.read(std::to_string(i), saved, /*is_buffer=*/true);
    const at::Tensor& target = it->second.first;
    if (saved.sizes() != target.sizes()) {
      std::ostringstream msg;
      msg << mismatch << "'" << name << "' has shape " << saved.sizes() << " in the checkpoint and " << target.sizes()
          << " in the " << what;
      throw std::runtime_error(msg.str());
    }
    copies.push_back({target, saved, it->second.second, flags.get(i).toBool()});
  }
  for (const auto& name : order) {
    if (!saved_names.count(name)) throw std::runtime_error(mismatch + "the " + what + " has '" + name + "', which the checkpoint lacks");
  }
  for (auto& c : copies) {
    if (c.parameter) c.target.requires_grad_(c.requires_grad);
  }
  at::NoGradGuard no_grad;
  for (auto& c : copies) c.target.copy_(c.saved);
}

void check_labels(const at::Tensor& labels, const at::Tensor& data) {
  if (!labels.defined() || labels.dim() != 1 || !data.defined() || data.dim() < 1 ||
      labels.size(0) != data.size(0)) {
    std::ostringstream msg;
    msg << "labels must be a 1-D tensor with one class index per image";
    if (data.defined() && data.dim() >= 1) msg << " (" << data.size(0) << ")";
    msg << "; got shape " << (labels.defined() ? labels.sizes() : at::IntArrayRef{});
    invalid(msg.str());
  }
  if (at::isFloatingType(labels.scalar_type()) || labels.scalar_type() == at::kBool) {
    invalid(std::string("labels must be an integer tensor; got ") + c10::toString(labels.scalar_type()));
  }
}

// The label dropout's null class: options.null_class, else the model's `null_class`
// attribute; the real labels must lie below it.
int64_t resolve_null_class(const torch::jit::Module& model, const TrainOptions& o, const at::Tensor& labels) {
  int64_t null_class = o.null_class;
  if (null_class < 0 && model.hasattr("null_class") && model.attr("null_class").isInt()) {
    null_class = model.attr("null_class").toInt();
  }
  if (null_class < 0) {
    invalid("condDropProb needs the label of \"no class\": give nullClass (openai's UNetModel trained with num_classes + 1 "
            "labels: num_classes), or train a Unet built with numClasses");
  }
  const auto [lo, hi] = label_range(labels);
  if (lo <= hi && (lo < 0 || hi >= null_class)) {
    invalid("a class label of " + std::to_string(lo < 0 ? lo : hi) + " with the null class " + std::to_string(null_class) +
            ": labels must be in [0, " + std::to_string(null_class) + ")");
  }
  return null_class;
}

}  // namespace

TrainState make_train_state(torch::jit::Module model, uint64_t seed) {
  TrainState s;
  s.model = model;
  s.ema = copy_module(model);
  s.ema.eval();
  s.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return s;
}

TrainResult train_diffusion(TrainState& state, const Schedule& schedule, Objective objective,
                            const at::Tensor& data, const TrainOptions& options, const LossOptions& loss_options,
                            const at::Tensor& labels) {
  check_objective_schedule(objective, schedule);  // pred_noise's loss weight is 0/0 there too
  const Denoiser denoiser(state.model, objective);
  TrainOptions o = options;
  if (labels.defined()) {
    check_labels(labels, data);
    if (!denoiser.takes_labels()) invalid("labels need a class-conditional model (forward(x, t, y)), such as a Unet built with numClasses");
    if (o.cond_drop_prob > 0) o.null_class = resolve_null_class(state.model, o, labels);
  } else if (o.cond_drop_prob > 0) {
    invalid("condDropProb drops class labels: give labels");
  }
  const bool coin = loss_options.self_condition && denoiser.self_condition();
  auto loss_of = [&](const Schedule& s, const Batch& b, at::Generator& gen, double&) {
    LossOptions lo = loss_options;
    lo.self_condition = coin && at::rand({1}, gen, at::TensorOptions().dtype(at::kFloat)).item<double>() < 0.5;
    const Denoiser& d = b.labels.defined() ? denoiser.with_labels(b.labels.to(at::kLong)) : denoiser;
    return p_losses(d, s, b.x0, b.t, b.noise, lo);
  };
  return run_loop(state, schedule, data, labels, o, loss_of, /*classifier=*/false);
}

TrainResult train_diffusion(torch::jit::Module model, const Schedule& schedule, Objective objective,
                            const at::Tensor& data, const TrainOptions& options, const LossOptions& loss_options,
                            const at::Tensor& labels) {
  TrainState state = make_train_state(std::move(model), options.seed);
  return train_diffusion(state, schedule, objective, data, options, loss_options, labels);
}

TrainResult train_classifier(TrainState& state, const Schedule& schedule, const at::Tensor& data,
                             const at::Tensor& labels, const TrainOptions& options) {
  check_labels(labels, data);
  torch::jit::Module classifier = state.model;
  const std::pair<int64_t, int64_t> labels_span = label_range(labels);
  auto loss_of = [&](const Schedule& s, const Batch& b, at::Generator&, double& accuracy) {
    // classifier_loss's computation, keeping the logits for the accuracy.
    const at::Tensor x = options.clean ? b.x0 : q_sample(s, b.x0, b.t, b.noise);
    const c10::IValue out = classifier.forward({x, b.t});
    if (!out.isTensor()) {
      throw std::runtime_error("the classifier returned " + out.tagKind() + "; expected a tensor of logits");
    }
    const at::Tensor logits = out.toTensor();
    const at::Tensor y = b.labels.to(at::kLong);
    if (logits.dim() != 2 || logits.size(0) != y.size(0)) {
      std::ostringstream msg;
      msg << "the classifier must return logits [B, classes]; got shape " << logits.sizes();
      throw std::runtime_error(msg.str());
    }
    check_class_labels(labels_span, logits.size(1));
    accuracy = logits.detach().argmax(1).eq(y).to(at::kDouble).mean().item<double>();
    return at::cross_entropy_loss(logits, y);
  };
  return run_loop(state, schedule, data, labels, options, loss_of, /*classifier=*/true);
}

TrainResult train_classifier(torch::jit::Module classifier, const Schedule& schedule, const at::Tensor& data,
                             const at::Tensor& labels, const TrainOptions& options) {
  TrainState state = make_train_state(std::move(classifier), options.seed);
  return train_classifier(state, schedule, data, labels, options);
}

void save_training_state(const std::string& path, const TrainState& state) {
  if (!state.generator.defined()) invalid("the training state has no generator (use make_train_state)");
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kStateFormat)));
  archive.write("step", at::tensor(state.step, at::kLong), /*is_buffer=*/true);
  at::Tensor gen_state;
  {
    at::Generator gen = state.generator;  // a handle: the same generator
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen_state = gen.get_state();
  }
  archive.write("generator", gen_state, /*is_buffer=*/true);
  write_module(archive, "model", state.model);
  write_module(archive, "ema", state.ema);
  const auto& slot = state.optimizer;
  archive.write("optimizer_kind", c10::IValue(std::string(!slot ? "none" : slot->adam.adamw() ? "adamw" : "adam")));
  if (slot) {
    torch::serialize::OutputArchive opt(archive.compilation_unit());
    slot->adam.save(opt);
    archive.write("optimizer", opt);
  }
  write_atomically(path, [&](const std::string& file) { archive.save_to(file); });
}

TrainState load_training_state(const std::string& path, torch::jit::Module model, const std::string& what) {
  if (!std::filesystem::is_regular_file(path)) {
    throw std::runtime_error("training state " + path + " not found");
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue format;
    if (!archive.try_read("format", format) || !format.isString() || format.toStringRef() != kStateFormat) {
      throw std::runtime_error("not a training state file (" + std::string(kStateFormat) + ")");
    }
    TrainState s;
    s.model = model;
    read_module(archive, "model", s.model, what);
    s.ema = copy_module(s.model);
    read_module(archive, "ema", s.ema, what);
    s.ema.eval();

    at::Tensor step, gen_state;
    archive.read("step", step, /*is_buffer=*/true);
    archive.read("generator", gen_state, /*is_buffer=*/true);
    s.step = step.item<int64_t>();
    s.generator = at::make_generator<at::CPUGeneratorImpl>();
    s.generator.set_state(gen_state);

    c10::IValue kind;
    archive.read("optimizer_kind", kind);
    if (kind.toStringRef() != "none") {
      auto slot = std::make_shared<detail::OptimizerSlot>(trainable_parameters(s.model), kind.toStringRef() == "adamw");
      torch::serialize::InputArchive opt;
      archive.read("optimizer", opt);
      slot->adam.load(opt);
      s.optimizer = slot;
    }
    return s;
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load training state " + path + ": " + e.what_without_backtrace());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot load training state " + path + ": " + e.what());
  }
}

void save_checkpoint(const std::string& path, const TrainState& state) {
  write_atomically(path, [&](const std::string& file) { state.ema.save(file); });
  save_training_state(path + ".state", state);
}

TrainState load_checkpoint(const std::string& path, torch::jit::Module model, const std::string& what) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error("checkpoint " + path + " not found");
  return load_training_state(path + ".state", std::move(model), what);
}

TrainState load_checkpoint(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error("checkpoint " + path + " not found");
  torch::jit::Module model;
  try {
    model = torch::jit::load(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load checkpoint " + path + ": " + e.what_without_backtrace());
  }
  return load_training_state(path + ".state", model);
}

}  // namespace gd
