// LibTorch's default CPU allocator calls posix_memalign(64, n). glibc can never reuse a freed
// memalign chunk for the next request of the same size (memalign asks for n + alignment), and
// in Node the chunks do not coalesce because N-API's small per-object allocations sit between
// them: creating and disposing 16 KB tensors grew RSS by ~16 KB each, 160 MB per 10,000.
// Over-allocating with plain malloc and aligning by hand makes freed chunks exact fits again.
#include "js/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gd::js {

namespace {

constexpr size_t kAlignment = 64;  // what LibTorch's vectorised kernels expect

void Free(void* ptr) {
  if (ptr == nullptr) return;
  auto* p = static_cast<uint8_t*>(ptr);
  uint8_t offset = p[-1];
  std::free(p - offset);
}

class AlignedMallocAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return {nullptr, nullptr, &Free, c10::Device(c10::DeviceType::CPU)};
    void* raw = std::malloc(n + kAlignment);
    if (raw == nullptr) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate ", n, " bytes.");
    }
    auto base = reinterpret_cast<uintptr_t>(raw);
    uintptr_t aligned = (base + kAlignment) & ~(uintptr_t)(kAlignment - 1);  // at least 1 byte after base
    reinterpret_cast<uint8_t*>(aligned)[-1] = static_cast<uint8_t>(aligned - base);
    void* data = reinterpret_cast<void*>(aligned);
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

}  // namespace

void InstallCpuAllocator() {
  static AlignedMallocAllocator allocator;
  static bool installed = false;
  if (installed) return;
  installed = true;
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
}

}  // namespace gd::js
