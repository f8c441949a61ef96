#include "js/archive_check.h"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <vector>

namespace gd::js {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEnd = 0x06054b50;
constexpr uint32_t kEnd64 = 0x06064b50;
constexpr uint32_t kEnd64Locator = 0x07064b50;
constexpr const char* kNotZip = "it is not a complete zip archive (truncated or not a zip file)";

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) { return static_cast<uint32_t>(U16(p)) | (static_cast<uint32_t>(U16(p + 2)) << 16); }
uint64_t U64(const uint8_t* p) { return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32); }

class File {
 public:
  explicit File(const std::string& path) : in_(path, std::ios::binary) {
    if (in_) {
      in_.seekg(0, std::ios::end);
      size_ = static_cast<uint64_t>(in_.tellg());
    }
  }
  bool ok() const { return static_cast<bool>(in_); }
  uint64_t size() const { return size_; }
  // Reads n bytes at offset; false when they are not all inside the file.
  bool Read(uint64_t offset, uint64_t n, std::vector<uint8_t>& out) {
    if (offset > size_ || n > size_ - offset) return false;
    out.resize(n);
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    return n == 0 || static_cast<bool>(in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n)));
  }

 private:
  std::ifstream in_;
  uint64_t size_ = 0;
};

struct Directory {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t entries = 0;
  uint64_t end = 0;  // where the (zip64) end records start: the directory must end before
};

// Finds the end-of-central-directory record (and its zip64 form), as a zip reader does.
bool FindDirectory(File& f, Directory& dir) {
  const uint64_t size = f.size();
  if (size < 22) return false;
  const uint64_t tail = std::min<uint64_t>(size, 22 + 0xFFFF);
  std::vector<uint8_t> buf;
  if (!f.Read(size - tail, tail, buf)) return false;
  for (uint64_t i = tail - 22 + 1; i-- > 0;) {
    const uint8_t* p = buf.data() + i;
    if (U32(p) != kEnd || i + 22 + U16(p + 20) != tail) continue;
    const uint64_t eocd = size - tail + i;
    dir.entries = U16(p + 10);
    dir.size = U32(p + 12);
    dir.offset = U32(p + 16);
    dir.end = eocd;
    std::vector<uint8_t> loc;
    if (eocd >= 20 && f.Read(eocd - 20, 20, loc) && U32(loc.data()) == kEnd64Locator) {
      const uint64_t at = U64(loc.data() + 8);
      std::vector<uint8_t> rec;
      if (at > eocd || !f.Read(at, 56, rec) || U32(rec.data()) != kEnd64) return false;
      dir.entries = U64(rec.data() + 32);
      dir.size = U64(rec.data() + 40);
      dir.offset = U64(rec.data() + 48);
      dir.end = at;
    }
    return dir.offset <= dir.end && dir.size <= dir.end - dir.offset;
  }
  return false;
}

// What LibTorch's unpickler would take from a pickle that no pickler writes: a memo index
// beyond the pickle's size (LibTorch grows its memo table to that index first, so four bytes
// ask for up to 64 GiB: a 500 KB file held the loader for minutes), or a length beyond its
// end. Walks the opcodes LibTorch reads; at one it does not know it stops (LibTorch refuses it).
std::string PickleProblem(const uint8_t* p, uint64_t size) {
  uint64_t pos = 0;
  auto line = [&]() -> bool {  // a newline-terminated argument
    while (pos < size && p[pos] != '\n') pos++;
    return pos++ < size;
  };
  auto need = [&](uint64_t n) { return n <= size - pos; };
  auto uint = [&](int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= static_cast<uint64_t>(p[pos + i]) << (8 * i);
    pos += bytes;
    return v;
  };
  auto memo = [&](uint64_t id) { return id < size ? std::string() : "has a memo index " + std::to_string(id) + " beyond its " + std::to_string(size) + " bytes"; };
  while (pos < size) {
    const uint8_t op = p[pos++];
    switch (op) {
      case '.':  // STOP
        return "";
      case 'J': case 'G': case 'K': case 'M': case 0x80: case 0x82: case 0x83: case 0x84: case 0x95: {  // fixed-size arguments
        const uint64_t n = op == 'J' || op == 0x84 ? 4 : op == 'G' || op == 0x95 ? 8 : op == 'M' || op == 0x83 ? 2 : 1;
        if (!need(n)) return "ends inside an opcode";
        pos += n;
        break;
      }
      case 'h': case 'q': {  // BINGET, BINPUT
        if (!need(1)) return "ends inside an opcode";
        if (auto m = memo(uint(1)); !m.empty()) return m;
        break;
      }
      case 'j': case 'r': {  // LONG_BINGET, LONG_BINPUT
        if (!need(4)) return "ends inside an opcode";
        if (auto m = memo(uint(4)); !m.empty()) return m;
        break;
      }
      case 'g': case 'p': {  // GET, PUT: a decimal index
        const uint64_t start = pos;
        if (!line()) return "ends inside an opcode";
        const std::string digits(reinterpret_cast<const char*>(p + start), pos - 1 - start);
        if (digits.size() > 18) return "has a memo index " + digits + " beyond its " + std::to_string(size) + " bytes";
        uint64_t id = 0;
        for (char c : digits) id = c >= '0' && c <= '9' ? id * 10 + static_cast<uint64_t>(c - '0') : id;
        if (auto m = memo(id); !m.empty()) return m;
        break;
      }
      case 'F': case 'I': case 'L': case 'P': case 'S': case 'V':  // newline-terminated
        if (!line()) return "ends inside an opcode";
        break;
      case 'c': case 'i':  // GLOBAL, INST: module and name lines
        if (!line() || !line()) return "ends inside an opcode";
        break;
      case 'U': case 'C': case 0x8c: case 0x8a:  // 1-byte length
      case 'T': case 'X': case 'B': case 0x8b:   // 4-byte length
      case 0x8d: case 0x8e: case 0x96: {         // 8-byte length
        const int width = op == 'U' || op == 'C' || op == 0x8c || op == 0x8a ? 1 : op == 0x8d || op == 0x8e || op == 0x96 ? 8 : 4;
        if (!need(width)) return "ends inside an opcode";
        const uint64_t n = uint(width);
        if (!need(n)) return "has a string or bytes of " + std::to_string(n) + " bytes beyond its end";
        pos += n;
        break;
      }
      case '(': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b': case 'd': case '}':
      case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u': case 0x81: case 0x85: case 0x86:
      case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x97: case 0x98:
        break;  // no argument
      default:
        return "";  // not an opcode LibTorch reads: it says so itself
    }
  }
  return "";
}

}  // namespace

