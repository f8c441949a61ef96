// DPM-Solver and DPM-Solver++ (Lu et al. 2022), multistep and singlestep, orders 1 to 3,
// following dpm_solver_pytorch.py's updates term by term ("dpmsolver" solver type) so seeded
// samples match it to float32 rounding. Coefficients are float32 host scalars: every image of
// the batch is at the same time.
#include <cmath>
#include <deque>
#include <stdexcept>
#include <utility>
#include <vector>

#include "diffusion/fast_samplers.h"
#include "diffusion/vp_schedule.h"

namespace gd {

namespace {

class DpmSolver {
 public:
  DpmSolver(FastSampling& run, const VpSchedule& vp, bool plus_plus)
      : run_(run), vp_(vp), pp_(plus_plus), o_(run.options.fast) {}

  // The data prediction (DPM-Solver++, thresholded when asked) or the noise prediction.
  at::Tensor model(const at::Tensor& x, float t) {
    const float alpha = vp_.alpha(t), sigma = vp_.sigma(t);
    at::Tensor eps = run_.model(x, vp_.step_index(t), alpha, sigma);
    if (!pp_) return eps;
    at::Tensor x0 = (x - sigma * eps) / alpha;
    return o_.thresholding ? dynamic_threshold(x0, o_.threshold_ratio, o_.threshold_max) : x0;
  }

  at::Tensor first_update(const at::Tensor& x, float s, float t, const at::Tensor& model_s) {
    const float h = vp_.lambda(t) - vp_.lambda(s);
    if (pp_) {
      const float phi_1 = std::expm1(-h);
      return (vp_.sigma(t) / vp_.sigma(s)) * x - (vp_.alpha(t) * phi_1) * model_s;
    }
    const float phi_1 = std::expm1(h);
    return std::exp(vp_.log_alpha(t) - vp_.log_alpha(s)) * x - (vp_.sigma(t) * phi_1) * model_s;
  }

  // Multistep update of `order` from the last time of `ts` to t, with the model values `ms`.
  at::Tensor multistep_update(const at::Tensor& x, const std::deque<at::Tensor>& ms, const std::deque<float>& ts, float t,
                              int64_t order) {
    const size_t n = ts.size();
    if (order == 1) return first_update(x, ts[n - 1], t, ms[n - 1]);
    const float t0 = ts[n - 1];
    const float lambda_0 = vp_.lambda(t0), lambda_1 = vp_.lambda(ts[n - 2]), lambda_t = vp_.lambda(t);
    const float sigma_ratio = vp_.sigma(t) / vp_.sigma(t0);
    const float alpha_ratio = std::exp(vp_.log_alpha(t) - vp_.log_alpha(t0));
    const float alpha_t = vp_.alpha(t), sigma_t = vp_.sigma(t);
    const float h = lambda_t - lambda_0, h_0 = lambda_0 - lambda_1, r0 = h_0 / h;
    const at::Tensor& m0 = ms[n - 1];
    const at::Tensor& m1 = ms[n - 2];
    at::Tensor d1_0 = (1.0f / r0) * (m0 - m1);
    if (order == 2) {
      if (pp_) {
        const float phi_1 = std::expm1(-h);
        return sigma_ratio * x - (alpha_t * phi_1) * m0 - (0.5f * (alpha_t * phi_1)) * d1_0;
      }
      const float phi_1 = std::expm1(h);
      return alpha_ratio * x - (sigma_t * phi_1) * m0 - (0.5f * (sigma_t * phi_1)) * d1_0;
    }
    const float h_1 = lambda_1 - vp_.lambda(ts[n - 3]), r1 = h_1 / h;
    at::Tensor d1_1 = (1.0f / r1) * (m1 - ms[n - 3]);
    at::Tensor d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1);
    at::Tensor d2 = (1.0f / (r0 + r1)) * (d1_0 - d1_1);
    if (pp_) {
      const float phi_1 = std::expm1(-h), phi_2 = phi_1 / h + 1.0f, phi_3 = phi_2 / h - 0.5f;
      return sigma_ratio * x - (alpha_t * phi_1) * m0 + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2;
    }
    const float phi_1 = std::expm1(h), phi_2 = phi_1 / h - 1.0f, phi_3 = phi_2 / h - 0.5f;
    return alpha_ratio * x - (sigma_t * phi_1) * m0 - (sigma_t * phi_2) * d1 - (sigma_t * phi_3) * d2;
  }

