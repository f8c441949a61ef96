#include "diffusion/samplers.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "diffusion/editing.h"
#include "diffusion/eps_model.h"
#include "diffusion/fast_samplers.h"
#include "diffusion/model_call.h"
#include "diffusion/transfer.h"
#include "diffusion/x0_guidance.h"

namespace gd {

namespace {

void check_options(const Schedule& s, const SampleOptions& o) {
  std::ostringstream msg;
  bool bad_shape = o.shape.empty();
  for (int64_t d : o.shape) bad_shape = bad_shape || d < 1;
  if (s.timesteps < 1 || !s.betas.defined()) {
    msg << "the schedule is empty (make it with make_schedule)";
  } else if (bad_shape) {
    msg << "shape must be a non-empty list of positive sizes; got " << at::IntArrayRef(o.shape);
  } else if (o.sampling_timesteps < 1 || o.sampling_timesteps > s.timesteps) {
    msg << "samplingTimesteps must be an integer from 1 to timesteps (" << s.timesteps << "); got "
        << o.sampling_timesteps;
  } else if (!o.image_generators.empty() && static_cast<int64_t>(o.image_generators.size()) != o.shape[0]) {
    msg << "one generator per image: " << o.shape[0] << " images but " << o.image_generators.size() << " generators";
  } else if (!(o.ddim_eta >= 0 && o.ddim_eta <= 1)) {
    // Above 1, sigma^2 can exceed 1 - alpha_bar_prev and the direction term is NaN.
    msg << "ddimSamplingEta must be in [0, 1]; got " << o.ddim_eta;
  } else {
    return;
  }
  throw std::invalid_argument(msg.str());
}

// Standard normal noise, drawn where the reference draws it so that a seeded run matches.
class Noise {
 public:
  explicit Noise(const SampleOptions& o)
      : options_(at::TensorOptions().dtype(at::kFloat).device(o.device)),
        generator_(o.generator),
        per_image_(o.image_generators) {}

  at::Tensor operator()(at::IntArrayRef shape) const {
    if (!per_image_.empty()) {
      std::vector<at::Tensor> rows;
      for (const auto& g : per_image_) rows.push_back(at::randn(shape.slice(1), g, at::TensorOptions().dtype(at::kFloat)));
      return to_device(at::stack(rows), options_.device());
    }
    if (!generator_) return at::randn(shape, options_);
    const at::Device gen_device = generator_->device();
    if (gen_device.type() == options_.device().type()) return at::randn(shape, generator_, options_);
    return to_device(at::randn(shape, generator_, options_.device(gen_device)), options_.device());
  }

