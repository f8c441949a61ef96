// A zip reader for checkpoint archives (TorchScript and torch.save both write zips), written to
// refuse rather than trust: every entry's records and data must lie inside the file, sizes are
// checked before anything is allocated, data is checked against its CRC. Reads into memory the
// caller owns (a tensor's storage), so a 2 GB storage is read once, not copied.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace gd::checkpoints {

// What is wrong with a damaged checkpoint file, as a phrase that follows "<path> is not a valid
// <format> file: " ("it is not a complete zip archive ...").
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Why a well-formed file is not read, as a phrase that follows "<path> " ("refers to
// posix.system, ...", "holds several state dicts: ...").
class CheckpointRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated
  uint32_t crc = 0;
  uint64_t compressed = 0;
  uint64_t size = 0;  // uncompressed
  uint64_t local_offset = 0;  // of its local header
  uint64_t data_offset = 0;
};

class ZipArchive {
 public:
  // Reads the central directory; throws CheckpointError when the file is not a complete zip, or
  // holds two entries of one name or entries that share bytes.
  explicit ZipArchive(const std::string& path);
  ~ZipArchive();
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* Find(const std::string& name) const;
  // Reads (inflating if need be) exactly entry.size bytes into out; checks the CRC.
  void Read(const ZipEntry& entry, void* out) const;
  std::vector<uint8_t> Read(const ZipEntry& entry) const;

 private:
  bool ReadAt(uint64_t offset, uint64_t n, void* out) const;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  std::vector<ZipEntry> entries_;
  // By name (names are unique: duplicates are refused): a pickle may look up every one of many
  // storages.
  std::unordered_map<std::string, size_t> index_;
};

// True when the file starts as a zip does (a local file header).
bool LooksLikeZip(const uint8_t* head, size_t n);

}  // namespace gd::checkpoints