  // Singlestep update of `order` from s to t; r1, r2 place the intermediate times in lambda.
  at::Tensor singlestep_update(const at::Tensor& x, float s, float t, int64_t order, float r1, float r2) {
    at::Tensor model_s = model(x, s);
    if (order == 1) return first_update(x, s, t, model_s);
    const float lambda_s = vp_.lambda(s), h = vp_.lambda(t) - lambda_s;
    const float s1 = vp_.inverse_lambda(lambda_s + r1 * h);
    const float la_s = vp_.log_alpha(s), la_s1 = vp_.log_alpha(s1), la_t = vp_.log_alpha(t);
    const float sigma_s = vp_.sigma(s), sigma_s1 = vp_.sigma(s1), sigma_t = vp_.sigma(t);
    const float alpha_s1 = std::exp(la_s1), alpha_t = std::exp(la_t);
    if (order == 2) {
      if (pp_) {
        const float phi_11 = std::expm1(-r1 * h), phi_1 = std::expm1(-h);
        at::Tensor x_s1 = (sigma_s1 / sigma_s) * x - (alpha_s1 * phi_11) * model_s;
        at::Tensor model_s1 = model(x_s1, s1);
        return (sigma_t / sigma_s) * x - (alpha_t * phi_1) * model_s - ((0.5f / r1) * (alpha_t * phi_1)) * (model_s1 - model_s);
      }
      const float phi_11 = std::expm1(r1 * h), phi_1 = std::expm1(h);
      at::Tensor x_s1 = std::exp(la_s1 - la_s) * x - (sigma_s1 * phi_11) * model_s;
      at::Tensor model_s1 = model(x_s1, s1);
      return std::exp(la_t - la_s) * x - (sigma_t * phi_1) * model_s - ((0.5f / r1) * (sigma_t * phi_1)) * (model_s1 - model_s);
    }
    const float s2 = vp_.inverse_lambda(lambda_s + r2 * h);
    const float la_s2 = vp_.log_alpha(s2), sigma_s2 = vp_.sigma(s2), alpha_s2 = std::exp(la_s2);
    if (pp_) {
      const float phi_11 = std::expm1(-r1 * h), phi_12 = std::expm1(-r2 * h), phi_1 = std::expm1(-h);
      const float phi_22 = std::expm1(-r2 * h) / (r2 * h) + 1.0f, phi_2 = phi_1 / h + 1.0f;
      at::Tensor x_s1 = (sigma_s1 / sigma_s) * x - (alpha_s1 * phi_11) * model_s;
      at::Tensor model_s1 = model(x_s1, s1);
      at::Tensor x_s2 = (sigma_s2 / sigma_s) * x - (alpha_s2 * phi_12) * model_s + ((r2 / r1) * (alpha_s2 * phi_22)) * (model_s1 - model_s);
      at::Tensor model_s2 = model(x_s2, s2);
      return (sigma_t / sigma_s) * x - (alpha_t * phi_1) * model_s + ((1.0f / r2) * (alpha_t * phi_2)) * (model_s2 - model_s);
    }
    const float phi_11 = std::expm1(r1 * h), phi_12 = std::expm1(r2 * h), phi_1 = std::expm1(h);
    const float phi_22 = std::expm1(r2 * h) / (r2 * h) - 1.0f, phi_2 = phi_1 / h - 1.0f;
    at::Tensor x_s1 = std::exp(la_s1 - la_s) * x - (sigma_s1 * phi_11) * model_s;
    at::Tensor model_s1 = model(x_s1, s1);
    at::Tensor x_s2 = std::exp(la_s2 - la_s) * x - (sigma_s2 * phi_12) * model_s - ((r2 / r1) * (sigma_s2 * phi_22)) * (model_s1 - model_s);
    at::Tensor model_s2 = model(x_s2, s2);
    return std::exp(la_t - la_s) * x - (sigma_t * phi_1) * model_s - ((1.0f / r2) * (sigma_t * phi_2)) * (model_s2 - model_s);
  }

  // An edit's start on the grid of `steps` intervals: the last run.edit.steps(steps) of them,
  // from init noised to the first (DPM-Solver's t_start). Returns {t_start, steps to run}; x
  // becomes the start (init itself when no step runs).
  std::pair<float, int64_t> edit_start(at::Tensor& x, int64_t steps) {
    const int64_t k = run_.edit.steps(steps);
    if (k == steps) return {1.0f, steps};
    if (k == 0) {
      x = run_.edit.init();
      return {1.0f, 0};
    }
    const float t0 = vp_.time_steps(o_.skip_type, 1.0f, vp_.t_end(), steps)[static_cast<size_t>(steps - k)];
    x = run_.edit.start(x, vp_.alpha(t0), vp_.sigma(t0));
    return {t0, k};
  }

  at::Tensor multistep(at::Tensor x) {
    const auto [t_start, steps] = edit_start(x, o_.steps);
    run_.begin(x);
    if (steps == 0) return x;
    const std::vector<float> ts = vp_.time_steps(o_.skip_type, t_start, vp_.t_end(), steps);
    MultistepHistory h{std::min(o_.order, steps), {ts[0]}, {model(x, ts[0])}};
    // The reference lowers the last steps' order only below 10 steps.
    const bool lower_final = o_.lower_order_final && steps < 10;
    for (int64_t step = 1; step <= steps; ++step) {
      const float s = h.t.back(), t = ts[static_cast<size_t>(step)];
      const int64_t takes = run_.takes(vp_.step_index(s));
      for (int64_t r = 0; r < takes; ++r) {
        // A retake starts from the history before the step, its newest value (at s) computed
        // again at the renoised x_s: the last take's value stays in the history.
        if (r > 0) {
          x = run_.retake(x, vp_.alpha(t), vp_.sigma(t), vp_.alpha(s), vp_.sigma(s));
          h.m.back() = model(x, s);
        }
        x = multistep_update(x, h.m, h.t, t, h.step_order(step, steps, lower_final));
      }
      x = run_.step_done(step - 1, steps, x, vp_.alpha(t), vp_.sigma(t));
      h.advance(t);
      if (step < steps) h.m.push_back(model(x, t));
    }
    return x;
  }

