#include "checkpoints/torchscript_check.h"

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <vector>

#include "checkpoints/zip_archive.h"

namespace gd::checkpoints {

namespace {

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
  // Every entry: a central record inside the directory, a local header and data inside the file.
  std::vector<std::string> names;
  try {
    ZipArchive zip(path);
    for (const auto& e : zip.entries()) names.push_back(e.name);
  } catch (const CheckpointError& e) {
    return e.what();
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
    return "it is a torch.save() file (no code/ in the archive): load its weights into a model with "
           "module.loadStateDict(path), or save the module with torch.jit.script(model).save(path)";
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

}  // namespace gd::checkpoints