 private:
  at::TensorOptions options_;
  std::optional<at::Generator> generator_;
  std::vector<at::Generator> per_image_;
};

// The guidance sees the model's timesteps (a respaced schedule's map applied), as openai's
// _WrappedModel gives its cond_fn.
// The context holds the prediction the step is taken from (x0 as the sampler clipped it).
GuidanceContext step_context(const Schedule& s, int64_t t_value, int64_t step, int64_t total) {
  GuidanceContext context;
  context.alpha_bar = s.alphas_cumprod[t_value].item<double>();
  context.sigma = std::sqrt(1 - context.alpha_bar);
  context.step = step;
  context.total = total;
  return context;
}

at::Tensor guided_gradient(Guidance& guidance, const Schedule& s, const at::Tensor& input, const at::Tensor& t,
                           int64_t step, int64_t t_value, int64_t total, const Prediction& p) {
  GuidanceContext context = step_context(s, t_value, step, total);
  context.x0 = p.x0;
  context.eps = p.eps;
  return checked_gradient(guidance, input, s.timestep_map.apply(t), step, static_cast<double>(t_value), context);
}

// One DDIM step from x_t to x_{t_next} given the prediction (t_next < 0: the clean image).
at::Tensor ddim_update(const Schedule& s, const Prediction& p, const at::Tensor& x, int64_t t_value, int64_t t_next,
                       double eta, const Noise& noise) {
  if (t_next < 0) return p.x0;
  // 0-dim float32 tensors, so the coefficients round as the reference's do.
  at::Tensor ab = s.alphas_cumprod[t_value];
  at::Tensor ab_next = s.alphas_cumprod[t_next];
  at::Tensor sigma = ((1 - ab / ab_next) * (1 - ab_next) / (1 - ab)).sqrt() * eta;
  // 0 in exact arithmetic when eta is 1 and ab is ~0 (a cosine schedule's first step), where
  // float32 rounding gave -6e-8 and the square root NaN: clamped, it is 0.
  at::Tensor c = (1 - ab_next - sigma.pow(2)).clamp_min(0).sqrt();
  at::Tensor z = noise(x.sizes());
  return p.x0 * ab_next.sqrt() + c * p.eps + sigma * z;
}

at::Tensor finish(const std::vector<at::Tensor>& all, const at::Tensor& x, const SampleOptions& o) {
  at::Tensor out = o.return_all_timesteps ? at::stack(all, 1) : x;
  return o.auto_normalize ? (out + 1) * 0.5 : out;
}

}  // namespace

SampleOptions::Method parse_sample_method(const std::string& name) {
  using M = SampleOptions::Method;
  static const std::vector<std::pair<std::string, M>> names = {
      {"ancestral", M::Ancestral}, {"ddim", M::Ddim},     {"dpm-solver++", M::DpmSolverPP},
      {"dpm-solver", M::DpmSolver}, {"unipc", M::UniPC},  {"euler", M::Euler},
      {"euler-ancestral", M::EulerAncestral},             {"heun", M::Heun},
      {"dpmpp-2m", M::Dpmpp2m}};
  std::string all;
  for (const auto& [n, m] : names) {
    if (n == name) return m;
    all += (all.empty() ? "" : ", ") + n;
  }
  throw std::invalid_argument("sampler must be one of " + all + "; got '" + name + "'");
}

bool is_fast_method(SampleOptions::Method method) {
  using M = SampleOptions::Method;
  return method != M::Auto && method != M::Ancestral && method != M::Ddim;
}

SampleOptions::CondInput parse_cond_input(const std::string& name) {
  if (name == "mean") return SampleOptions::CondInput::Mean;
  if (name == "x") return SampleOptions::CondInput::X;
  throw std::invalid_argument("condInput must be one of mean, x; got '" + name + "'");
}

std::vector<std::pair<int64_t, int64_t>> ddim_time_pairs(int64_t timesteps, int64_t sampling_timesteps) {
  at::Tensor times = at::linspace(-1, static_cast<double>(timesteps - 1), sampling_timesteps + 1, at::kFloat)
                         .to(at::kInt);
  auto acc = times.accessor<int32_t, 1>();
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = sampling_timesteps; i > 0; --i) pairs.emplace_back(acc[i], acc[i - 1]);
  return pairs;
}

namespace {

// The noise levels of the discrete samplers' steps on the host: ab of each step index (-1: the
// clean image, ab = 1), for the edits' noising and jumps.
struct HostLevels {
  std::vector<double> ab;  // of the schedule's steps
  double at(int64_t t) const { return t < 0 ? 1.0 : ab[static_cast<size_t>(t)]; }
};

HostLevels host_levels(const Schedule& s) {
  at::Tensor ab = to_host(s.alphas_cumprod).to(at::kDouble).contiguous();
  return {std::vector<double>(ab.data_ptr<double>(), ab.data_ptr<double>() + ab.numel())};
}

// The sampling result for strength 0 (no steps): the image itself.
at::Tensor unedited(const Edit& edit, const SampleOptions& o) {
  return finish({edit.init()}, edit.init(), o);
}

}  // namespace