  // DPM-Solver-fast: `steps` model calls split into steps of order 3, 2 and 1 as the
  // reference's get_orders_and_timesteps_for_singlestep_solver.
  at::Tensor singlestep(at::Tensor x) {
    const auto [t_start, steps] = edit_start(x, o_.steps);
    run_.begin(x);
    if (steps == 0) return x;
    const int64_t order = o_.order;
    std::vector<int64_t> orders;
    int64_t k = steps;
    if (order == 3) {
      k = steps / 3 + 1;
      orders.assign(static_cast<size_t>(steps % 3 == 0 ? k - 2 : k - 1), 3);
      if (steps % 3 == 0) orders.insert(orders.end(), {2, 1});
      if (steps % 3 == 1) orders.push_back(1);
      if (steps % 3 == 2) orders.push_back(2);
    } else if (order == 2) {
      k = (steps + 1) / 2;
      orders.assign(static_cast<size_t>(steps / 2), 2);
      if (steps % 2 == 1) orders.push_back(1);
    } else {
      orders.assign(static_cast<size_t>(steps), 1);
    }
    std::vector<float> outer;
    if (o_.skip_type == "logSNR") {
      outer = vp_.time_steps(o_.skip_type, t_start, vp_.t_end(), k);
    } else {
      const std::vector<float> all = vp_.time_steps(o_.skip_type, t_start, vp_.t_end(), steps);
      size_t at = 0;
      outer.push_back(all[0]);
      for (int64_t o : orders) outer.push_back(all[at += static_cast<size_t>(o)]);
    }
    const int64_t total = static_cast<int64_t>(orders.size());
    for (int64_t i = 0; i < total; ++i) {
      const float s = outer[static_cast<size_t>(i)], t = outer[static_cast<size_t>(i) + 1];
      const int64_t step_order = orders[static_cast<size_t>(i)];
      const std::vector<float> inner = vp_.time_steps(o_.skip_type, s, t, step_order);
      std::vector<float> lambdas;
      for (float v : inner) lambdas.push_back(vp_.lambda(v));
      const float h = lambdas.back() - lambdas.front();
      const float r1 = step_order <= 1 ? 0.5f : (lambdas[1] - lambdas[0]) / h;
      const float r2 = step_order <= 2 ? 2.0f / 3.0f : (lambdas[2] - lambdas[0]) / h;
      const int64_t takes = run_.takes(vp_.step_index(s));
      for (int64_t r = 0; r < takes; ++r) {
        if (r > 0) x = run_.retake(x, vp_.alpha(t), vp_.sigma(t), vp_.alpha(s), vp_.sigma(s));
        x = singlestep_update(x, s, t, step_order, r1, r2);  // all its model calls again
      }
      x = run_.step_done(i, total, x, vp_.alpha(t), vp_.sigma(t));
    }
    return x;
  }

 private:
  FastSampling& run_;
  const VpSchedule& vp_;
  bool pp_;
  const SampleOptions::Fast& o_;
};

}  // namespace

at::Tensor dynamic_threshold(const at::Tensor& x0, double ratio, double max_val) {
  at::Tensor s = at::quantile(x0.abs().reshape({x0.size(0), -1}), ratio, /*dim=*/1);
  s = at::maximum(s, max_val * at::ones_like(s));
  std::vector<int64_t> shape(static_cast<size_t>(x0.dim()), 1);
  shape[0] = x0.size(0);
  s = s.view(shape);
  return at::clamp(x0, -s, s) / s;
}

at::Tensor sample_dpm_solver(FastSampling& run, const Schedule& schedule, at::Tensor x) {
  const SampleOptions::Fast& o = run.options.fast;
  const bool pp = run.options.method == SampleOptions::Method::DpmSolverPP;
  const VpSchedule vp(schedule, /*clip_alpha=*/true);
  if (o.steps > vp.total_n()) {
    throw std::invalid_argument("steps (" + std::to_string(o.steps) + ") cannot exceed the schedule's " +
                                std::to_string(vp.total_n()) + " steps (after DPM-Solver's clipping of its log-SNR)");
  }
  if (!o.singlestep && o.steps < o.order) {
    throw std::invalid_argument("multistep DPM-Solver of order " + std::to_string(o.order) + " needs steps >= order; got steps " +
                                std::to_string(o.steps));
  }
  DpmSolver solver(run, vp, pp);
  return o.singlestep ? solver.singlestep(std::move(x)) : solver.multistep(std::move(x));
}

}  // namespace gd
