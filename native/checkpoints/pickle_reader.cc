#include "checkpoints/pickle_reader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "checkpoints/zip_archive.h"

namespace gd::checkpoints {

namespace {

// Bounds that no real state dict comes near (openai's largest model pickles ~2,000 tensors in
// about 20 values each) and that keep a hostile pickle's memory in the hundreds of MB.
constexpr size_t kMaxValues = size_t{1} << 21;
constexpr size_t kMaxStack = size_t{1} << 22;
constexpr size_t kMaxDims = 64;

[[noreturn]] void FailPickle(const std::string& what) { throw CheckpointError("its pickle " + what); }

const char* KindName(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::Str: return "a string";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "a tuple";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    case Kind::Global: return "a global";
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "a value";
}

}  // namespace

bool StorageDtype(const std::string& name, at::ScalarType* dtype) {
  static const std::pair<const char*, at::ScalarType> kTable[] = {
      {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool}, {"ComplexFloatStorage", at::kComplexFloat}, {"ComplexDoubleStorage", at::kComplexDouble},
  };
  for (const auto& [n, t] : kTable) {
    if (name == n) {
      *dtype = t;
      return true;
    }
  }
  return false;
}

bool NamedDtype(const std::string& name, at::ScalarType* dtype) {
  static const std::pair<const char*, at::ScalarType> kTable[] = {
      {"float32", at::kFloat}, {"float", at::kFloat}, {"float64", at::kDouble}, {"double", at::kDouble},
      {"float16", at::kHalf}, {"half", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong}, {"long", at::kLong}, {"int32", at::kInt}, {"int", at::kInt},
      {"int16", at::kShort}, {"short", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte}, {"bool", at::kBool},
      {"uint16", at::kUInt16}, {"uint32", at::kUInt32}, {"uint64", at::kUInt64},
      {"complex32", at::kComplexHalf}, {"chalf", at::kComplexHalf}, {"complex64", at::kComplexFloat},
      {"cfloat", at::kComplexFloat}, {"complex128", at::kComplexDouble}, {"cdouble", at::kComplexDouble},
      {"float8_e4m3fn", at::kFloat8_e4m3fn}, {"float8_e5m2", at::kFloat8_e5m2},
      {"float8_e4m3fnuz", at::kFloat8_e4m3fnuz}, {"float8_e5m2fnuz", at::kFloat8_e5m2fnuz},
      {"float8_e8m0fnu", at::kFloat8_e8m0fnu},
  };
  for (const auto& [n, t] : kTable) {
    if (name == n) {
      *dtype = t;
      return true;
    }
  }
  return false;
}

PickleReader::PickleReader(const uint8_t* data, size_t size, StorageLoader load)
    : data_(data), size_(size), load_(std::move(load)) {
  none_.kind = Kind::None;
  true_.kind = false_.kind = Kind::Bool;
  true_.i = 1;
}

Value* PickleReader::New(Kind kind) {
  if (arena_.size() >= kMaxValues) FailPickle("holds more than " + std::to_string(kMaxValues) + " values");
  arena_.emplace_back();
  arena_.back().kind = kind;
  return &arena_.back();
}

void PickleReader::Push(Value* v) {
  if (stack_.size() >= kMaxStack) FailPickle("stacks more than " + std::to_string(kMaxStack) + " values");
  stack_.push_back(v);
}

Value* PickleReader::Pop() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) FailPickle("pops from an empty stack");
  Value* v = stack_.back();
  stack_.pop_back();
  return v;
}

Value* PickleReader::Top() {
  if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) FailPickle("uses an empty stack");
  return stack_.back();
}

std::vector<Value*> PickleReader::PopToMark() {
  if (marks_.empty()) FailPickle("has no MARK where one is needed");
  const size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
  stack_.resize(mark);
  return items;
}

uint64_t PickleReader::Uint(int bytes) {
  if (static_cast<size_t>(bytes) > size_ - pos_) FailPickle("ends inside an opcode");
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
  pos_ += bytes;
  return v;
}

std::string PickleReader::Line() {
  const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
  if (nl == nullptr) FailPickle("ends inside an opcode");
  const size_t end = static_cast<const uint8_t*>(nl) - data_;
  std::string s(reinterpret_cast<const char*>(data_ + pos_), end - pos_);
  pos_ = end + 1;
  return s;
}

std::string PickleReader::Bytes(uint64_t n) {
  if (n > size_ - pos_) FailPickle("has a string of " + std::to_string(n) + " bytes beyond its end");
  std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
  pos_ += static_cast<size_t>(n);
  return s;
}

