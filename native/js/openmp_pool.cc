#include "js/openmp_pool.h"

#include <dlfcn.h>

namespace gd::js {

namespace {

using PauseAll = int (*)(int kind);
constexpr int kOmpPauseSoft = 1;  // omp_pause_resource_t's omp_pause_soft

// The runtime LibTorch was linked with is already loaded; look it up rather than link one.
PauseAll FindPauseAll() {
  if (void* f = dlsym(RTLD_DEFAULT, "omp_pause_resource_all")) return reinterpret_cast<PauseAll>(f);
  for (const char* name : {"libgomp.so.1", "libomp.so", "libiomp5.so"}) {
    if (void* lib = dlopen(name, RTLD_LAZY | RTLD_NOLOAD)) {
      void* f = dlsym(lib, "omp_pause_resource_all");
      dlclose(lib);  // RTLD_NOLOAD took a reference to a library that stays loaded
      if (f) return reinterpret_cast<PauseAll>(f);
    }
  }
  return nullptr;
}

}  // namespace

void ReleaseOpenMpPool() {
  static const PauseAll pause_all = FindPauseAll();
  if (pause_all) pause_all(kOmpPauseSoft);
}

}  // namespace gd::js
