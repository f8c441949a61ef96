// The first look at a checkpoint path, before a byte of it is parsed: it must be a regular file
// with content. A device (/dev/zero), a FIFO or a socket never ends, so reading one "to the end"
// allocates without bound; a symlink is judged by what it points at.
#pragma once

#include <cstdint>
#include <string>

namespace gd::checkpoints {

// Empty when `path` names a regular, non-empty file (its size in *size); else what is wrong as a
// phrase that follows "<who>: ", e.g. "no such file: P", "P is a directory, not a checkpoint file",
// "P is not a regular file (a character device)", "P is empty".
std::string FileProblem(const std::string& path, uint64_t* size = nullptr);

}  // namespace gd::checkpoints