// The argument of PUT/GET (decimal text), BINPUT/BINGET (1 byte), LONG_BINPUT/LONG_BINGET (4).
uint64_t PickleReader::MemoIndex(uint8_t op) {
  if (op == 'p' || op == 'g') {
    const std::string s = Line();
    char* end = nullptr;
    const uint64_t id = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') FailPickle("has a memo index that is not a number");
    return id;
  }
  return Uint(op == 'q' || op == 'h' ? 1 : 4);
}

// The allowlist, checked where the pickle names a global: nothing else is ever looked up.
Value* PickleReader::GlobalValue(const std::string& module, const std::string& name) {
  Value* g = New(Kind::Global);
  if (module == "collections" && name == "OrderedDict") {
    g->global = Global::OrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v3") {
    g->global = Global::RebuildTensorV3;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    g->global = Global::RebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_tensor") {
    g->global = Global::RebuildTensor;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    g->global = Global::RebuildParameter;
  } else if (module == "torch" && StorageDtype(name, &g->dtype)) {
    g->global = Global::StorageType;
  } else if ((module == "torch.storage" || module == "torch") && name == "UntypedStorage") {
    g->global = Global::StorageType;  // bytes, viewed as the dtype _rebuild_tensor_v3 is given
    g->dtype = at::kByte;
  } else if (module == "torch" && NamedDtype(name, &g->dtype)) {
    g->global = Global::Dtype;
  } else if (module == "torch" && (name.rfind("qint", 0) == 0 || name.rfind("quint", 0) == 0 || (name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) ||
                                   name.rfind("int", 0) == 0 || name.rfind("uint", 0) == 0 || name.rfind("float", 0) == 0 ||
                                   name.rfind("bits", 0) == 0)) {
    // A dtype (or its storage class) that is no plain data here: quantized, sub-byte, packed.
    std::string shown = name.substr(0, 60);
    for (char& c : shown) c = (c < 32 || c > 126) ? '?' : c;
    throw CheckpointRefused("holds a tensor of type torch." + shown + ", which this reader does not read (it reads floating, integer, "
                            "bool, complex and float8 tensors)");
  } else if (module == "torch._utils" && name.rfind("_rebuild_", 0) == 0 && name.size() < 60) {
    throw CheckpointRefused("holds a tensor that torch rebuilds with torch._utils." + name +
                            " (a quantized, sparse, nested or wrapped tensor), which this reader does not read: it reads dense "
                            "floating, integer, bool, complex and float8 tensors");
  } else {
    std::string shown = module + "." + name;
    if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
    for (char& c : shown) c = (c < 32 || c > 126) ? '?' : c;
    throw CheckpointRefused("refers to " + shown +
                          ", which is not part of a state dict: only tensors, dicts, lists, tuples, numbers and strings are "
                          "read from a torch.save file, and nothing in it is run");
  }
  return g;
}

// ('storage', torch.<T>Storage, key, location, numel[, view_metadata]): torch.save's reference
// to a storage, whose bytes are elsewhere (a zip record, or after the pickles).
Value* PickleReader::PersistentLoad(Value* pid) {
  if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items.size() > 6 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage") {
    FailPickle("has a persistent id that is not a torch.save storage");
  }
  Value* type = pid->items[1];
  Value* key = pid->items[2];
  Value* numel = pid->items[4];
  if (type->kind != Kind::Global || type->global != Global::StorageType) FailPickle("names a storage of no storage type");
  if (key->kind != Kind::Str || key->s.empty() || key->s.size() > 64) FailPickle("names a storage without a valid key");
  if (numel->kind != Kind::Int || numel->i < 0) FailPickle("gives storage " + key->s + " a negative size");
  if (pid->items.size() == 6 && pid->items[5]->kind != Kind::None) FailPickle("uses storage views (torch < 0.4), which are not read");
  auto found = storages_.find(key->s);
  if (found != storages_.end()) {
    if (found->second->dtype != type->dtype || found->second->i != numel->i) FailPickle("gives storage " + key->s + " two types or sizes");
    return found->second;
  }
  Value* s = New(Kind::Storage);
  s->s = key->s;
  s->dtype = type->dtype;
  s->i = numel->i;
  s->tensor = load_(key->s, type->dtype, numel->i);
  storages_.emplace(key->s, s);
  return s;
}

// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) and
// _rebuild_tensor(storage, offset, size, stride): a view of the storage, checked to lie in it.
Value* PickleReader::RebuildTensor(const std::vector<Value*>& args, const char* fn, bool v3) {
  if (args.size() < (v3 ? 7u : 4u)) FailPickle("calls " + std::string(fn) + " with " + std::to_string(args.size()) + " arguments");
  Value* storage = args[0];
  if (storage->kind != Kind::Storage) FailPickle("calls " + std::string(fn) + " on " + KindName(storage->kind) + ", not a storage");
  // v3 gives the dtype, over an untyped (byte) storage or one of that dtype; the view's offset,
  // sizes and strides count elements of the dtype.
  at::ScalarType dtype = storage->dtype;
  int64_t elements = storage->i;
  if (v3) {
    if (args[6]->kind != Kind::Global || args[6]->global != Global::Dtype) FailPickle("calls _rebuild_tensor_v3 without a dtype");
    dtype = args[6]->dtype;
    if (dtype != storage->dtype) {
      const auto size = static_cast<int64_t>(c10::elementSize(dtype));
      if (storage->dtype != at::kByte || storage->i % size != 0) {
        FailPickle("views a storage of " + std::to_string(storage->i) + " " + std::string(c10::toString(storage->dtype)) + " elements as " +
                   std::string(c10::toString(dtype)));
      }
      elements = storage->i / size;
    }
  }
  auto ints = [&](Value* v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List) FailPickle("gives a tensor a " + std::string(what) + " that is not a tuple");
    if (v->items.size() > kMaxDims) FailPickle("gives a tensor more than " + std::to_string(kMaxDims) + " dimensions");
    std::vector<int64_t> out;
    for (Value* x : v->items) {
      if (x->kind != Kind::Int || x->i < 0) FailPickle("gives a tensor a " + std::string(what) + " that is not a tuple of non-negative ints");
      out.push_back(x->i);
    }
    return out;
  };
  if (args[1]->kind != Kind::Int || args[1]->i < 0) FailPickle("gives a tensor a storage offset that is not a non-negative int");
  const int64_t offset = args[1]->i;
  const std::vector<int64_t> size = ints(args[2], "size");
  const std::vector<int64_t> stride = ints(args[3], "stride");
  if (size.size() != stride.size()) FailPickle("gives a tensor " + std::to_string(size.size()) + " sizes and " + std::to_string(stride.size()) + " strides");
  // The last element the view reaches must be inside the storage; 128-bit so nothing overflows.
  bool empty = false;
  __int128 last = offset;
  __int128 numel = 1;
  for (size_t d = 0; d < size.size(); d++) {
    if (size[d] == 0) empty = true;
    last += static_cast<__int128>(size[d] > 0 ? size[d] - 1 : 0) * stride[d];
    if (numel <= INT64_MAX) numel *= size[d];
  }
  // A view of stride 0 can claim any count of elements from a one-element storage; LibTorch
  // counts them in 64 bits.
  if (!empty && numel > INT64_MAX) {
    FailPickle("gives a tensor of size [" + c10::Join(", ", size) + "], more than 2^63 elements");
  }
  if (!empty && last >= elements) {
    FailPickle("gives a tensor of size [" + c10::Join(", ", size) + "], stride [" + c10::Join(", ", stride) + "] and offset " +
         std::to_string(offset) + " beyond its storage of " + std::to_string(elements) + " elements");
  }
  if (empty && offset > elements) FailPickle("gives an empty tensor an offset beyond its storage");
  Value* t = New(Kind::Tensor);
  if (storage->tensor.defined()) {
    const at::Tensor& flat = dtype == storage->dtype ? storage->tensor : storage->tensor.view(dtype);
    t->tensor = flat.as_strided(size, stride, offset);
  }
  return t;
}

void PickleReader::Reduce(Value* callable, Value* args) {
  if (callable->kind != Kind::Global) FailPickle("calls " + std::string(KindName(callable->kind)) + ", which is not callable");
  if (args->kind != Kind::Tuple) FailPickle("calls a global with arguments that are not a tuple");
  switch (callable->global) {
    case Global::OrderedDict: {
      Value* d = New(Kind::Dict);
      if (args->items.size() == 1 && args->items[0]->kind == Kind::List) {
        for (Value* pair : args->items[0]->items) {
          if ((pair->kind != Kind::Tuple && pair->kind != Kind::List) || pair->items.size() != 2) FailPickle("builds an OrderedDict from items that are not pairs");
          d->entries.emplace_back(pair->items[0], pair->items[1]);
        }
      } else if (!args->items.empty()) {
        FailPickle("builds an OrderedDict from " + std::to_string(args->items.size()) + " arguments");
      }
      Push(d);
      return;
    }
    case Global::RebuildTensorV3:
      Push(RebuildTensor(args->items, "_rebuild_tensor_v3", true));
      return;
    case Global::RebuildTensorV2:
      Push(RebuildTensor(args->items, "_rebuild_tensor_v2", false));
      return;
    case Global::RebuildTensor:
      Push(RebuildTensor(args->items, "_rebuild_tensor", false));
      return;
    case Global::RebuildParameter:
      if (args->items.empty() || args->items[0]->kind != Kind::Tensor) FailPickle("calls _rebuild_parameter without a tensor");
      Push(args->items[0]);
      return;
    case Global::StorageType:
      FailPickle("constructs a storage directly, which torch.save never writes");
    case Global::Dtype:
      FailPickle("calls a dtype, which torch.save never writes");
  }
}

