#include "checkpoints/zip_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace gd::checkpoints {

namespace {

constexpr uint64_t kAlign = 64;
constexpr uint32_t kMax32 = 0xFFFFFFFFu;
constexpr uint16_t kZip64Id = 0x0001;
constexpr uint16_t kPadId = 0x4246;  // "FB", the id torch.save's own padding field uses

struct Buf {
  std::string b;
  void u16(uint64_t v) { for (int k = 0; k < 2; ++k) b += static_cast<char>((v >> (8 * k)) & 0xFF); }
  void u32(uint64_t v) { for (int k = 0; k < 4; ++k) b += static_cast<char>((v >> (8 * k)) & 0xFF); }
  void u64(uint64_t v) { for (int k = 0; k < 8; ++k) b += static_cast<char>((v >> (8 * k)) & 0xFF); }
};

uint32_t Crc(const void* data, uint64_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const uInt n = static_cast<uInt>(std::min<uint64_t>(size, 1u << 30));
    crc = crc32(crc, p, n);
    p += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
}

class File {
 public:
  File(std::string path, std::string shown) : path_(std::move(path)), shown_(std::move(shown)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) Fail("cannot be created");
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
    if (!kept_) ::unlink(path_.c_str());
  }
  void Write(const void* data, uint64_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t put = ::write(fd_, p, static_cast<size_t>(std::min<uint64_t>(n, 1u << 30)));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) Fail("could not be written");
      p += put;
      n -= static_cast<uint64_t>(put);
      offset_ += static_cast<uint64_t>(put);
    }
  }
  uint64_t offset() const { return offset_; }
  // fsync, close, rename over `target`.
  void Commit(const std::string& target) {
    if (::fsync(fd_) != 0) Fail("could not be synced to disk");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) Fail("could not be closed");
    if (::rename(path_.c_str(), target.c_str()) != 0) Fail("could not be renamed to " + target);
    kept_ = true;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) {
    throw std::runtime_error("torch.save: " + shown_ + " " + what + " (" + std::strerror(errno) + ")");
  }
  std::string path_, shown_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool kept_ = false;
};

}  // namespace

void WriteZip(const std::string& path, const std::vector<ZipSource>& entries, bool force_zip64) {
  uint64_t total = 0;
  for (const auto& e : entries) total += e.size + 30 + e.name.size() + 20 + 4 + kAlign;
  const bool zip64 = force_zip64 || total >= kMax32 || entries.size() >= 0xFFFF;
  const uint16_t version = zip64 ? 45 : 20;

  File file(path + ".tmp-" + std::to_string(::getpid()), path);
  Buf central;
  for (const auto& e : entries) {
    const uint32_t crc = Crc(e.data, e.size);
    const uint64_t local = file.offset();
    // Local header: sizes in the zip64 extra field when zip64, then padding to align the data.
    Buf h;
    h.u32(0x04034b50);
    h.u16(version);
    h.u16(0);  // flags
    h.u16(0);  // stored
    h.u16(0);  // time
    h.u16(0x21);  // date: 1980-01-01, what zip readers take for "no date"
    h.u32(crc);
    h.u32(zip64 ? kMax32 : e.size);
    h.u32(zip64 ? kMax32 : e.size);
    h.u16(e.name.size());
    const uint64_t fixed = 30 + e.name.size() + (zip64 ? 20 : 0) + 4;
    const uint64_t pad = (kAlign - (local + fixed) % kAlign) % kAlign;
    h.u16((zip64 ? 20 : 0) + 4 + pad);
    h.b += e.name;
    if (zip64) {
      h.u16(kZip64Id);
      h.u16(16);
      h.u64(e.size);
      h.u64(e.size);
    }
    h.u16(kPadId);
    h.u16(pad);
    h.b.append(pad, 'Z');
    file.Write(h.b.data(), h.b.size());
    file.Write(e.data, e.size);

    central.u32(0x02014b50);
    central.u16(version);  // made by
    central.u16(version);  // needed
    central.u16(0);
    central.u16(0);
    central.u16(0);
    central.u16(0x21);
    central.u32(crc);
    central.u32(zip64 ? kMax32 : e.size);
    central.u32(zip64 ? kMax32 : e.size);
    central.u16(e.name.size());
    central.u16(zip64 ? 28 : 0);
    central.u16(0);  // comment
    central.u16(0);  // disk
    central.u16(0);  // internal attributes
    central.u32(0);  // external attributes
    central.u32(zip64 ? kMax32 : local);
    central.b += e.name;
    if (zip64) {
      central.u16(kZip64Id);
      central.u16(24);
      central.u64(e.size);
      central.u64(e.size);
      central.u64(local);
    }
  }
  const uint64_t dir_offset = file.offset();
  const uint64_t dir_size = central.b.size();
  Buf end;
  if (zip64) {
    end.u32(0x06064b50);  // zip64 end of central directory record
    end.u64(44);
    end.u16(45);
    end.u16(45);
    end.u32(0);
    end.u32(0);
    end.u64(entries.size());
    end.u64(entries.size());
    end.u64(dir_size);
    end.u64(dir_offset);
    end.u32(0x07064b50);  // its locator
    end.u32(0);
    end.u64(dir_offset + dir_size);
    end.u32(1);
  }
  end.u32(0x06054b50);
  end.u16(0);
  end.u16(0);
  end.u16(zip64 ? 0xFFFF : entries.size());
  end.u16(zip64 ? 0xFFFF : entries.size());
  end.u32(zip64 ? kMax32 : dir_size);
  end.u32(zip64 ? kMax32 : dir_offset);
  end.u16(0);
  file.Write(central.b.data(), central.b.size());
  file.Write(end.b.data(), end.b.size());
  file.Commit(path);
}

}  // namespace gd::checkpoints
