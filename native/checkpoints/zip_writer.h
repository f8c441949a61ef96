// Writes an uncompressed zip archive as torch.save does: entries stored (method 0), each entry's
// data aligned to 64 bytes by padding in its local extra field (so that a reader may map a
// storage), zip64 records when an offset or size does not fit in 32 bits (or when asked). The
// archive is written to a temporary file beside the target and renamed over it once complete
// and synced, so a crash or a full disk never leaves a half-written file under the target name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gd::checkpoints {

struct ZipSource {
  std::string name;
  const void* data = nullptr;
  uint64_t size = 0;
};

// Throws std::runtime_error naming the path and the system's reason when it cannot be written.
void WriteZip(const std::string& path, const std::vector<ZipSource>& entries, bool force_zip64 = false);

}  // namespace gd::checkpoints
