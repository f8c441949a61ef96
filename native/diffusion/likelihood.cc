#include "diffusion/likelihood.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace gd {

at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2) {
  // The reference's order of terms, so float32 rounding agrees.
  return 0.5 * (-1.0 + logvar2 - logvar1 + (logvar1 - logvar2).exp() + (mean1 - mean2).pow(2) * (-logvar2).exp());
}

at::Tensor approx_standard_normal_cdf(const at::Tensor& x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * (1.0 + at::tanh(k * (x + 0.044715 * x.pow(3))));
}

at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales) {
  if (x.sizes() != means.sizes() || x.sizes() != log_scales.sizes()) {
    std::ostringstream msg;
    msg << "discretized_gaussian_log_likelihood: x " << x.sizes() << ", means " << means.sizes()
        << " and log_scales " << log_scales.sizes() << " must have one shape";
    throw std::invalid_argument(msg.str());
  }
  const at::Tensor centered = x - means;
  const at::Tensor inv_stdv = (-log_scales).exp();
  const at::Tensor cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
  const at::Tensor cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
  const at::Tensor log_cdf_plus = cdf_plus.clamp_min(1e-12).log();
  const at::Tensor log_one_minus_cdf_min = (1.0 - cdf_min).clamp_min(1e-12).log();
  const at::Tensor log_cdf_delta = (cdf_plus - cdf_min).clamp_min(1e-12).log();
  // The lowest bin (x = -1) takes everything below its upper edge, the highest everything above
  // its lower edge.
  return at::where(x < -0.999, log_cdf_plus, at::where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta));
}

}  // namespace gd
