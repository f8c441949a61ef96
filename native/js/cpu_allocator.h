// The CPU allocator LibTorch uses inside Node (see cpu_allocator.cc for why).
#pragma once

namespace gd::js {

// Installs the allocator once; later calls do nothing.
void InstallCpuAllocator();

}  // namespace gd::js
