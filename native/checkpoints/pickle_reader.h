// A pickle reader that runs nothing: the subset of Python's pickle machine that torch.save
// writes for state dicts, with an allowlist enforced at the GLOBAL opcode itself. Tensors,
// storages, OrderedDict, dicts, lists, tuples, numbers, strings, bytes and None are built;
// any other global (os.system, builtins.eval, a class) is refused by name before anything
// could use it. There is no Python here, so "refused" is all that can happen to it.
//
// Values live in an arena owned by the reader and refer to each other by pointer, so cycles
// (a list appended to itself) and deep nesting cost no recursion: nothing here recurses.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gd::checkpoints {

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

// The only globals a state dict needs.
enum class Global : uint8_t { OrderedDict, RebuildTensorV3, RebuildTensorV2, RebuildTensor, RebuildParameter, StorageType, Dtype };

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                                   // Bool, Int; Storage: its element count
  double f = 0;                                    // Float
  std::string s;                                   // Str, Bytes; Storage: its key
  std::vector<Value*> items;                       // Tuple, List
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order (later keys win)
  Global global = Global::OrderedDict;             // Global
  at::ScalarType dtype = at::kFloat;               // Global StorageType or Dtype, Storage (kByte: untyped)
  at::Tensor tensor;  // Storage: its flat data (undefined in a dry run); Tensor
};

// Called for each storage a pickle refers to: (key, dtype, element count) -> a flat contiguous
// tensor of that many elements, or an undefined tensor to check the pickle without data.
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

class PickleReader {
 public:
  PickleReader(const uint8_t* data, size_t size, StorageLoader load);
  // Runs the pickle to its STOP; throws CheckpointError. The value lives as long as the reader.
  Value* Load();
  // Where the STOP ended: the next pickle of a legacy torch.save file starts there.
  size_t position() const { return pos_; }

 private:
  Value* New(Kind kind);
  Value* Pop();
  Value* Top();
  std::vector<Value*> PopToMark();
  uint64_t Uint(int bytes);
  std::string Line();
  uint64_t MemoIndex(uint8_t op);
  std::string Bytes(uint64_t n);
  void Push(Value* v);
  void Reduce(Value* callable, Value* args);
  Value* GlobalValue(const std::string& module, const std::string& name);
  Value* PersistentLoad(Value* pid);
  Value* RebuildTensor(const std::vector<Value*>& args, const char* fn, bool v3);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  StorageLoader load_;
  std::deque<Value> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  std::unordered_map<std::string, Value*> storages_;
  Value none_, true_, false_;
};

// The dtype of torch.<Name>Storage, e.g. "FloatStorage" -> kFloat; false when not one we read.
bool StorageDtype(const std::string& name, at::ScalarType* dtype);
// The dtype torch.<name> names, e.g. "uint16" -> kUInt16 (what _rebuild_tensor_v3 is given);
// false when not a dtype LibTorch stores as plain data.
bool NamedDtype(const std::string& name, at::ScalarType* dtype);

}  // namespace gd::checkpoints
