#include "checkpoints/zip_archive.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace gd::checkpoints {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEnd = 0x06054b50;
constexpr uint32_t kEnd64 = 0x06064b50;
constexpr uint32_t kEnd64Locator = 0x07064b50;
constexpr const char* kNotZip = "it is not a complete zip archive (truncated or not a zip file)";
// Deflate cannot expand data by more than about 1032:1; a header that claims more is a lie
// that would have us allocate for it.
constexpr uint64_t kMaxDeflateRatio = 1032;

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) { return static_cast<uint32_t>(U16(p)) | (static_cast<uint32_t>(U16(p + 2)) << 16); }
uint64_t U64(const uint8_t* p) { return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32); }

[[noreturn]] void FailZip(const std::string& what) { throw CheckpointError(what); }

}  // namespace

bool LooksLikeZip(const uint8_t* head, size_t n) { return n >= 4 && U32(head) == kLocalHeader; }

bool ZipArchive::ReadAt(uint64_t offset, uint64_t n, void* out) const {
  if (offset > file_size_ || n > file_size_ - offset) return false;
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd_, p, chunk, static_cast<off_t>(offset));
    if (got <= 0) return false;
    p += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

ZipArchive::ZipArchive(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) FailZip("it cannot be read");
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  if (end < 0) {
    ::close(fd_);
    FailZip("it cannot be read");
  }
  file_size_ = static_cast<uint64_t>(end);
  try {
    uint8_t head[4];
    if (!ReadAt(0, 4, head) || !LooksLikeZip(head, 4) || file_size_ < 22) FailZip(kNotZip);

    // The end-of-central-directory record (and its zip64 form), found as a zip reader does.
    const uint64_t tail = std::min<uint64_t>(file_size_, 22 + 0xFFFF);
    std::vector<uint8_t> buf(tail);
    if (!ReadAt(file_size_ - tail, tail, buf.data())) FailZip(kNotZip);
    uint64_t entries = 0, dir_size = 0, dir_offset = 0, dir_end = 0;
    bool found = false;
    for (uint64_t i = tail - 22 + 1; i-- > 0 && !found;) {
      const uint8_t* p = buf.data() + i;
      if (U32(p) != kEnd || i + 22 + U16(p + 20) != tail) continue;
      found = true;
      const uint64_t eocd = file_size_ - tail + i;
      entries = U16(p + 10);
      dir_size = U32(p + 12);
      dir_offset = U32(p + 16);
      dir_end = eocd;
      uint8_t loc[20];
      if (eocd >= 20 && ReadAt(eocd - 20, 20, loc) && U32(loc) == kEnd64Locator) {
        const uint64_t at = U64(loc + 8);
        uint8_t rec[56];
        if (at > eocd || !ReadAt(at, 56, rec) || U32(rec) != kEnd64) FailZip(kNotZip);
        entries = U64(rec + 32);
        dir_size = U64(rec + 40);
        dir_offset = U64(rec + 48);
        dir_end = at;
      }
    }
    if (!found || dir_offset > dir_end || dir_size > dir_end - dir_offset) FailZip(kNotZip);
    // Each central record takes at least 46 bytes: a count beyond that is a lie.
    if (entries > dir_size / 46) FailZip(kNotZip);
    std::vector<uint8_t> cd(dir_size);
    if (!ReadAt(dir_offset, dir_size, cd.data())) FailZip(kNotZip);

    uint64_t pos = 0;
    entries_.reserve(entries);
    for (uint64_t i = 0; i < entries; i++) {
      if (pos + 46 > cd.size() || U32(cd.data() + pos) != kCentralHeader) FailZip(kNotZip);
      const uint8_t* e = cd.data() + pos;
      const uint64_t name_len = U16(e + 28), extra_len = U16(e + 30), comment_len = U16(e + 32);
      const uint64_t next = pos + 46 + name_len + extra_len + comment_len;
      if (next > cd.size()) FailZip(kNotZip);
      ZipEntry entry;
      entry.name.assign(reinterpret_cast<const char*>(e + 46), name_len);
      entry.method = U16(e + 10);
      entry.crc = U32(e + 16);
      entry.compressed = U32(e + 20);
      entry.size = U32(e + 24);
      uint64_t local = U32(e + 42);
      // Zip64: the fields set to 0xFFFFFFFF are in the extra field, in this order.
      for (uint64_t x = 46 + name_len; x + 4 <= 46 + name_len + extra_len;) {
        const uint16_t id = U16(e + x), len = U16(e + x + 2);
        if (x + 4 + len > 46 + name_len + extra_len) FailZip(kNotZip);
        if (id == 0x0001) {
          uint64_t at = x + 4;
          auto take = [&](uint64_t& field) {
            if (field != 0xFFFFFFFFu) return;
            if (at + 8 > x + 4 + len) FailZip(kNotZip);
            field = U64(e + at);
            at += 8;
          };
          take(entry.size);
          take(entry.compressed);
          take(local);
        }
        x += 4 + len;
      }
      uint8_t lh[30];
      if (!ReadAt(local, 30, lh) || U32(lh) != kLocalHeader) FailZip(kNotZip);
      entry.data_offset = local + 30 + U16(lh + 26) + U16(lh + 28);
      if (entry.data_offset > dir_offset || entry.compressed > dir_offset - entry.data_offset) FailZip(kNotZip);
      // Sizes are what a reader allocates: a stored entry's two sizes agree, a deflated one's
      // cannot exceed what deflate can expand to.
      if (entry.method == 0 && entry.compressed != entry.size) FailZip("its zip entry " + entry.name + " is stored with two different sizes");
      if (entry.method == 8 && entry.size > entry.compressed * kMaxDeflateRatio + 1024) {
        FailZip("its zip entry " + entry.name + " claims " + std::to_string(entry.size) + " bytes from " +
             std::to_string(entry.compressed) + " compressed, more than deflate can give");
      }
      entry.local_offset = local;
      // Two entries of one name are a hostile file's classic trick: readers disagree on which
      // one counts (PyTorch takes the last, most zip tools the first).
      if (!index_.emplace(entry.name, entries_.size()).second) {
        FailZip("it holds two zip entries named " + entry.name + " (a damaged or crafted archive)");
      }
      entries_.push_back(std::move(entry));
      pos = next;
    }
    // A zip writer puts each entry's bytes in a place of their own. Entries that share bytes
    // would have a reader allocate the same block once per name (1,000 names of one 1 MiB block
    // in a 3 MB file ask for 1 GiB): refused, so what is read never exceeds the file's size.
    std::vector<const ZipEntry*> by_offset;
    by_offset.reserve(entries_.size());
    for (const auto& e : entries_) by_offset.push_back(&e);
    std::stable_sort(by_offset.begin(), by_offset.end(), [](const ZipEntry* a, const ZipEntry* b) { return a->local_offset < b->local_offset; });
    for (size_t i = 1; i < by_offset.size(); i++) {
      const ZipEntry* a = by_offset[i - 1];
      const ZipEntry* b = by_offset[i];
      if (b->local_offset < a->data_offset + a->compressed) {
        FailZip("its zip entries " + a->name + " and " + b->name + " share bytes (a damaged or crafted archive)");
      }
    }
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

ZipArchive::~ZipArchive() {
  if (fd_ >= 0) ::close(fd_);
}

const ZipEntry* ZipArchive::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void ZipArchive::Read(const ZipEntry& entry, void* out) const {
  if (entry.method == 0) {
    if (!ReadAt(entry.data_offset, entry.size, out)) FailZip(kNotZip);
  } else if (entry.method == 8) {
    z_stream s{};
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) FailZip("zlib could not start");
    std::vector<uint8_t> in(static_cast<size_t>(std::min<uint64_t>(entry.compressed, 1u << 20)));
    uint64_t read = 0;
    s.next_out = static_cast<Bytef*>(out);
    uint64_t out_left = entry.size;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (s.avail_in == 0) {
        const uint64_t n = std::min<uint64_t>(in.size(), entry.compressed - read);
        if (n == 0 || !ReadAt(entry.data_offset + read, n, in.data())) break;
        read += n;
        s.next_in = in.data();
        s.avail_in = static_cast<uInt>(n);
      }
      const uInt chunk = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      s.avail_out = chunk;
      rc = inflate(&s, Z_NO_FLUSH);
      out_left -= chunk - s.avail_out;
      if (rc != Z_OK && rc != Z_STREAM_END) break;
    }
    inflateEnd(&s);
    if (rc != Z_STREAM_END || out_left != 0) FailZip("its zip entry " + entry.name + " does not inflate to its " + std::to_string(entry.size) + " bytes");
  } else {
    FailZip("its zip entry " + entry.name + " uses compression method " + std::to_string(entry.method) + ", which torch.save never writes");
  }
  // crc32 takes a 32-bit length: feed it in chunks.
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(out);
  for (uint64_t done = 0; done < entry.size;) {
    const uInt n = static_cast<uInt>(std::min<uint64_t>(entry.size - done, 1u << 30));
    crc = crc32(crc, p + done, n);
    done += n;
  }
  if (static_cast<uint32_t>(crc) != entry.crc) FailZip("its zip entry " + entry.name + " fails its CRC check (the file is damaged)");
}

std::vector<uint8_t> ZipArchive::Read(const ZipEntry& entry) const {
  std::vector<uint8_t> out(static_cast<size_t>(entry.size));
  Read(entry, out.data());
  return out;
}

}  // namespace gd::checkpoints
