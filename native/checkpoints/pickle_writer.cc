#include "checkpoints/pickle_writer.h"

#include <cstring>
#include <stdexcept>

namespace gd::checkpoints {

SaveValue SaveValue::Bool(bool v) {
  SaveValue x;
  x.kind = Kind::Bool;
  x.b = v;
  return x;
}
SaveValue SaveValue::Int(int64_t v) {
  SaveValue x;
  x.kind = Kind::Int;
  x.i = v;
  return x;
}
SaveValue SaveValue::Float(double v) {
  SaveValue x;
  x.kind = Kind::Float;
  x.f = v;
  return x;
}
SaveValue SaveValue::Str(std::string v) {
  SaveValue x;
  x.kind = Kind::Str;
  x.s = std::move(v);
  return x;
}
SaveValue SaveValue::Tensor(at::Tensor v) {
  SaveValue x;
  x.kind = Kind::Tensor;
  x.tensor = std::move(v);
  return x;
}
SaveValue SaveValue::Tuple(std::vector<SaveValue> v) {
  SaveValue x;
  x.kind = Kind::Tuple;
  x.items = std::move(v);
  return x;
}
SaveValue SaveValue::List(std::vector<SaveValue> v) {
  SaveValue x;
  x.kind = Kind::List;
  x.items = std::move(v);
  return x;
}
SaveValue SaveValue::Dict(std::vector<std::pair<SaveValue, SaveValue>> v) {
  SaveValue x;
  x.kind = Kind::Dict;
  x.entries = std::move(v);
  return x;
}
SaveValue SaveValue::StateDict(const std::vector<std::pair<std::string, at::Tensor>>& named) {
  SaveValue x;
  x.kind = Kind::OrderedDict;
  for (const auto& [name, t] : named) x.entries.emplace_back(Str(name), Tensor(t));
  return x;
}

namespace {

// torch.<Name>Storage of each dtype torch.save writes with the typed-storage names.
const char* StorageName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "FloatStorage";
    case at::kDouble: return "DoubleStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: throw std::invalid_argument(std::string("torch.save writer: tensors of dtype ") + c10::toString(dtype) + " are not supported");
  }
}

class Pickler {
 public:
  explicit Pickler(std::vector<at::Tensor>* storages) : storages_(storages) {}

  std::string Run(const SaveValue& v) {
    out_ += "\x80\x02";  // PROTO 2
    Write(v);
    out_ += '.';  // STOP
    return std::move(out_);
  }

 private:
  void Op(char c) { out_ += c; }
  void Le(uint64_t v, int bytes) {
    for (int k = 0; k < bytes; ++k) out_ += static_cast<char>((v >> (8 * k)) & 0xFF);
  }
  void Global(const char* module, const char* name) {
    Op('c');
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void Int(int64_t v) {
    if (v >= 0 && v < 256) {
      Op('K');
      Le(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      Op('M');
      Le(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      Op('J');
      Le(static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
    } else {
      Op('\x8a');  // LONG1: 8 bytes of little-endian two's complement
      Le(8, 1);
      Le(static_cast<uint64_t>(v), 8);
    }
  }
  void Str(const std::string& s) {
    Op('X');  // BINUNICODE
    Le(s.size(), 4);
    out_ += s;
  }
  void Float(double f) {
    Op('G');  // BINFLOAT: big-endian
    uint64_t bits;
    std::memcpy(&bits, &f, 8);
    for (int k = 7; k >= 0; --k) out_ += static_cast<char>((bits >> (8 * k)) & 0xFF);
  }
  void TupleOf(size_t n) {  // after n items (a MARK before them when n > 3)
    static const char ops[] = {')', '\x85', '\x86', '\x87'};
    if (n <= 3) Op(ops[n]);
    else Op('t');
  }
  void Items(const std::vector<SaveValue>& items) {
    if (items.size() > 3) Op('(');
    for (const auto& x : items) Write(x);
    TupleOf(items.size());
  }
  void Sizes(at::IntArrayRef v) {
    if (v.size() > 3) Op('(');
    for (int64_t x : v) Int(x);
    TupleOf(v.size());
  }
  void Entries(const std::vector<std::pair<SaveValue, SaveValue>>& entries) {
    if (entries.empty()) return;
    Op('(');
    for (const auto& [k, x] : entries) {
      Write(k);
      Write(x);
    }
    Op('u');  // SETITEMS
  }
  void Tensor(const at::Tensor& t) {
    if (!t.defined()) throw std::invalid_argument("torch.save writer: an undefined tensor");
    const at::Tensor data = t.detach().to(at::kCPU).contiguous();
    const std::string key = std::to_string(storages_->size());
    storages_->push_back(data);
    Global("torch._utils", "_rebuild_tensor_v2");
    Op('(');
    Op('(');  // the persistent id: ('storage', storage type, key, location, numel)
    Str("storage");
    Global("torch", StorageName(data.scalar_type()));
    Str(key);
    Str("cpu");
    Int(data.numel());
    Op('t');
    Op('Q');  // BINPERSID
    Int(0);   // storage offset
    Sizes(data.sizes());
    Sizes(data.strides());
    Op('\x89');  // requires_grad False
    Global("collections", "OrderedDict");  // backward hooks: OrderedDict()
    Op(')');
    Op('R');
    Op('t');
    Op('R');
  }
  void Write(const SaveValue& v) {
    using K = SaveValue::Kind;
    switch (v.kind) {
      case K::None: Op('N'); break;
      case K::Bool: Op(v.b ? '\x88' : '\x89'); break;
      case K::Int: Int(v.i); break;
      case K::Float: Float(v.f); break;
      case K::Str: Str(v.s); break;
      case K::Tensor: Tensor(v.tensor); break;
      case K::Tuple: Items(v.items); break;
      case K::List:
        Op(']');
        if (!v.items.empty()) {
          Op('(');
          for (const auto& x : v.items) Write(x);
          Op('e');  // APPENDS
        }
        break;
      case K::Dict:
        Op('}');
        Entries(v.entries);
        break;
      case K::OrderedDict:
        Global("collections", "OrderedDict");
        Op(')');
        Op('R');
        Entries(v.entries);
        break;
    }
  }

  std::string out_;
  std::vector<at::Tensor>* storages_;
};

}  // namespace

std::string PickleForTorchSave(const SaveValue& value, std::vector<at::Tensor>* storages) {
  storages->clear();
  return Pickler(storages).Run(value);
}

}  // namespace gd::checkpoints