// Both discrete samplers walk a list of step indices (repaint_schedule): from k - 1 (k: the
// steps an edit runs, else all) down to -1, and with RePaint's jumps back up again. A step down
// from index i is the sampler's step (ancestral: from timestep i; DDIM: from the i-th of its
// times); a step up renoises x by q(x_up | x_down). Without init this is the plain loop.
at::Tensor sample_ancestral(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                            const SampleOptions& o) {
  SampleOptions opts = o;
  opts.sampling_timesteps = schedule.timesteps;
  check_options(schedule, opts);
  at::NoGradGuard no_grad;
  const Schedule s = schedule.to(o.device);
  const Noise noise(o);
  const Edit edit(o, [&noise](at::IntArrayRef shape) { return noise(shape); });
  ModelCall model(denoiser, s, o.cuda_graph);
  const int64_t T = s.timesteps, batch = o.shape[0];
  const int64_t k = edit.steps(T);
  const int64_t recurrence = guidance && o.x0_guidance ? o.x0_guidance->recurrence : 1;
  const HostLevels levels = edit.editing() || recurrence > 1 ? host_levels(s) : HostLevels{};

  at::Tensor x = noise(o.shape);
  if (k == 0) return unedited(edit, o);
  if (k < T) x = edit.start(x, std::sqrt(levels.at(k - 1)), std::sqrt(1 - levels.at(k - 1)));
  const std::vector<int64_t> walk = repaint_schedule(k, o.jump_length, o.jump_count);
  int64_t total = 0;  // steps down: the model calls
  for (size_t i = 1; i < walk.size(); ++i) total += walk[i] < walk[i - 1];
  std::vector<at::Tensor> all;
  if (o.return_all_timesteps) all.push_back(x);
  at::Tensor x0_prev;  // self-conditioning input: the previous step's clamped x0
  int64_t step = 0;
  for (size_t i = 1; i < walk.size(); ++i) {
    const int64_t t_value = walk[i - 1], to = walk[i];
    if (to > t_value) {
      // RePaint's undo: x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) z.
      const double beta = 1 - levels.at(to) / levels.at(t_value);
      x = std::sqrt(1 - beta) * x + std::sqrt(beta) * noise(x.sizes());
      continue;
    }
    at::Tensor t = at::full({batch}, t_value, at::TensorOptions().dtype(at::kLong).device(o.device));
    const bool x0_step = guidance && o.x0_guidance && o.x0_guidance->guides(static_cast<double>(t_value));
    for (int64_t r = 0; r < (x0_step ? recurrence : 1); ++r) {
      if (r > 0) x = renoise(x, levels.at(to), levels.at(t_value), noise(x.sizes()));  // self-recurrence
      const at::Tensor self_cond = denoiser.self_condition() ? x0_prev : at::Tensor();
      Prediction p;
      at::Tensor x0_grad;  // guidanceInput 'x0': DPS's step, after the unguided update
      if (x0_step) {
        const X0Gradient g = x0_loss_gradient(
            *guidance, x, s.timestep_map.apply(t), static_cast<double>(t_value),
            [&](const at::Tensor& x_in) { return denoiser.prediction(s, x_in, t, model(x_in, t, self_cond), o.clip_denoised); },
            o.x0_guidance->gradient_norm, step_context(s, t_value, step, total));
        p = g.prediction;
        x0_grad = g.grad;
      } else {
        p = denoiser.prediction(s, x, t, model(x, t, self_cond), o.clip_denoised);
      }
      at::Tensor mean = posterior_mean(s, p.x0, x, t);
      if (guidance && !o.x0_guidance) {
        const at::Tensor& input = o.cond_input == SampleOptions::CondInput::Mean ? mean : x;
        at::Tensor g = guided_gradient(*guidance, s, input, t, step, t_value, total, p);
        mean = condition_mean(mean, p.variance, g);
      }
      if (t_value > 0) {
        at::Tensor z = noise(x.sizes());
        x = mean + (0.5 * p.log_variance).exp() * z;
      } else {
        x = mean;
      }
      if (x0_grad.defined()) x = x - o.x0_guidance->scale * x0_grad;
      if (edit.masked()) x = edit.known(x, std::sqrt(levels.at(to)), std::sqrt(1 - levels.at(to)));
      x0_prev = p.x0;
    }
    if (o.return_all_timesteps) all.push_back(x);
    if (o.on_step) o.on_step(step, total, t_value);
    ++step;
  }
  return finish(all, x, o);
}

