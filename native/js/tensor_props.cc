// Tensor properties, conversions, in-place updates and backward: what a Tensor *is* and how
// its data leaves or enters. The math lives in tensor_ops.cc.
#include <torch/csrc/autograd/autograd.h>

#include "diffusion/transfer.h"
#include "js/common.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

using PD = Napi::PropertyDescriptor;

Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto sizes = ThisTensor(info).sizes();
  auto arr = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
  return arr;
}

Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DtypeName(ThisTensor(info).scalar_type()));
}

Napi::Value Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DeviceName(ThisTensor(info).device()));
}

Napi::Value Numel(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(ThisTensor(info).numel())); }
Napi::Value Ndim(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(ThisTensor(info).dim())); }
Napi::Value RequiresGrad(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ThisTensor(info).requires_grad()); }

void SetRequiresGrad(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { ThisTensor(info).set_requires_grad(ToBool(info[0], "requiresGrad")); })
}

Napi::Value RequiresGradInPlace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    bool flag = IsMissing(info[0]) ? true : ToBool(info[0], "requiresGrad");
    ThisTensor(info).set_requires_grad(flag);
    return info.This();
  })
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::WrapOrNull(info.Env(), ThisTensor(info).grad()); })
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ThisTensor(info).is_leaf()); }

// to('float64') | to('cuda') | to({dtype, device}) | to(otherTensor)
Napi::Value To(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    Napi::Env env = info.Env();
    Napi::Value arg = info[0];
    if (TensorWrap::IsTensor(arg)) {
      const at::Tensor& other = TensorWrap::From(arg, "other");
      return TensorWrap::Wrap(env, t.to(other.options()));
    }
    at::TensorOptions opts = t.options();
    if (arg.IsString()) {
      std::string s = arg.As<Napi::String>().Utf8Value();
      bool is_device = s == "cpu" || s.rfind("cuda", 0) == 0;
      if (is_device) {
        opts = opts.device(ToDevice(env, s));
      } else {
        opts = opts.dtype(ToDtype(env, s));
      }
    } else if (arg.IsObject()) {
      opts = ToTensorOptions(arg, opts);
    } else {
      ThrowType(env, "Expected a dtype, a device, an options object or a Tensor for to() but received " + Describe(arg));
    }
    return TensorWrap::Wrap(env, t.to(opts));
  })
}

Napi::Value Cpu(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).cpu()); })
}

Napi::Value Cuda(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::string dev = IsMissing(info[0]) ? "cuda" : ToString(info[0], "device");
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).to(ToDevice(info.Env(), dev)));
  })
}

Napi::Value Clone(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).clone()); })
}

Napi::Value Detach(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).detach()); })
}

Napi::Value Item(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    if (t.numel() != 1) {
      ThrowRange(info.Env(), "item() needs a tensor with exactly one element; this one has " + std::to_string(t.numel()));
    }
    at::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
    return Napi::Number::New(info.Env(), s.toDouble());
  })
}

// A copy of the data as the TypedArray of the tensor's dtype (float16/bfloat16 as Float32Array).
Napi::Value Data(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    at::Tensor t = ThisTensor(info).detach();
    if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
    if (t.is_cuda()) t = to_host(t);
    const size_t n = static_cast<size_t>(t.numel());
    // A Node Buffer's memory is not zero-filled first (an ArrayBuffer's is); at::copy_ fills it
    // in parallel and handles strides.
    auto buf = Napi::Buffer<uint8_t>::New(env, n * t.element_size());
    if (n > 0) at::from_blob(buf.Data(), t.sizes(), t.options().device(at::kCPU)).copy_(t);
    const size_t offset = buf.ByteOffset();
    switch (t.scalar_type()) {
      case at::kFloat: return Napi::Float32Array::New(env, n, buf.ArrayBuffer(), offset);
      case at::kDouble: return Napi::Float64Array::New(env, n, buf.ArrayBuffer(), offset);
      case at::kLong: return Napi::BigInt64Array::New(env, n, buf.ArrayBuffer(), offset);
      case at::kInt: return Napi::Int32Array::New(env, n, buf.ArrayBuffer(), offset);
      case at::kByte:
      case at::kBool: return Napi::Uint8Array::New(env, n, buf.ArrayBuffer(), offset);
      default: ThrowType(env, "data() does not support dtype " + DtypeName(t.scalar_type()));
    }
  })
}

