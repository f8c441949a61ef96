// LibTorch's CPU allocator inside Node, and three problems of the default one (posix_memalign):
//
// 1. glibc can never reuse a freed memalign chunk for the next request of the same size
//    (memalign asks for n + alignment), and in Node the chunks do not coalesce because N-API's
//    small per-object allocations sit between them: creating and disposing 16 KB tensors grew
//    RSS by ~16 KB each, 160 MB per 10,000. Over-allocating with plain malloc and aligning by
//    hand makes freed chunks exact fits again.
// 2. A sampling loop frees and asks for the same large buffers every step. glibc hands large
//    blocks back to the kernel (munmap, or trimming a thread arena's heap), so each step
//    touches fresh pages again: ~25,000 page faults per step on the shipped model, on the
//    sampling thread, where Python's main-thread loop saw ~750. Large blocks are therefore
//    kept for reuse, up to a cap, as PyTorch's CUDA caching allocator does on the GPU.
// 3. Buffers LibTorch's kernels allocate for themselves (oneDNN's scratchpads and weight
//    reorders) do not come here. glibc serves blocks over its mmap threshold with a fresh
//    mmap each time; its dynamic threshold, which would stop that, did not rise on the
//    sampling thread. A fixed 32 MiB threshold (glibc's largest dynamic one) keeps those
//    blocks in the heap: with 1) and 2), page faults per guided step on the shipped model
//    fell from ~3,200 to ~540 and the step took 25% less time. MALLOC_MMAP_THRESHOLD_ in the
//    environment, if set, wins.
// 4. Only a running job caches. Blocks freed outside one (a checkpoint's tensors after loading,
//    the JS thread's own work) are not the next step's sizes: kept, they filled the cache before
//    a sample began (1 GiB after loading openai's 64x64 model), so the step's own buffers went
//    back to the kernel each step (680,000 page faults and 1.9x the CPU time per guided step at
//    batch 4). The limit is a quarter of physical memory, since a job's cache holds one of each
//    buffer it uses at once and is emptied when the last job ends. A request takes the smallest
//    cached block up to twice its size, not only one of its exact size: the same step then kept
//    1.6 GB cached instead of 2.2 GB, and its peak RSS fell from 3.9 to 3.3 GB.
#include "js/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <mutex>
#include <unistd.h>
#include <map>
#include <vector>

namespace gd::js {

namespace {

constexpr size_t kAlignment = 64;               // what LibTorch's vectorised kernels expect
constexpr size_t kHeader = 16;                  // the block's size, and the offset to malloc's pointer
constexpr size_t kCachedFrom = 128 * 1024;      // smaller blocks go straight back to malloc
constexpr size_t kCacheGranule = 64 * 1024;     // cached sizes are rounded up to this

struct Header {
  size_t size;     // bytes usable after the data pointer (rounded up when cached)
  uint8_t pad[7];
  uint8_t offset;  // data - malloc's pointer
};
static_assert(sizeof(Header) == kHeader, "header layout");

Header* HeaderOf(void* data) { return reinterpret_cast<Header*>(static_cast<uint8_t*>(data) - kHeader); }

void* RawAllocate(size_t size) {
  void* raw = std::malloc(size + kHeader + kAlignment);
  if (raw == nullptr) return nullptr;
  auto base = reinterpret_cast<uintptr_t>(raw);
  uintptr_t data = (base + kHeader + kAlignment - 1) & ~(uintptr_t)(kAlignment - 1);
  Header* h = HeaderOf(reinterpret_cast<void*>(data));
  h->size = size;
  h->offset = static_cast<uint8_t>(data - base);
  return reinterpret_cast<void*>(data);
}

void RawFree(void* data) { std::free(static_cast<uint8_t*>(data) - HeaderOf(data)->offset); }

class BlockCache {
 public:
  void* Take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits and is at most twice the size asked for.
    for (auto it = free_.lower_bound(size); it != free_.end() && it->first <= 2 * size; ++it) {
      if (it->second.empty()) continue;
      void* data = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= it->first;
      return data;
    }
    return nullptr;
  }

  // False when the cache is full: the caller frees the block.
  bool Put(void* data, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + size > limit_) return false;
    free_[size].push_back(data);
    cached_bytes_ += size;
    return true;
  }

  size_t Empty() {
    std::map<size_t, std::vector<void*>> blocks;
    size_t bytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      bytes = cached_bytes_;
      cached_bytes_ = 0;
    }
    for (auto& [size, list] : blocks)
      for (void* data : list) RawFree(data);
    return bytes;
  }

  CpuCacheStats Stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t blocks = 0;
    for (auto& [size, list] : free_) blocks += list.size();
    return {cached_bytes_, blocks, limit_};
  }

  void SetLimit(size_t limit) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = limit;
      if (cached_bytes_ <= limit_) return;
    }
    Empty();
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  size_t limit_ = DefaultLimit();

  static size_t DefaultLimit() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return size_t{1} << 30;
    return static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
  }
};

BlockCache& Cache() {
  static auto* cache = new BlockCache();  // never destroyed: tensors may be freed at exit
  return *cache;
}

std::atomic<int> jobs_running{0};

std::atomic<size_t> allocated_bytes{0};
std::atomic<size_t> peak_bytes{0};

void CountAllocated(size_t size) {
  const size_t now = allocated_bytes.fetch_add(size, std::memory_order_relaxed) + size;
  size_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void Free(void* data) {
  if (data == nullptr) return;
  const size_t size = HeaderOf(data)->size;
  allocated_bytes.fetch_sub(size, std::memory_order_relaxed);
  if (size >= kCachedFrom && jobs_running.load(std::memory_order_relaxed) > 0 && Cache().Put(data, size)) return;
  RawFree(data);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return {nullptr, nullptr, &Free, c10::Device(c10::DeviceType::CPU)};
    void* data = nullptr;
    size_t size = n;
    if (n >= kCachedFrom) {
      size = (n + kCacheGranule - 1) / kCacheGranule * kCacheGranule;
      data = Cache().Take(size);
    }
    if (data == nullptr) data = RawAllocate(size);
    if (data == nullptr) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU allocator: can't allocate memory: you tried to allocate ", n, " bytes.");
    }
    CountAllocated(size);
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

}  // namespace

// Workers may load the addon at the same time: once per process.
void InstallCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CachingCpuAllocator allocator;
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
#if defined(__GLIBC__)
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
#endif
  });
}

size_t EmptyCpuCache() {
  const size_t bytes = Cache().Empty();
  ReleaseFreeMemory();
  return bytes;
}

// glibc returns only the top of a heap to the kernel by itself; the pages of freed chunks
// below a live one stay resident. After loading a checkpoint (its tensors copied into the
// model's and freed) that held 1.1 GB of openai's 64x64 model resident for nothing.
void ReleaseFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

CpuCacheStats GetCpuCacheStats() { return Cache().Stats(); }

void SetCpuCacheLimit(size_t bytes) { Cache().SetLimit(bytes); }

CpuAllocated GetCpuAllocated() {
  return {allocated_bytes.load(std::memory_order_relaxed), peak_bytes.load(std::memory_order_relaxed)};
}

void ResetCpuPeak() { peak_bytes.store(allocated_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed); }

CpuCacheUse::CpuCacheUse() { ++jobs_running; }

CpuCacheUse::~CpuCacheUse() {
  if (--jobs_running == 0) EmptyCpuCache();
}

}  // namespace gd::js