at::Tensor sample_ddim(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                       const SampleOptions& o) {
  check_options(schedule, o);
  if (guidance && schedule.zero_terminal_snr) {
    throw std::invalid_argument(
        "guided DDIM cannot use a schedule whose last beta is 1 (zero terminal SNR): condition_score "
        "re-derives x0 from eps, which divides by sqrt(ab_T) = 0 at the first step; sample it ancestrally");
  }
  at::NoGradGuard no_grad;
  const Schedule s = schedule.to(o.device);
  const Noise noise(o);
  const Edit edit(o, [&noise](at::IntArrayRef shape) { return noise(shape); });
  ModelCall model(denoiser, s, o.cuda_graph);
  const int64_t batch = o.shape[0];
  const auto pairs = ddim_time_pairs(s.timesteps, o.sampling_timesteps);
  const int64_t n = static_cast<int64_t>(pairs.size());
  // The DDIM times by index, ascending: times[i] is the timestep of index i (-1: clean).
  std::vector<int64_t> times(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) times[static_cast<size_t>(i)] = pairs[static_cast<size_t>(n - 1 - i)].first;
  auto time_of = [&](int64_t index) { return index < 0 ? int64_t{-1} : times[static_cast<size_t>(index)]; };
  const int64_t k = edit.steps(n);
  const int64_t recurrence = guidance && o.x0_guidance ? o.x0_guidance->recurrence : 1;
  const HostLevels levels = edit.editing() || recurrence > 1 ? host_levels(s) : HostLevels{};

  at::Tensor x = noise(o.shape);
  if (k == 0) return unedited(edit, o);
  if (k < n) {
    const double ab = levels.at(time_of(k - 1));
    x = edit.start(x, std::sqrt(ab), std::sqrt(1 - ab));
  }
  const std::vector<int64_t> walk = repaint_schedule(k, o.jump_length, o.jump_count);
  int64_t total = 0;
  for (size_t i = 1; i < walk.size(); ++i) total += walk[i] < walk[i - 1];
  std::vector<at::Tensor> all;
  if (o.return_all_timesteps) all.push_back(x);
  at::Tensor x0_prev;
  int64_t step = 0;
  for (size_t i = 1; i < walk.size(); ++i) {
    const int64_t t_value = time_of(walk[i - 1]), t_next = time_of(walk[i]);
    if (walk[i] > walk[i - 1]) {
      // A jump up between DDIM times: q(x_{t_next} | x_t) = N(sqrt(ab_next / ab) x_t, 1 - ab_next / ab).
      const double ratio = levels.at(t_next) / levels.at(t_value);
      x = std::sqrt(ratio) * x + std::sqrt(1 - ratio) * noise(x.sizes());
      continue;
    }
    at::Tensor t = at::full({batch}, t_value, at::TensorOptions().dtype(at::kLong).device(o.device));
    const bool x0_step = guidance && o.x0_guidance && o.x0_guidance->guides(static_cast<double>(t_value));
    for (int64_t r = 0; r < (x0_step ? recurrence : 1); ++r) {
      if (r > 0) x = renoise(x, levels.at(t_next), levels.at(t_value), noise(x.sizes()));  // self-recurrence
      const at::Tensor self_cond = denoiser.self_condition() ? x0_prev : at::Tensor();
      Prediction p;
      if (x0_step) {
        p = x0_guided_prediction(denoiser, model, s, *guidance, x, t, self_cond, o.clip_denoised, *o.x0_guidance,
                                 step_context(s, t_value, step, total));
        x0_prev = p.x0;
      } else {
        p = denoiser.prediction(s, x, t, model(x, t, self_cond), o.clip_denoised);
        x0_prev = p.x0;  // the model's own (unguided) x0, as in the ancestral sampler
        if (guidance && !o.x0_guidance) {
          p = condition_score(s, x, t, p, guided_gradient(*guidance, s, x, t, step, t_value, total, p));
          if (o.clip_after_guidance) p.x0 = p.x0.clamp(-1.0, 1.0);
        }
      }
      x = ddim_update(s, p, x, t_value, t_next, o.ddim_eta, noise);
      if (edit.masked()) x = edit.known(x, std::sqrt(levels.at(t_next)), std::sqrt(1 - levels.at(t_next)));
    }
    if (o.return_all_timesteps) all.push_back(x);
    if (o.on_step) o.on_step(step, total, t_value);
    ++step;
  }
  return finish(all, x, o);
}

