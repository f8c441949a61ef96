// The JS Tensor: one object owning one reference to an at::Tensor, released by dispose(),
// by the end of the torch.tidy scope that created it, or by the garbage collector.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <vector>

namespace gd::js {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // Wraps t in a new JS Tensor registered in the current tidy scope.
  static Napi::Object Wrap(Napi::Env env, at::Tensor t);
  static Napi::Value WrapOrNull(Napi::Env env, const at::Tensor& t);
  static bool IsTensor(const Napi::Value& v);
  // The tensor behind a JS value; TypeError when it is not a Tensor, Error when disposed.
  static const at::Tensor& From(const Napi::Value& v, const char* name);
  static TensorWrap* UnwrapArg(const Napi::Value& v, const char* name);
  // Methods defined in other files are added to Tensor.prototype through this.
  static void AddMethods(Napi::Env env, Napi::Object prototype);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

  const at::Tensor& tensor() const;
  // Replaces the held tensor (in-place ops that rebind, requiresGrad_ on a leaf).
  void Reset(at::Tensor t);
  void Dispose();
  bool disposed() const { return !tensor_.defined(); }

  // tidy scopes (of this environment): a stack of sets of tensors created while the scope was open.
  static void StartScope(Napi::Env env);
  static void EndScope(Napi::Env env, const std::vector<TensorWrap*>& keep);

  struct Stats {
    int64_t tensors = 0;
    int64_t bytes = 0;
  };
  static Stats stats(Napi::Env env);

 private:
  void Account(int sign);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  int64_t bytes_ = 0;
  bool cpu_ = true;
};

// Each file of tensor methods contributes an installer called from TensorWrap::AddMethods.
void InstallTensorProperties(Napi::Env env, Napi::Object prototype);
void InstallTensorOps(Napi::Env env, Napi::Object prototype);

// The tensor a Tensor.prototype method was called on (`this`).
inline const at::Tensor& ThisTensor(const Napi::CallbackInfo& info) { return TensorWrap::From(info.This(), "this"); }

// Defines prototype[name] as a native method.
inline void SetMethod(Napi::Env env, Napi::Object prototype, const char* name, Napi::Value (*cb)(const Napi::CallbackInfo&)) {
  prototype.Set(name, Napi::Function::New(env, cb, name));
}

// A math operand: a Tensor or a JS number/boolean/BigInt (typed by ToScalar).
struct Operand {
  bool is_tensor = false;
  at::Tensor tensor;
  at::Scalar scalar;
};
Operand ToOperand(const Napi::Value& v, const char* name);
// The operand as a tensor on like's device; a scalar becomes a wrapped-number 0-dim tensor.
at::Tensor OperandTensor(const Operand& o, const at::Tensor& like);

// Tensors from a JS array of Tensors.
std::vector<at::Tensor> ToTensorList(const Napi::Value& v, const char* name);
Napi::Array WrapList(Napi::Env env, const std::vector<at::Tensor>& list);

}  // namespace gd::js
