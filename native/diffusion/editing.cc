#include "diffusion/editing.h"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include "diffusion/samplers.h"
#include "diffusion/transfer.h"

namespace gd {

int64_t edit_steps(int64_t n, double strength) {
  if (!(strength >= 0 && strength <= 1)) throw std::invalid_argument("strength must be in [0, 1]");
  const double k = std::floor(static_cast<double>(n) * strength * (1 + 1e-9));
  return std::min<int64_t>(n, static_cast<int64_t>(k));
}

std::vector<int64_t> repaint_schedule(int64_t steps, int64_t jump_length, int64_t jump_count) {
  if (steps < 1) throw std::invalid_argument("the RePaint schedule needs at least 1 step");
  if (jump_length < 0 || jump_count < 1) throw std::invalid_argument("jumpLength and jumpCount must be positive integers");
  // Jumps left at each multiple j of jump_length below steps - jump_length.
  std::map<int64_t, int64_t> left;
  if (jump_length > 0 && jump_count > 1) {
    for (int64_t j = 0; j < steps - jump_length; j += jump_length) left[j] = jump_count - 1;
  }
  std::vector<int64_t> ts;
  int64_t t = steps;
  while (t >= 1) {
    ts.push_back(--t);
    auto it = left.find(t);
    if (it != left.end() && it->second > 0) {
      --it->second;
      for (int64_t i = 0; i < jump_length; ++i) ts.push_back(++t);
    }
  }
  ts.push_back(-1);
  return ts;
}

namespace {

bool broadcasts_to(at::IntArrayRef from, at::IntArrayRef to) {
  if (from.size() > to.size()) return false;
  const size_t off = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1 && from[i] != to[off + i]) return false;
  }
  return true;
}

std::string dims(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

}  // namespace

void check_edit_options(const SampleOptions& o) {
  using M = SampleOptions::Method;
  const at::IntArrayRef shape(o.shape);
  std::ostringstream msg;
  const bool jumps = o.jump_length != 0 || o.jump_count != 1;
  if (!(o.strength >= 0 && o.strength <= 1)) {
    msg << "strength must be in [0, 1]; got " << o.strength;
  } else if (o.strength != 1 && !o.init.defined()) {
    msg << "strength needs init (the image to edit)";
  } else if (o.mask.defined() && !o.init.defined()) {
    msg << "mask needs init (the image whose masked region is kept)";
  } else if (jumps && !o.mask.defined()) {
    msg << "jumpLength and jumpCount (RePaint's resampling) need a mask";
  } else if (jumps && (o.jump_length < 1 || o.jump_count < 1)) {
    msg << "jumpLength and jumpCount must be positive integers; got " << o.jump_length << " and " << o.jump_count;
  } else if (jumps && is_fast_method(o.method)) {
    msg << "jumpLength and jumpCount (RePaint's resampling) apply to the ancestral and ddim samplers";
  } else if (o.init.defined() && !at::isFloatingType(o.init.scalar_type())) {
    msg << "init must be a floating-point tensor; got " << c10::toString(o.init.scalar_type());
  } else if (o.init.defined() && (o.init.dim() < static_cast<int64_t>(shape.size()) - 1 || !broadcasts_to(o.init.sizes(), shape))) {
    msg << "init of shape " << dims(o.init.sizes()) << " does not fit the samples' shape " << dims(shape)
        << " (give [C, H, W], [1, C, H, W] or one image per sample)";
  } else if (o.mask.defined() && !broadcasts_to(o.mask.sizes(), shape)) {
    msg << "mask of shape " << dims(o.mask.sizes()) << " does not broadcast to the samples' shape " << dims(shape)
        << " (give [H, W], [1, H, W], [B, 1, H, W] or the samples' shape)";
  } else {
    return;
  }
  throw std::invalid_argument(msg.str());
}

Edit::Edit(const SampleOptions& o, std::function<at::Tensor(at::IntArrayRef)> noise) : strength_(o.strength), noise_(std::move(noise)) {
  check_edit_options(o);
  if (!o.init.defined()) return;
  const auto options = at::TensorOptions().dtype(at::kFloat).device(o.device);
  init_ = to_device(o.init.to(at::kFloat), o.device).expand(o.shape).contiguous();
  if (o.mask.defined()) mask_ = to_device(o.mask.to(at::kFloat), o.device).to(options);
}

int64_t Edit::steps(int64_t n) const { return editing() ? edit_steps(n, strength_) : n; }

at::Tensor Edit::start(const at::Tensor& z, double alpha, double sigma) const { return alpha * init_ + sigma * z; }

at::Tensor Edit::known(const at::Tensor& x, double alpha, double sigma) const {
  if (!masked()) return x;
  at::Tensor k = sigma == 0 ? alpha * init_ : alpha * init_ + sigma * noise_(x.sizes());
  return mask_ * k + (1 - mask_) * x;
}

}  // namespace gd
