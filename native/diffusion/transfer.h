// Host <-> CUDA copies through page-locked (pinned) memory. From pageable memory the driver
// stages each copy through a bounce buffer of its own and blocks the host thread; from pinned
// memory a copy is one DMA queued on the current stream, and a host-to-device copy lets the
// host thread go on (the caching host allocator keeps the buffer until the copy is done).
// Off CUDA these are plain .to() calls, so a CPU-only build behaves as before.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace gd {

// t on `device`, in `dtype` when given. A CPU tensor bound for CUDA is copied from pinned
// memory without blocking, then converted there (fewer bytes cross the bus for uint8 data).
at::Tensor to_device(const at::Tensor& t, at::Device device, std::optional<at::ScalarType> dtype = std::nullopt);

// An uninitialised CPU tensor to fill on the host before to_device(): pinned when bound for CUDA.
at::Tensor empty_host_for(at::IntArrayRef sizes, at::ScalarType dtype, at::Device device);

// t on the CPU. A CUDA tensor comes back through pinned memory (one DMA); synchronous.
at::Tensor to_host(const at::Tensor& t);

}  // namespace gd
