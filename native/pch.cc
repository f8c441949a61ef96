// The target that owns the precompiled header of LibTorch's headers (CMakeLists.txt: gd_pch);
// every other target reuses it. CMake needs a source file to build a precompiled header for.
#include <ATen/ATen.h>
