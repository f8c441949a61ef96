// The Gaussian likelihood terms of the variational bound (openai/guided-diffusion's losses.py,
// after Ho et al.'s diffusion_tf utils): elementwise, broadcasting, in nats.
#pragma once

#include <ATen/ATen.h>

namespace gd {

// KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise.
at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2);

// The standard normal CDF by the tanh approximation the reference uses (not erf: the loss
// values then match theirs to float rounding).
at::Tensor approx_standard_normal_cdf(const at::Tensor& x);

// log P(x) of a Gaussian (means, log_scales = log std) discretised to the 256 bins of 8-bit
// images rescaled to [-1, 1]; the edge bins take the tails. All three of x's shape.
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales);

}  // namespace gd
