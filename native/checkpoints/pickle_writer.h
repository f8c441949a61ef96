// The pickle that torch.save writes for a state dict or an optimizer's state dict, written
// without Python: protocol 2, the objects torch.load(weights_only=True) accepts (None, bools,
// ints, floats, strings, tuples, lists, dicts, collections.OrderedDict, tensors through
// torch._utils._rebuild_tensor_v2 and a persistent id naming a storage).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gd::checkpoints {

// A value to pickle. Built by the caller; tensors are written whole (contiguous, offset 0), each
// in a storage of its own.
struct SaveValue {
  enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tensor, Tuple, List, Dict, OrderedDict };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  at::Tensor tensor;
  std::vector<SaveValue> items;                          // Tuple, List
  std::vector<std::pair<SaveValue, SaveValue>> entries;  // Dict, OrderedDict, in this order

  static SaveValue None() { return SaveValue{}; }
  static SaveValue Bool(bool v);
  static SaveValue Int(int64_t v);
  static SaveValue Float(double v);
  static SaveValue Str(std::string v);
  static SaveValue Tensor(at::Tensor v);
  static SaveValue Tuple(std::vector<SaveValue> v);
  static SaveValue List(std::vector<SaveValue> v);
  static SaveValue Dict(std::vector<std::pair<SaveValue, SaveValue>> v);
  // A state dict: an OrderedDict of names to tensors.
  static SaveValue StateDict(const std::vector<std::pair<std::string, at::Tensor>>& named);
};

// The pickle of `value`; `storages` gets each tensor's data (contiguous, on the CPU) in the
// order of their keys "0", "1", ... as the archive must hold them.
std::string PickleForTorchSave(const SaveValue& value, std::vector<at::Tensor>* storages);

}  // namespace gd::checkpoints
