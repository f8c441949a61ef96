// Universal Guidance's self-recurrence (Bansal et al. 2023, Algorithm 1) for the fast samplers:
// the pieces every sampler's step loop shares (fast_samplers.h). The samplers decide what a take
// is; here is which steps recur and how x goes back up a level between two takes.
#include <algorithm>
#include <cmath>

#include "diffusion/fast_samplers.h"

namespace gd {

int64_t FastSampling::takes(float step) const {
  return options.x0_guidance && model.x0_guides(step) ? options.x0_guidance->recurrence : 1;
}

at::Tensor FastSampling::retake(const at::Tensor& x_t, double alpha_t, double sigma_t, double alpha_s, double sigma_s) {
  // The known region first, as after any step, so that the renoised x_s carries it.
  const at::Tensor x = edit.known(x_t, alpha_t, sigma_t);
  // q(x_s | x_t) for x = alpha x0 + sigma eps: mean (alpha_s / alpha_t) x_t, variance
  // sigma_s^2 - (alpha_s / alpha_t)^2 sigma_t^2. In VP terms (alpha^2 + sigma^2 = 1) that is
  // sqrt(ab_s / ab_t) x_t + sqrt(1 - ab_s / ab_t) z; in k-diffusion's (alpha 1), x_t + sqrt(sigma_s^2 - sigma_t^2) z.
  const double ratio = alpha_s / alpha_t;
  const double variance = sigma_s * sigma_s - ratio * ratio * sigma_t * sigma_t;
  // Positive for a step down in noise; the clamp keeps float-rounded levels from a NaN.
  return ratio * x + std::sqrt(std::max(variance, 0.0)) * noise(x.sizes());
}

}  // namespace gd