Value* PickleReader::Load() {
  while (pos_ < size_) {
    const uint8_t op = data_[pos_++];
    switch (op) {
      case 0x80:  // PROTO
        Uint(1);
        break;
      case 0x95:  // FRAME: a length hint only
        Uint(8);
        break;
      case '.': {  // STOP
        if (stack_.empty()) FailPickle("stops with an empty stack");
        return stack_.back();
      }
      case '(':
        if (marks_.size() >= kMaxStack) FailPickle("has too many MARKs");
        marks_.push_back(stack_.size());
        break;
      case '0':
        Pop();
        break;
      case '1':
        PopToMark();
        break;
      case '2':
        Push(Top());
        break;
      case 'N':
        Push(&none_);
        break;
      case 0x88:
        Push(&true_);
        break;
      case 0x89:
        Push(&false_);
        break;
      case 'J': {
        Value* v = New(Kind::Int);
        v->i = static_cast<int32_t>(Uint(4));
        Push(v);
        break;
      }
      case 'K': case 'M': {
        Value* v = New(Kind::Int);
        v->i = static_cast<int64_t>(Uint(op == 'K' ? 1 : 2));
        Push(v);
        break;
      }
      case 0x8a: case 0x8b: {  // LONG1, LONG4: little-endian two's complement
        const uint64_t n = Uint(op == 0x8a ? 1 : 4);
        if (n > 8) FailPickle("has an integer of " + std::to_string(n) + " bytes, beyond 64 bits");
        if (n > size_ - pos_) FailPickle("ends inside an opcode");
        uint64_t u = Uint(static_cast<int>(n));
        if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);  // sign-extend
        Value* v = New(Kind::Int);
        v->i = static_cast<int64_t>(u);
        Push(v);
        break;
      }
      case 'I': case 'L': {  // decimal text; "01"/"00" are True/False in protocol 0
        std::string s = Line();
        if (op == 'I' && (s == "01" || s == "00")) {
          Push(s == "01" ? &true_ : &false_);
          break;
        }
        if (!s.empty() && s.back() == 'L') s.pop_back();
        char* end = nullptr;
        errno = 0;
        const long long x = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || errno != 0) FailPickle("has an integer that is not a 64-bit decimal");
        Value* v = New(Kind::Int);
        v->i = x;
        Push(v);
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        if (8 > size_ - pos_) FailPickle("ends inside an opcode");
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | data_[pos_ + i];
        pos_ += 8;
        Value* v = New(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        Push(v);
        break;
      }
      case 'F': {
        std::string s = Line();
        char* end = nullptr;
        Value* v = New(Kind::Float);
        v->f = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') FailPickle("has a float that is not a number");
        Push(v);
        break;
      }
      case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C': case 0x8e: case 0x96: {
        const int width = op == 0x8c || op == 'U' || op == 'C' ? 1 : op == 0x8d || op == 0x8e || op == 0x96 ? 8 : 4;
        uint64_t n = Uint(width);
        if (op == 'T' && n > 0x7FFFFFFF) FailPickle("has a string of negative length");
        Value* v = New(op == 'X' || op == 0x8c || op == 0x8d || op == 'T' || op == 'U' ? Kind::Str : Kind::Bytes);
        v->s = Bytes(n);
        Push(v);
        break;
      }
      case 'V': case 'S': {  // text forms of protocol 0: kept as written (quotes stripped)
        Value* v = New(Kind::Str);
        v->s = Line();
        if (op == 'S' && v->s.size() >= 2 && (v->s.front() == '\'' || v->s.front() == '"')) v->s = v->s.substr(1, v->s.size() - 2);
        Push(v);
        break;
      }
      case ')':
        Push(New(Kind::Tuple));
        break;
      case 't': {
        auto items = PopToMark();
        Value* v = New(Kind::Tuple);
        v->items = std::move(items);
        Push(v);
        break;
      }
      case 0x85: case 0x86: case 0x87: {
        const int n = op - 0x84;
        Value* v = New(Kind::Tuple);
        v->items.resize(n);
        for (int i = n; i-- > 0;) v->items[i] = Pop();
        Push(v);
        break;
      }
      case ']': case 0x8f:  // EMPTY_LIST, EMPTY_SET (read as a list)
        Push(New(Kind::List));
        break;
      case 'l': case 0x91: {  // LIST, FROZENSET
        auto items = PopToMark();
        Value* v = New(Kind::List);
        v->items = std::move(items);
        Push(v);
        break;
      }
      case 'a': {
        Value* x = Pop();
        Value* list = Top();
        if (list->kind != Kind::List) FailPickle("appends to " + std::string(KindName(list->kind)));
        list->items.push_back(x);
        break;
      }
      case 'e': case 0x90: {  // APPENDS, ADDITEMS
        auto items = PopToMark();
        Value* list = Top();
        if (list->kind != Kind::List) FailPickle("appends to " + std::string(KindName(list->kind)));
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case '}':
        Push(New(Kind::Dict));
        break;
      case 'd': case 'u': {
        auto items = PopToMark();
        if (items.size() % 2 != 0) FailPickle("sets a dict item without a value");
        Value* d = op == 'd' ? New(Kind::Dict) : Top();
        if (d->kind != Kind::Dict) FailPickle("sets items of " + std::string(KindName(d->kind)));
        for (size_t i = 0; i < items.size(); i += 2) d->entries.emplace_back(items[i], items[i + 1]);
        if (op == 'd') Push(d);
        break;
      }
      case 's': {
        Value* v = Pop();
        Value* k = Pop();
        Value* d = Top();
        if (d->kind != Kind::Dict) FailPickle("sets an item of " + std::string(KindName(d->kind)));
        d->entries.emplace_back(k, v);
        break;
      }
      case 'c': {
        std::string module = Line();
        std::string name = Line();
        Push(GlobalValue(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = Pop();
        Value* module = Pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) FailPickle("names a global with values that are not strings");
        Push(GlobalValue(module->s, name->s));
        break;
      }
      case 'i': {  // INST: a class, named like GLOBAL
        std::string module = Line();
        std::string name = Line();
        GlobalValue(module, name);
        FailPickle("instantiates " + module + "." + name + " with INST");
      }
      case 'R': {
        Value* args = Pop();
        Value* callable = Pop();
        Reduce(callable, args);
        break;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict can be an allowed class
        Value* args = Pop();
        Value* cls = Pop();
        if (cls->kind != Kind::Global || cls->global != Global::OrderedDict || args->kind != Kind::Tuple) FailPickle("creates an object that is not an OrderedDict");
        Push(New(Kind::Dict));
        break;
      }
      case 'b': {  // BUILD: an OrderedDict's state (state_dict's _metadata) is not needed
        Value* state = Pop();
        (void)state;
        Value* target = Top();
        if (target->kind != Kind::Dict && target->kind != Kind::Tensor) FailPickle("sets the state of " + std::string(KindName(target->kind)));
        break;
      }
      case 'Q': {  // BINPERSID
        Value* pid = Pop();
        Push(PersistentLoad(pid));
        break;
      }
      case 'p': case 'q': case 'r': case 0x94: {  // PUT, BINPUT, LONG_BINPUT, MEMOIZE
        const uint64_t id = op == 0x94 ? memo_.size() : MemoIndex(op);
        if (memo_.size() >= kMaxValues && memo_.count(id) == 0) FailPickle("memoizes more than " + std::to_string(kMaxValues) + " values");
        memo_[id] = Top();
        break;
      }
      case 'g': case 'h': case 'j': {  // GET, BINGET, LONG_BINGET
        const uint64_t id = MemoIndex(op);
        auto it = memo_.find(id);
        if (it == memo_.end()) FailPickle("gets memo " + std::to_string(id) + ", which was never set");
        Push(it->second);
        break;
      }
      case 'o': case 0x92:
        FailPickle("creates an object of a class (OBJ or NEWOBJ_EX), which a state dict never holds");
      case 0x82: case 0x83: case 0x84:
        FailPickle("names a global through the extension registry (EXT), which is not read");
      case 'P':
        FailPickle("names a storage by a text persistent id (pickle protocol 0), which torch.load cannot read either: save with "
                   "torch.save's default pickle_protocol (2)");
      case 0x97: case 0x98:
        FailPickle("uses an opcode torch.save never writes (" + std::to_string(op) + ")");
      default:
        FailPickle("has an unknown opcode " + std::to_string(op) + " at byte " + std::to_string(pos_ - 1));
    }
  }
  FailPickle("ends without a STOP");
}

}  // namespace gd::checkpoints