Napi::Value InPlaceBinary(const Napi::CallbackInfo& info, const char* name) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    Operand o = ToOperand(info[0], "other");
    std::string op(name);
    if (op == "add_") {
      o.is_tensor ? t.add_(o.tensor) : t.add_(o.scalar);
    } else if (op == "sub_") {
      o.is_tensor ? t.sub_(o.tensor) : t.sub_(o.scalar);
    } else if (op == "mul_") {
      o.is_tensor ? t.mul_(o.tensor) : t.mul_(o.scalar);
    } else {
      o.is_tensor ? t.div_(o.tensor) : t.div_(o.scalar);
    }
    return info.This();
  })
}

Napi::Value AddInPlace(const Napi::CallbackInfo& info) { return InPlaceBinary(info, "add_"); }
Napi::Value SubInPlace(const Napi::CallbackInfo& info) { return InPlaceBinary(info, "sub_"); }
Napi::Value MulInPlace(const Napi::CallbackInfo& info) { return InPlaceBinary(info, "mul_"); }
Napi::Value DivInPlace(const Napi::CallbackInfo& info) { return InPlaceBinary(info, "div_"); }

std::optional<at::Scalar> OptionalScalar(const Napi::Value& v, const char* name) {
  if (IsMissing(v)) return std::nullopt;
  return ToScalar(v, name);
}

Napi::Value ClampInPlace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    ThisTensor(info).clamp_(OptionalScalar(info[0], "min"), OptionalScalar(info[1], "max"));
    return info.This();
  })
}

Napi::Value ZeroInPlace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    ThisTensor(info).zero_();
    return info.This();
  })
}

Napi::Value FillInPlace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    ThisTensor(info).fill_(ToScalar(info[0], "value"));
    return info.This();
  })
}

Napi::Value CopyInPlace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    ThisTensor(info).copy_(TensorWrap::From(info[0], "src"));
    return info.This();
  })
}

// backward(gradient?, {retainGraph, createGraph})
Napi::Value Backward(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    at::Tensor gradient;
    Napi::Value options = info[1];
    if (TensorWrap::IsTensor(info[0])) {
      gradient = TensorWrap::From(info[0], "gradient");
    } else if (info[0].IsObject()) {
      options = info[0];
    }
    Napi::Value retain = Option(options, "retainGraph");
    Napi::Value create = Option(options, "createGraph");
    bool create_graph = IsMissing(create) ? false : ToBool(create, "createGraph");
    std::optional<bool> retain_graph;
    if (!IsMissing(retain)) retain_graph = ToBool(retain, "retainGraph");
    if (!t.requires_grad()) {
      throw Napi::Error::New(info.Env(), "backward(): the tensor does not require grad and has no grad_fn");
    }
    if (!gradient.defined() && t.numel() != 1) {
      throw Napi::Error::New(info.Env(), "backward(): grad can be implicitly created only for scalar outputs; pass a gradient");
    }
    t.backward(gradient, retain_graph, create_graph);
    return info.Env().Undefined();
  })
}

}  // namespace

void InstallTensorProperties(Napi::Env env, Napi::Object prototype) {
  prototype.DefineProperties({
      PD::Accessor<Shape>("shape"),
      PD::Accessor<Dtype>("dtype"),
      PD::Accessor<Device>("device"),
      PD::Accessor<Numel>("numel"),
      PD::Accessor<Ndim>("ndim"),
      PD::Accessor<RequiresGrad, SetRequiresGrad>("requiresGrad"),
      PD::Accessor<Grad>("grad"),
      PD::Accessor<IsLeaf>("isLeaf"),
  });
  SetMethod(env, prototype, "to", To);
  SetMethod(env, prototype, "cpu", Cpu);
  SetMethod(env, prototype, "cuda", Cuda);
  SetMethod(env, prototype, "clone", Clone);
  SetMethod(env, prototype, "detach", Detach);
  SetMethod(env, prototype, "item", Item);
  SetMethod(env, prototype, "data", Data);
  SetMethod(env, prototype, "add_", AddInPlace);
  SetMethod(env, prototype, "sub_", SubInPlace);
  SetMethod(env, prototype, "mul_", MulInPlace);
  SetMethod(env, prototype, "div_", DivInPlace);
  SetMethod(env, prototype, "clamp_", ClampInPlace);
  SetMethod(env, prototype, "zero_", ZeroInPlace);
  SetMethod(env, prototype, "fill_", FillInPlace);
  SetMethod(env, prototype, "copy_", CopyInPlace);
  SetMethod(env, prototype, "requiresGrad_", RequiresGradInPlace);
  SetMethod(env, prototype, "backward", Backward);
}

}  // namespace gd::js