std::string TorchScriptArchiveProblem(const std::string& path) {
  File f(path);
  if (!f.ok()) return "it cannot be read";
  std::vector<uint8_t> head;
  if (!f.Read(0, 4, head) || U32(head.data()) != kLocalHeader) return kNotZip;
  Directory dir;
  if (!FindDirectory(f, dir)) return kNotZip;
  std::vector<uint8_t> cd;
  if (!f.Read(dir.offset, dir.size, cd)) return kNotZip;

  // Every entry: a central record inside the directory, a local header inside the file.
  std::vector<std::string> names;
  uint64_t pos = 0;
  std::vector<uint8_t> local;
  for (uint64_t i = 0; i < dir.entries; i++) {
    if (pos + 46 > cd.size() || U32(cd.data() + pos) != kCentralHeader) return kNotZip;
    const uint8_t* e = cd.data() + pos;
    const uint64_t name_len = U16(e + 28), extra_len = U16(e + 30), comment_len = U16(e + 32);
    const uint64_t next = pos + 46 + name_len + extra_len + comment_len;
    if (next > cd.size()) return kNotZip;
    names.emplace_back(reinterpret_cast<const char*>(e + 46), name_len);
    const uint32_t offset = U32(e + 42);
    if (offset != 0xFFFFFFFFu && (!f.Read(offset, 30, local) || U32(local.data()) != kLocalHeader)) return kNotZip;
    pos = next;
  }
  if (names.empty()) return "the zip archive is empty";

  // TorchScript's layout: <folder>/data.pkl, <folder>/code/..., everything under <folder>/.
  const std::string& first = names.front();
  const auto slash = first.find('/');
  if (slash == std::string::npos || slash == 0) {
    return "the zip archive has no data.pkl and code/ of a scripted or traced module";
  }
  const std::string root = first.substr(0, slash + 1);
  bool data = false, code = false;
  for (const auto& name : names) {
    if (name.compare(0, root.size(), root) != 0) {
      return "the zip archive has no data.pkl and code/ of a scripted or traced module";
    }
    data = data || name == root + "data.pkl";
    code = code || name.compare(0, root.size() + 5, root + "code/") == 0;
  }
  if (!data) return "the zip archive has no data.pkl and code/ of a scripted or traced module";
  if (!code) {
    return "it looks like a torch.save() file (no code/ in the archive); save the module with "
           "torch.jit.script(model).save(path), or its weights with safetensors and use loadStateDict";
  }

  // The pickles, read (and inflated) by LibTorch's own zip reader, as jit::load will read them.
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& record : reader.getAllRecords()) {
      if (record.size() < 3 || record.compare(record.size() - 3, 3, "pkl") != 0) continue;
      auto [data, n] = reader.getRecord(record);
      std::string problem = PickleProblem(static_cast<const uint8_t*>(data.get()), n);
      if (!problem.empty()) return "its pickle " + record + " " + problem;
    }
  } catch (const std::exception&) {
    // LibTorch's reader refuses the archive: jit::load will say why.
  }
  return "";
}

}  // namespace gd::js
