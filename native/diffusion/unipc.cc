// UniPC (Zhao et al. 2023), multistep with data prediction, variants B(h) = h (bh1) and
// B(h) = e^h - 1 (bh2), following uni_pc.py's multistep_uni_pc_bh_update: a predictor of
// order p, and a corrector that reuses the model call at the predicted x as the next step's
// model value (so each step costs one call). UniPC's schedule does not clip the log-SNR.
#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "diffusion/fast_samplers.h"
#include "diffusion/vp_schedule.h"

namespace gd {

namespace {

class UniPc {
 public:
  UniPc(FastSampling& run, const VpSchedule& vp) : run_(run), vp_(vp), o_(run.options.fast) {}

  at::Tensor model(const at::Tensor& x, float t) {
    const float alpha = vp_.alpha(t), sigma = vp_.sigma(t);
    at::Tensor eps = run_.model(x, vp_.step_index(t), alpha, sigma);
    at::Tensor x0 = (x - sigma * eps) / alpha;
    return o_.thresholding ? dynamic_threshold(x0, o_.threshold_ratio, o_.threshold_max) : x0;
  }

  // One step of `order` to t; returns x_t and, when the corrector ran, the model value at the
  // predicted x_t (undefined otherwise).
  std::pair<at::Tensor, at::Tensor> update(const at::Tensor& x, const std::deque<at::Tensor>& ms,
                                           const std::deque<float>& ts, float t, int64_t order, bool use_corrector) {
    const size_t n = ts.size();
    const float t0 = ts[n - 1];
    const float lambda_0 = vp_.lambda(t0), lambda_t = vp_.lambda(t);
    const at::Tensor& m0 = ms[n - 1];
    const float sigma_0 = vp_.sigma(t0), sigma_t = vp_.sigma(t), alpha_t = std::exp(vp_.log_alpha(t));
    const float h = lambda_t - lambda_0;
    std::vector<float> rks;
    std::vector<at::Tensor> d1s;
    for (int64_t i = 1; i < order; ++i) {
      const size_t k = n - 1 - static_cast<size_t>(i);
      const float rk = (vp_.lambda(ts[k]) - lambda_0) / h;
      rks.push_back(rk);
      d1s.push_back((ms[k] - m0) / rk);
    }
    rks.push_back(1.0f);
    const float hh = -h;  // data prediction
    const float h_phi_1 = std::expm1(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    float factorial = 1.0f;
    const float b_h = o_.unipc_bh2 ? std::expm1(hh) : hh;
    at::Tensor r = at::empty({order, order}, at::kFloat), b = at::empty({order}, at::kFloat);
    auto ra = r.accessor<float, 2>();
    auto ba = b.accessor<float, 1>();
    for (int64_t i = 1; i <= order; ++i) {
      for (int64_t j = 0; j < order; ++j) ra[i - 1][j] = std::pow(rks[static_cast<size_t>(j)], static_cast<float>(i - 1));
      ba[i - 1] = h_phi_k * factorial / b_h;
      factorial *= static_cast<float>(i + 1);
      h_phi_k = h_phi_k / hh - 1.0f / factorial;
    }
    auto weighted = [&](const std::vector<float>& rhos) {
      at::Tensor sum = rhos[0] * d1s[0];
      for (size_t k = 1; k < d1s.size(); ++k) sum = sum + rhos[k] * d1s[k];
      return sum;
    };
    auto solve = [](const at::Tensor& a, const at::Tensor& rhs) {
      at::Tensor s = at::linalg_solve(a, rhs).contiguous();
      return std::vector<float>(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
    };
    at::Tensor x_t_ = (sigma_t / sigma_0) * x - (alpha_t * h_phi_1) * m0;
    at::Tensor x_t = x_t_;
    if (!d1s.empty()) {
      const std::vector<float> rhos_p =
          order == 2 ? std::vector<float>{0.5f} : solve(r.slice(0, 0, order - 1).slice(1, 0, order - 1), b.slice(0, 0, order - 1));
      x_t = x_t_ - (alpha_t * b_h) * weighted(rhos_p);
    }
    if (!use_corrector) return {x_t, at::Tensor()};
    const std::vector<float> rhos_c = order == 1 ? std::vector<float>{0.5f} : solve(r, b);
    at::Tensor model_t = model(x_t, t);
    at::Tensor d1_t = model_t - m0;
    at::Tensor corr = rhos_c.back() * d1_t;
    if (!d1s.empty()) corr = weighted(rhos_c) + corr;
    return {x_t_ - (alpha_t * b_h) * corr, model_t};
  }

  at::Tensor sample(at::Tensor x) {
    // An edit runs the last run.edit.steps(steps) steps of the grid, from init noised to the
    // first of them (t_start, as DPM-Solver's).
    int64_t steps = o_.steps;
    std::vector<float> ts = vp_.time_steps(o_.skip_type, 1.0f, vp_.t_end(), steps);
    const int64_t k = run_.edit.steps(steps);
    if (k == 0) return run_.begin(run_.edit.init());
    if (k < steps) {
      const float t0 = ts[static_cast<size_t>(steps - k)];
      x = run_.edit.start(x, vp_.alpha(t0), vp_.sigma(t0));
      ts = vp_.time_steps(o_.skip_type, t0, vp_.t_end(), k);
      steps = k;
    }
    run_.begin(x);
    MultistepHistory h{std::min(o_.order, steps), {ts[0]}, {model(x, ts[0])}};
    for (int64_t step = 1; step <= steps; ++step) {
      const float s = h.t.back(), t = ts[static_cast<size_t>(step)];
      const int64_t order = h.step_order(step, steps, o_.lower_order_final), takes = run_.takes(vp_.step_index(s));
      at::Tensor next, model_x;
      for (int64_t r = 0; r < takes; ++r) {
        // A retake starts from the history before the step, its newest value (at s) computed
        // again at the renoised x_s. Only the last take runs the corrector: an earlier take's x_t
        // is renoised, and the corrector's model call (the next step's value) would be unused,
        // as the reference skips it at the last step.
        if (r > 0) {
          x = run_.retake(next, vp_.alpha(t), vp_.sigma(t), vp_.alpha(s), vp_.sigma(s));
          h.m.back() = model(x, s);
        }
        const bool last_take = r + 1 == takes;
        std::tie(next, model_x) = update(x, h.m, h.t, t, order, /*use_corrector=*/step < steps && last_take);
      }
      // With a mask the known region changes x after the corrector: the model value the
      // corrector computed is at the x before that, so it is computed again at the new x.
      const bool replaced = run_.edit.masked();
      x = run_.step_done(step - 1, steps, next, vp_.alpha(t), vp_.sigma(t));
      h.advance(t);
      if (step < steps) h.m.push_back(model_x.defined() && !replaced ? model_x : model(x, t));
    }
    return x;
  }

 private:
  FastSampling& run_;
  const VpSchedule& vp_;
  const SampleOptions::Fast& o_;
};

}  // namespace

at::Tensor sample_unipc(FastSampling& run, const Schedule& schedule, at::Tensor x) {
  const SampleOptions::Fast& o = run.options.fast;
  const VpSchedule vp(schedule, /*clip_alpha=*/false);
  if (o.steps > vp.total_n()) {
    throw std::invalid_argument("steps (" + std::to_string(o.steps) + ") cannot exceed the schedule's " +
                                std::to_string(vp.total_n()) + " steps");
  }
  if (o.steps < o.order) {
    throw std::invalid_argument("UniPC of order " + std::to_string(o.order) + " needs steps >= order; got steps " +
                                std::to_string(o.steps));
  }
  return UniPc(run, vp).sample(std::move(x));
}

}  // namespace gd
