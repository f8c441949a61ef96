#pragma once
// Autocast for one device type's ops on this thread while in scope (the setting is
// thread-local): CUDA (float16 / bfloat16) or the CPU (bfloat16, oneDNN's bf16 kernels).
// The sampler's model call and the trainer's forward share it.

#include <ATen/autocast_mode.h>

namespace gd {

class AutocastScope {
 public:
  AutocastScope(at::DeviceType device, at::ScalarType dtype)
      : device_(device),
        was_enabled_(at::autocast::is_autocast_enabled(device)),
        was_dtype_(at::autocast::get_autocast_dtype(device)) {
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    // Casts of the weights are cached for the scope; drop them when the outermost one ends
    // (an optimizer step changes the weights before the next scope).
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, was_enabled_);
    at::autocast::set_autocast_dtype(device_, was_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  at::DeviceType device_;
  bool was_enabled_;
  at::ScalarType was_dtype_;
};

}  // namespace gd
