#include "diffusion/transfer.h"

namespace gd {

at::Tensor to_device(const at::Tensor& t, at::Device device, std::optional<at::ScalarType> dtype) {
  if (!device.is_cuda() || !t.device().is_cpu()) return dtype ? t.to(device, *dtype) : t.to(device);
  const at::Tensor pinned = t.is_pinned() ? t : t.pin_memory();
  at::Tensor out = pinned.to(device, pinned.scalar_type(), /*non_blocking=*/true);
  return dtype ? out.to(*dtype) : out;
}

at::Tensor empty_host_for(at::IntArrayRef sizes, at::ScalarType dtype, at::Device device) {
  return at::empty(sizes, at::TensorOptions().dtype(dtype).pinned_memory(device.is_cuda()));
}

at::Tensor to_host(const at::Tensor& t) {
  if (!t.is_cuda()) return t.to(at::kCPU);
  at::Tensor out = at::empty(t.sizes(), t.options().device(at::kCPU).pinned_memory(true));
  out.copy_(t);  // blocking: returns once the data is here
  return out;
}

}  // namespace gd
