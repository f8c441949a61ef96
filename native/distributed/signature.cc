#include "distributed/signature.h"

#include <charconv>
#include <cstring>
#include <sstream>

namespace gd::dist {

namespace {

// Words 0-3 say what; 4.. the shape's sizes, as many as fit; the last word hashes what did
// not fit (sizes past the room, a list's shapes, values' names and bits).
constexpr int64_t kShapeStart = 4;
constexpr int64_t kHashWord = kSignatureWords - 1;
constexpr int64_t kShapeRoom = kHashWord - kShapeStart;

// FNV-1a over 64-bit words: the same on every rank for the same input.
struct WordHash {
  uint64_t h = 1469598103934665603ull;
  void add(int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (static_cast<uint64_t>(v) >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  void add(const std::string& s) {
    add(static_cast<int64_t>(s.size()));
    for (unsigned char c : s) add(static_cast<int64_t>(c));
  }
  int64_t value() const { return static_cast<int64_t>(h); }
};

int64_t double_bits(double d) {
  int64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

// The shortest text that reads back as the same double.
std::string bits_text(int64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// PyTorch's Python names, as the JS API spells dtypes.
std::string dtype_name(int64_t code) {
  if (code < 0 || code >= static_cast<int64_t>(c10::ScalarType::NumOptions)) return "dtype " + std::to_string(code);
  switch (static_cast<c10::ScalarType>(code)) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(static_cast<c10::ScalarType>(code));
  }
}

std::string shape_text(const int64_t* sizes, int64_t n) {
  std::ostringstream s;
  s << "[";
  for (int64_t i = 0; i < n; ++i) s << (i ? ", " : "") << sizes[i];
  s << "]";
  return s.str();
}

// A list's detail words: per tensor dtype, ndim, sizes.
struct ListEntry {
  int64_t dtype;
  std::vector<int64_t> sizes;
  bool operator==(const ListEntry& o) const { return dtype == o.dtype && sizes == o.sizes; }
};

std::vector<ListEntry> parse_list(const std::vector<int64_t>& w) {
  std::vector<ListEntry> out;
  size_t i = 0;
  while (i + 2 <= w.size()) {
    const int64_t ndim = w[i + 1];
    if (ndim < 0 || i + 2 + static_cast<size_t>(ndim) > w.size()) break;  // padding
    out.push_back({w[i], std::vector<int64_t>(w.begin() + i + 2, w.begin() + i + 2 + ndim)});
    i += 2 + ndim;
  }
  return out;
}

std::string entry_text(const ListEntry& e) {
  return dtype_name(e.dtype) + " " + shape_text(e.sizes.data(), static_cast<int64_t>(e.sizes.size()));
}

}  // namespace

Signature tensor_signature(CollectiveKind kind, int64_t arg, const at::Tensor& t) {
  Signature s;
  s.words.assign(kSignatureWords, 0);
  s.words[0] = static_cast<int64_t>(kind);
  s.words[1] = arg;
  s.words[2] = static_cast<int64_t>(t.scalar_type());
  s.words[3] = t.dim();
  WordHash rest;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < kShapeRoom) s.words[kShapeStart + d] = t.size(d);
    else rest.add(t.size(d));
  }
  s.words[kHashWord] = rest.value();
  return s;
}

Signature barrier_signature() {
  Signature s;
  s.words.assign(kSignatureWords, 0);
  s.words[0] = static_cast<int64_t>(CollectiveKind::kBarrier);
  return s;
}

Signature list_signature(CollectiveKind kind, int64_t arg, const std::vector<at::Tensor>& tensors) {
  Signature s;
  s.words.assign(kSignatureWords, 0);
  WordHash h;
  int64_t numel = 0;
  for (const auto& t : tensors) {
    s.detail.push_back(static_cast<int64_t>(t.scalar_type()));
    s.detail.push_back(t.dim());
    for (int64_t d = 0; d < t.dim(); ++d) s.detail.push_back(t.size(d));
    numel += t.numel();
  }
  for (int64_t w : s.detail) h.add(w);
  s.words[0] = static_cast<int64_t>(kind);
  s.words[1] = arg;
  s.words[2] = -1;
  s.words[3] = static_cast<int64_t>(tensors.size());
  s.words[kShapeStart] = numel;
  s.words[kShapeStart + 1] = static_cast<int64_t>(s.detail.size());
  s.words[kHashWord] = h.value();
  return s;
}

Signature values_signature(const std::vector<std::pair<std::string, double>>& values) {
  Signature s;
  s.words.assign(kSignatureWords, 0);
  WordHash h;
  for (const auto& [name, v] : values) {
    h.add(name);
    s.names.push_back(name);
    s.detail.push_back(double_bits(v));
  }
  for (int64_t w : s.detail) h.add(w);
  s.words[0] = static_cast<int64_t>(CollectiveKind::kValues);
  s.words[2] = -1;
  s.words[3] = static_cast<int64_t>(values.size());
  s.words[kShapeStart + 1] = static_cast<int64_t>(s.detail.size());
  s.words[kHashWord] = h.value();
  return s;
}

int64_t detail_length(const std::vector<int64_t>& words) { return words[kShapeStart + 1]; }

int first_disagreeing(const std::vector<std::vector<int64_t>>& words) {
  for (size_t r = 1; r < words.size(); ++r) {
    if (words[r] != words[0]) return static_cast<int>(r);
  }
  return -1;
}

std::string describe_signature(const std::vector<int64_t>& w, const std::vector<std::string>& op_names) {
  std::ostringstream s;
  const auto kind = static_cast<CollectiveKind>(w[0]);
  const int64_t ndim = std::min<int64_t>(w[3], kShapeRoom);
  const std::string tensor = dtype_name(w[2]) + " " + shape_text(w.data() + kShapeStart, ndim) +
                             (w[3] > kShapeRoom ? " (" + std::to_string(w[3]) + " dims)" : "");
  switch (kind) {
    case CollectiveKind::kAllReduce: {
      const std::string op = w[1] >= 0 && w[1] < static_cast<int64_t>(op_names.size()) ? op_names[w[1]] : std::to_string(w[1]);
      s << "allReduce('" << op << "') of " << tensor;
      break;
    }
    case CollectiveKind::kBroadcast: s << "broadcast from rank " << w[1] << " of " << tensor; break;
    case CollectiveKind::kAllGather: s << "allGather of " << tensor; break;
    case CollectiveKind::kBarrier: s << "barrier"; break;
    case CollectiveKind::kBroadcastList:
      s << "a broadcast from rank " << w[1] << " of " << w[3] << " tensors (" << w[kShapeStart] << " values)";
      break;
    case CollectiveKind::kAverageList: s << "an average of " << w[3] << " tensors (" << w[kShapeStart] << " values)"; break;
    case CollectiveKind::kValues: s << w[3] << " run options"; break;
    default: s << "an unknown collective (" << w[0] << ")";
  }
  return s.str();
}

std::string describe_list_difference(const std::vector<int64_t>& a, int rank_a, const std::vector<int64_t>& b, int rank_b) {
  const auto la = parse_list(a), lb = parse_list(b);
  std::ostringstream s;
  for (size_t i = 0; i < std::min(la.size(), lb.size()); ++i) {
    if (!(la[i] == lb[i])) {
      s << "tensor " << i << " of " << la.size() << ": " << entry_text(la[i]) << " on rank " << rank_a << ", "
        << entry_text(lb[i]) << " on rank " << rank_b;
      return s.str();
    }
  }
  s << la.size() << " tensors on rank " << rank_a << ", " << lb.size() << " on rank " << rank_b;
  return s.str();
}

std::string describe_values_difference(const std::vector<std::string>& names, const std::vector<int64_t>& a, int rank_a, const std::vector<int64_t>& b, int rank_b) {
  std::ostringstream s;
  for (size_t i = 0; i < std::min({a.size(), b.size(), names.size()}); ++i) {
    if (a[i] != b[i]) {
      s << names[i] << ": " << bits_text(a[i]) << " on rank " << rank_a << ", " << bits_text(b[i]) << " on rank " << rank_b;
      return s.str();
    }
  }
  s << "the ranks run different versions of the code (their option lists differ)";
  return s.str();
}

}  // namespace gd::dist
