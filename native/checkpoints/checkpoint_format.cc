#include "checkpoints/checkpoint_format.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "checkpoints/zip_archive.h"

namespace gd::checkpoints {

Format SniffFormat(const std::string& path, std::string* head) {
  uint8_t b[16] = {};
  size_t n = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    n = std::fread(b, 1, sizeof(b), f);
    std::fclose(f);
  }
  if (LooksLikeZip(b, n)) return Format::Zip;
  // torch.save's legacy format starts with a pickle of its magic number: PROTO 2..5, or from
  // protocols 0 and 1 the number as decimal text (a LONG opcode).
  if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return Format::Pickle;
  if (n >= 11 && std::memcmp(b, "L1195470371", 11) == 0) return Format::Pickle;
  // safetensors: the JSON header follows the length (its spec: it starts with '{').
  if (n >= 9 && b[8] == '{') return Format::Safetensors;
  if (head != nullptr) {
    char hex[4];
    head->clear();
    for (size_t i = 0; i < n && i < 8; i++) {
      std::snprintf(hex, sizeof(hex), i ? " %02x" : "%02x", b[i]);
      *head += hex;
    }
  }
  return Format::Unknown;
}

const char* FormatName(Format f) {
  switch (f) {
    case Format::Zip: return "zip";
    case Format::Pickle: return "pickle";
    case Format::Safetensors: return "safetensors";
    case Format::Unknown: return "unknown";
  }
  return "unknown";
}

}  // namespace gd::checkpoints
