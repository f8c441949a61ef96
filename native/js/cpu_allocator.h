// The CPU allocator LibTorch uses inside Node, with a cache of large blocks (see
// cpu_allocator.cc for why).
#pragma once

#include <cstddef>

namespace gd::js {

// Installs the allocator once; later calls do nothing.
void InstallCpuAllocator();

struct CpuCacheStats {
  size_t bytes;   // held for reuse, not in any tensor
  size_t blocks;
  size_t limit;   // most bytes the cache keeps
};

// Frees every cached block and releases free memory; returns the cached bytes freed.
size_t EmptyCpuCache();
// Hands the free pages of malloc's heaps back to the kernel (glibc's malloc_trim).
void ReleaseFreeMemory();
CpuCacheStats GetCpuCacheStats();
// A lower limit frees the cache at once; 0 turns caching off.
void SetCpuCacheLimit(size_t bytes);

// Bytes held by live CPU tensors made through this allocator (the cache's blocks not counted),
// and the most held at once since the last ResetCpuPeak (or the start): what a training step
// keeps for backward shows here as in torch.cuda.max_memory_allocated. Buffers LibTorch's
// kernels allocate for themselves (oneDNN's) do not come through the allocator.
struct CpuAllocated {
  size_t bytes;
  size_t peak;
};
CpuAllocated GetCpuAllocated();
// Sets the peak to the bytes held now.
void ResetCpuPeak();

// Held by each sampling or training job while it runs: when the last one ends, the cache is
// emptied, so an idle process does not keep a job's buffers.
class CpuCacheUse {
 public:
  CpuCacheUse();
  ~CpuCacheUse();
  CpuCacheUse(const CpuCacheUse&) = delete;
  CpuCacheUse& operator=(const CpuCacheUse&) = delete;
};

}  // namespace gd::js