at::Tensor FastSampling::begin(const at::Tensor& x) {
  if (options.return_all_timesteps) trajectory.push_back(x);
  return x;
}

at::Tensor FastSampling::step_done(int64_t step, int64_t total, const at::Tensor& x_in, double alpha, double sigma) {
  at::Tensor x = edit.known(x_in, alpha, sigma);
  if (options.return_all_timesteps) trajectory.push_back(x);
  if (options.on_step) options.on_step(step, total, model.last_timestep());
  return x;
}

namespace {

void check_fast_options(const SampleOptions& o) {
  using M = SampleOptions::Method;
  const SampleOptions::Fast& f = o.fast;
  std::ostringstream msg;
  const bool solver = o.method == M::DpmSolverPP || o.method == M::DpmSolver || o.method == M::UniPC;
  if (f.steps < 1) {
    msg << "steps must be a positive integer; got " << f.steps;
  } else if (solver && (f.order < 1 || f.order > 3)) {
    msg << "order must be 1, 2 or 3; got " << f.order;
  } else if (solver && f.skip_type != "time_uniform" && f.skip_type != "logSNR" && f.skip_type != "time_quadratic") {
    msg << "skipType must be one of time_uniform, logSNR, time_quadratic; got '" << f.skip_type << "'";
  } else if (f.thresholding && !(f.threshold_ratio > 0 && f.threshold_ratio <= 1)) {
    msg << "thresholding.ratio must be in (0, 1]; got " << f.threshold_ratio;
  } else if (f.thresholding && !(f.threshold_max > 0 && std::isfinite(f.threshold_max))) {
    msg << "thresholding.maxVal must be a positive number; got " << f.threshold_max;
  } else if (!(f.rho > 0 && std::isfinite(f.rho))) {
    msg << "rho must be a positive number; got " << f.rho;
  } else {
    return;
  }
  throw std::invalid_argument(msg.str());
}

at::Tensor sample_fast(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance, const SampleOptions& o) {
  using M = SampleOptions::Method;
  check_fast_options(o);
  at::NoGradGuard no_grad;
  const Schedule s = schedule.to(o.device);
  const Noise noise(o);
  EpsModel model(denoiser, s, guidance, o.cuda_graph);
  model.set_total_steps(o.fast.steps);
  if (o.x0_guidance) model.set_x0_guidance(*o.x0_guidance);
  auto draw = [&noise](at::IntArrayRef shape) { return noise(shape); };
  const Edit edit(o, draw);
  FastSampling run{model, o, draw, edit, {}};
  at::Tensor x = noise(o.shape);
  if (o.method == M::DpmSolverPP || o.method == M::DpmSolver) {
    x = sample_dpm_solver(run, s, x);
  } else if (o.method == M::UniPC) {
    x = sample_unipc(run, s, x);
  } else {
    x = sample_k_diffusion(run, s, x);
  }
  return finish(run.trajectory, x, o);
}

}  // namespace

at::Tensor sample(const Denoiser& denoiser, const Schedule& schedule, Guidance* guidance,
                  const SampleOptions& options) {
  check_options(schedule, options);
  if (options.x0_guidance) check_x0_guidance_options(*options.x0_guidance);
  if (is_fast_method(options.method)) return sample_fast(denoiser, schedule, guidance, options);
  if (options.method == SampleOptions::Method::Ancestral) return sample_ancestral(denoiser, schedule, guidance, options);
  if (options.method == SampleOptions::Method::Ddim) return sample_ddim(denoiser, schedule, guidance, options);
  if (options.sampling_timesteps == schedule.timesteps) {
    return sample_ancestral(denoiser, schedule, guidance, options);
  }
  return sample_ddim(denoiser, schedule, guidance, options);
}

}  // namespace gd
