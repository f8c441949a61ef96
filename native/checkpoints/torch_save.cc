#include "checkpoints/torch_save.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "checkpoints/checkpoint_format.h"
#include "checkpoints/pickle_reader.h"
#include "checkpoints/zip_archive.h"

namespace gd::checkpoints {

namespace {

// A state dict's pickle is about 200 bytes per tensor: 64 MiB is far beyond any real one, and
// a pickle is read whole before it runs.
constexpr uint64_t kMaxPickle = uint64_t{64} << 20;
constexpr const char* kEmaPrefix = "ema_model.";
// "little" or "big": anything longer is not torch.save's, and is not inflated to find out.
constexpr uint64_t kMaxByteorder = 16;
// The first pickle of a legacy torch.save file is torch's magic number, as each pickle protocol
// writes it: from protocol 2, PROTO n, a FRAME of 13 bytes (from 4), LONG1 of its 10 bytes, STOP;
// protocols 0 and 1 write it as decimal text.
constexpr uint8_t kMagicLong1[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
constexpr char kMagicText[] = "L119547037146038801333356L\n.";

[[noreturn]] void Damaged(const std::string& what) { throw CheckpointError(what); }

// Bytes of `numel` elements of `dtype`, or -1 when that does not fit in 63 bits.
int64_t StorageBytes(at::ScalarType dtype, int64_t numel) {
  const auto size = static_cast<int64_t>(c10::elementSize(dtype));
  return numel > INT64_MAX / size ? -1 : numel * size;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

bool IsStateDict(const Value* v) {
  if (v->kind != Kind::Dict || v->entries.empty()) return false;
  for (const auto& [k, x] : v->entries) {
    if (k->kind != Kind::Str || x->kind != Kind::Tensor) return false;
  }
  return true;
}

bool HasEmaWeights(const Value* d) {
  for (const auto& [k, _] : d->entries) {
    if (k->s.compare(0, std::strlen(kEmaPrefix), kEmaPrefix) == 0) return true;
  }
  return false;
}

// The tensors of a state dict in file order, a repeated name taking its last value as Python's
// dict does; an EMA wrapper's dict gives its ema_model.* weights, unprefixed.
NamedTensors Collect(const Value* d) {
  const bool ema = HasEmaWeights(d);
  const size_t skip = ema ? std::strlen(kEmaPrefix) : 0;
  NamedTensors out;
  std::map<std::string, size_t> index;
  for (const auto& [k, v] : d->entries) {
    if (ema && k->s.compare(0, skip, kEmaPrefix) != 0) continue;
    std::string name = k->s.substr(skip);
    auto [it, fresh] = index.emplace(name, out.size());
    if (fresh) {
      out.emplace_back(std::move(name), v->tensor);
    } else {
      out[it->second].second = v->tensor;
    }
  }
  return out;
}

std::string Keys(const Value* d, size_t limit) {
  std::string s;
  size_t n = 0;
  for (const auto& [k, _] : d->entries) {
    if (k->kind != Kind::Str) continue;
    if (n == limit) return s + ", ...";
    s += (n++ ? ", " : "") + Quote(k->s.substr(0, 60));
  }
  return s;
}

NamedTensors Select(const Value* top, const std::string& key) {
  if (top->kind != Kind::Dict) throw CheckpointRefused("holds no state dict (a dict of tensors): it holds something else");
  if (key.empty() && (IsStateDict(top) || top->entries.empty())) return Collect(top);
  std::vector<const Value*> candidates;
  std::vector<std::string> names;
  for (const auto& [k, v] : top->entries) {
    if (k->kind == Kind::Str && IsStateDict(v)) {
      candidates.push_back(v);
      names.push_back(k->s);
    }
  }
  auto list = [&]() {
    std::string s;
    for (size_t i = 0; i < names.size(); i++) {
      s += (i ? ", " : "") + Quote(names[i]);
      if (HasEmaWeights(candidates[i])) s += " (EMA weights)";
    }
    return s;
  };
  if (!key.empty()) {
    for (size_t i = candidates.size(); i-- > 0;) {
      if (names[i] == key) return Collect(candidates[i]);
    }
    if (candidates.empty()) throw CheckpointRefused("has no state dict under " + Quote(key) + ": it is a dict of " + Keys(top, 8));
    throw CheckpointRefused("has no state dict under " + Quote(key) + "; its state dicts are " + list());
  }
  if (candidates.size() == 1) return Collect(candidates[0]);
  if (candidates.empty()) throw CheckpointRefused("holds no state dict (a dict of tensors): it is a dict of " + Keys(top, 8));
  throw CheckpointRefused("holds several state dicts: " + list() + "; choose one with the key option, e.g. { key: " +
                          Quote(names[0]) + " }");
}

// The length of the magic number's pickle at the start of head, or 0 when it is not there.
size_t LegacyMagicLength(const std::vector<uint8_t>& head) {
  const size_t text = sizeof(kMagicText) - 1;
  if (head.size() >= text && std::memcmp(head.data(), kMagicText, text) == 0) return text;
  if (head.size() < 2 || head[0] != 0x80 || head[1] < 2 || head[1] > 5) return 0;
  size_t at = 2;
  if (head[1] >= 4) {
    if (head.size() < at + 9 || head[at] != 0x95) return 0;
    at += 9;
  }
  if (head.size() < at + sizeof(kMagicLong1) || std::memcmp(head.data() + at, kMagicLong1, sizeof(kMagicLong1)) != 0) return 0;
  return at + sizeof(kMagicLong1);
}

std::vector<uint8_t> ReadPickleEntry(const ZipArchive& zip, const ZipEntry& e) {
  if (e.size > kMaxPickle) Damaged("its pickle " + e.name + " has " + std::to_string(e.size) + " bytes, more than a state dict needs");
  return zip.Read(e);
}

// Runs the pickle of a torch.save zip file with its storages read, and gives `use` the object it
// builds (alive only during the call).
template <typename Use>
auto WithZipObject(const std::string& path, Use use) {
  ZipArchive zip(path);
  if (zip.entries().empty()) Damaged("the zip archive is empty");
  // torch.save puts everything under one folder: <root>/data.pkl, <root>/data/<key>, ...
  const std::string& first = zip.entries().front().name;
  const auto slash = first.find('/');
  if (slash == std::string::npos || slash == 0) Damaged("the zip archive has no data.pkl of torch.save");
  const std::string root = first.substr(0, slash + 1);
  for (const auto& e : zip.entries()) {
    if (e.name.compare(0, root.size() + 5, root + "code/") == 0) {
      throw CheckpointRefused(
          "is a TorchScript module (a program), not a torch.save state dict: load it with jit.load(path), which runs its "
          "code (only for files you trust), or save its weights with torch.save(model.state_dict(), path)");
    }
  }
  const ZipEntry* pkl = zip.Find(root + "data.pkl");
  if (pkl == nullptr) Damaged("the zip archive has no data.pkl of torch.save");
  if (const ZipEntry* order = zip.Find(root + "byteorder")) {
    if (order->size > kMaxByteorder) {
      Damaged("its byteorder entry claims " + std::to_string(order->size) + " bytes, where torch.save writes 'little' or 'big'");
    }
    auto bytes = zip.Read(*order);
    if (std::string(bytes.begin(), bytes.end()) != "little") Damaged("its byteorder is not little-endian");
  }
  auto pickle = ReadPickleEntry(zip, *pkl);
  PickleReader reader(pickle.data(), pickle.size(), [&](const std::string& k, at::ScalarType dtype, int64_t numel) {
    const ZipEntry* e = zip.Find(root + "data/" + k);
    if (e == nullptr) Damaged("its pickle refers to storage " + k + ", which the archive does not hold");
    // torch.save stores storages uncompressed (so that they can be mapped); refusing deflate
    // here keeps what is allocated within the file's size.
    if (e->method != 0) Damaged("its storage " + k + " is compressed, which torch.save never does");
    const int64_t bytes = StorageBytes(dtype, numel);
    if (bytes < 0 || e->size != static_cast<uint64_t>(bytes)) {
      Damaged("storage " + k + " holds " + std::to_string(e->size) + " bytes, not the " + std::to_string(numel) + " " +
              std::string(c10::toString(dtype)) + " elements its pickle says");
    }
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    zip.Read(*e, t.data_ptr());
    return t;
  });
  return use(reader.Load());
}

NamedTensors ReadZip(const std::string& path, const std::string& key) {
  return WithZipObject(path, [&](const Value* top) { return Select(top, key); });
}

// The old format: pickles of the magic number, the protocol version and the system's sizes,
// the object, the list of storage keys, then each storage as an int64 element count and data.
NamedTensors ReadLegacy(const std::string& path, const std::string& key) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Damaged("it cannot be read");
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  const off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) Damaged("it cannot be read");
  const uint64_t file_size = static_cast<uint64_t>(end);
  auto read_at = [&](uint64_t offset, uint64_t n, void* out) {
    if (offset > file_size || n > file_size - offset) return false;
    auto* p = static_cast<uint8_t*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd, p, std::min<uint64_t>(n, 1u << 30), static_cast<off_t>(offset));
      if (got <= 0) return false;
      p += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<uint64_t>(got);
    }
    return true;
  };
  // The pickles come first; they must end within kMaxPickle bytes.
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(file_size, kMaxPickle)));
  if (!read_at(0, head.size(), head.data())) Damaged("it cannot be read");
  size_t pos = LegacyMagicLength(head);
  if (pos == 0) Damaged("it is a Python pickle without torch.save's magic number, not a torch.save file");
  auto next_pickle = [&](const StorageLoader& load) {
    auto reader = std::make_unique<PickleReader>(head.data() + pos, head.size() - pos, load);
    return reader;
  };
  const StorageLoader none = [](const std::string&, at::ScalarType, int64_t) -> at::Tensor {
    Damaged("its header pickles refer to a storage");
  };
  {
    auto version = next_pickle(none);
    const Value* v = version->Load();
    if (v->kind != Kind::Int || v->i != 1001) Damaged("its protocol version is not torch.save's 1001");
    pos += version->position();
    auto info = next_pickle(none);
    const Value* sys = info->Load();
    pos += info->position();
    bool little = false;
    if (sys->kind == Kind::Dict) {
      for (const auto& [k, x] : sys->entries) {
        if (k->kind == Kind::Str && k->s == "little_endian") little = x->kind == Kind::Bool && x->i == 1;
      }
    }
    if (!little) Damaged("it was saved on a big-endian machine, or its system info is damaged");
  }
  // A first run of the object's pickle finds its storages and its end, without data.
  const size_t object_at = pos;
  std::map<std::string, std::pair<at::ScalarType, int64_t>> storages;
  {
    auto dry = next_pickle([&](const std::string& k, at::ScalarType dtype, int64_t numel) {
      storages[k] = {dtype, numel};
      return at::Tensor();
    });
    dry->Load();
    pos += dry->position();
  }
  auto keys_reader = next_pickle(none);
  const Value* keys = keys_reader->Load();
  pos += keys_reader->position();
  if (keys->kind != Kind::List) Damaged("its list of storage keys is not a list");
  std::map<std::string, uint64_t> offsets;
  uint64_t at = pos;
  for (const Value* k : keys->items) {
    if (k->kind != Kind::Str) Damaged("its list of storage keys holds " + std::string("something that is not a string"));
    auto it = storages.find(k->s);
    if (it == storages.end()) Damaged("lists storage " + k->s + ", which its pickle never uses");
    int64_t numel = 0;
    if (!read_at(at, 8, &numel)) Damaged("it ends inside storage " + k->s + " (truncated?)");
    if (numel != it->second.second) {
      Damaged("storage " + k->s + " holds " + std::to_string(numel) + " elements, not the " + std::to_string(it->second.second) + " its pickle says");
    }
    const int64_t bytes = StorageBytes(it->second.first, numel);
    if (bytes < 0 || static_cast<uint64_t>(bytes) > file_size - at - 8) Damaged("it ends inside storage " + k->s + " (truncated?)");
    offsets[k->s] = at + 8;
    at += 8 + static_cast<uint64_t>(bytes);
  }
  pos = object_at;
  auto reader = next_pickle([&](const std::string& k, at::ScalarType dtype, int64_t numel) {
    auto it = offsets.find(k);
    if (it == offsets.end()) Damaged("its pickle refers to storage " + k + ", which the file does not list");
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (!read_at(it->second, static_cast<uint64_t>(StorageBytes(dtype, numel)), t.data_ptr())) Damaged("it cannot be read");
    return t;
  });
  return Select(reader->Load(), key);
}

}  // namespace

void VisitTorchSave(const std::string& path, const std::function<void(const Value&)>& visit) {
  try {
    if (SniffFormat(path) != Format::Zip) {
      throw CheckpointError("it is not in torch.save's zip format (PyTorch >= 1.6), the only one read for this kind of file");
    }
    WithZipObject(path, [&](const Value* top) {
      visit(*top);
      return 0;
    });
  } catch (const CheckpointError& e) {
    throw CheckpointRefused(std::string("is not a valid torch.save file: ") + e.what());
  }
}

NamedTensors ReadTorchSave(const std::string& path, const std::string& key) {
  try {
    switch (SniffFormat(path)) {
      case Format::Zip: return ReadZip(path, key);
      case Format::Pickle: return ReadLegacy(path, key);
      default: throw CheckpointError("it is neither a zip archive nor a pickle");
    }
  } catch (const CheckpointError& e) {
    throw CheckpointRefused(std::string("is not a valid torch.save file: ") + e.what());
  }
}

}  // namespace gd::checkpoints
