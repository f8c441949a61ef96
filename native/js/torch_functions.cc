// The torch namespace: creation, random numbers, joins, nn.functional, autograd and the
// process-wide settings (grad mode, threads, seeds, memory, tidy scopes).
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>

#include "diffusion/model_call.h"
#include "diffusion/transfer.h"
#include "js/common.h"
#include "js/cpu_allocator.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

Napi::Value Finish(Napi::Env env, at::Tensor t, const Napi::Value& options) {
  if (OptionRequiresGrad(options)) t.set_requires_grad(true);
  return TensorWrap::Wrap(env, std::move(t));
}

// The element count of a shape, refusing one that overflows (it could wrap to match the data).
int64_t Numel(Napi::Env env, const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t s : shape) {
    if (s != 0 && numel > (int64_t{1} << 53) / s) {
      bool empty = std::find(shape.begin(), shape.end(), 0) != shape.end();
      if (empty) return 0;
      ThrowRange(env, "shape [" + c10::Join(", ", shape) + "] has too many elements");
    }
    numel *= s;
  }
  return numel;
}

at::TensorOptions FloatOptions(const Napi::Value& options) { return ToTensorOptions(options, at::TensorOptions().dtype(at::kFloat)); }

// The values an integral dtype holds, as doubles.
struct Range {
  double lo, hi;
  bool hi_inclusive;
};

std::optional<Range> IntegralRange(at::ScalarType dtype) {
  switch (dtype) {
    // 2^63 is a double but not an int64: the upper bound is exclusive.
    case at::kLong: return Range{-9223372036854775808.0, 9223372036854775808.0, false};
    case at::kInt: return Range{-2147483648.0, 2147483647.0, true};
    case at::kByte: return Range{0.0, 255.0, true};
    // Float dtypes take anything (overflow is inf, as in Python); bool takes anything (nonzero is true).
    default: return std::nullopt;
  }
}

// Refuses data that an integral `to` cannot hold, as Python's torch.tensor does, instead of the
// cast's silent garbage (300 as uint8 is 44; NaN or 1e20 as int64 is -2^63). Fractions
// truncate, as in Python. Python wraps -1 into uint8 as 255; that is refused too.
void CheckFits(Napi::Env env, const at::Tensor& data, at::ScalarType to) {
  const std::optional<Range> range = IntegralRange(to);
  if (!range || data.scalar_type() == to) return;
  const at::Tensor d = data.to(at::kDouble);
  at::Tensor bad = range->hi_inclusive ? d.gt(range->hi) : d.ge(range->hi);
  bad.logical_or_(d.lt(range->lo)).logical_or_(d.isnan());
  if (!bad.any().item<bool>()) return;
  const int64_t i = bad.flatten().nonzero().select(0, 0).item<int64_t>();
  // The value as JS prints it, read from the source (int64 data beyond 2^53 keeps its digits).
  const at::Tensor v = data.flatten().select(0, i);
  std::string value = data.scalar_type() == at::kLong ? std::to_string(v.item<int64_t>())
                                                      : Napi::Number::New(env, v.item<double>()).ToString().Utf8Value();
  ThrowRange(env, "tensor(): the value " + value + " (element " + std::to_string(i) + ") does not fit dtype " + DtypeName(to));
}

// fromData(typedArray, shape, options): copies the typed array, then converts to options.dtype.
Napi::Value FromData(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray()) ThrowType(env, "Expected a TypedArray for data but received " + Describe(info[0]));
    auto arr = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = ToShape(info[1], "shape");
    int64_t numel = Numel(env, shape);
    if (static_cast<size_t>(numel) != arr.ElementLength()) {
      ThrowRange(env, "shape has " + std::to_string(numel) + " elements but the data has " + std::to_string(arr.ElementLength()));
    }
    at::ScalarType src;
    switch (arr.TypedArrayType()) {
      case napi_float32_array: src = at::kFloat; break;
      case napi_float64_array: src = at::kDouble; break;
      case napi_int32_array: src = at::kInt; break;
      case napi_bigint64_array: src = at::kLong; break;
      case napi_uint8_array: src = at::kByte; break;
      default: ThrowType(env, "Unsupported TypedArray; use Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array");
    }
    const at::TensorOptions opts = ToTensorOptions(info[2], at::TensorOptions().dtype(src));
    at::Tensor t = gd::empty_host_for(shape, src, opts.device());
    if (numel > 0) {
      // A view of the JS memory, copied at once (by at::copy_, in parallel): the tensor never aliases it.
      auto* bytes = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
      const at::Tensor view = at::from_blob(bytes, shape, at::TensorOptions().dtype(src));
      CheckFits(env, view, opts.dtype().toScalarType());
      t.copy_(view);
    }
    return Finish(env, gd::to_device(t, opts.device(), opts.dtype().toScalarType()), info[2]);
  })
}

// fromBytes(uint8Array, shape, dtype): the bytes reinterpreted as dtype (little-endian), for
// file formats such as safetensors.
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowType(env, "Expected a Uint8Array for bytes but received " + Describe(info[0]));
    }
    auto bytes = info[0].As<Napi::Uint8Array>();
    std::vector<int64_t> shape = ToShape(info[1], "shape");
    at::ScalarType dtype = ToDtype(env, ToString(info[2], "dtype"));
    int64_t numel = Numel(env, shape);
    size_t expected = static_cast<size_t>(numel) * c10::elementSize(dtype);
    if (expected != bytes.ByteLength()) {
      ThrowRange(env, "shape [" + c10::Join(", ", shape) + "] of " + DtypeName(dtype) + " needs " + std::to_string(expected) +
                          " bytes but " + std::to_string(bytes.ByteLength()) + " were given");
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (expected > 0) std::memcpy(t.data_ptr(), bytes.Data(), expected);
    return TensorWrap::Wrap(env, t);
  })
}

// toBytes(tensor): the raw little-endian bytes of a contiguous CPU copy.
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    at::Tensor t = TensorWrap::From(info[0], "tensor").detach().to(at::kCPU).contiguous();
    size_t n = t.numel() * t.element_size();
    auto out = Napi::Uint8Array::New(info.Env(), n);
    if (n > 0) std::memcpy(out.Data(), t.data_ptr(), n);
    return out;
  })
}

#define GD_SHAPE_FACTORY(NAME, EXPR)                              \
  Napi::Value NAME(const Napi::CallbackInfo& info) {              \
    GD_GUARD(info.Env(), {                                        \
      std::vector<int64_t> shape = ToShape(info[0], "shape");     \
      at::TensorOptions opts = FloatOptions(info[1]);             \
      return Finish(info.Env(), EXPR, info[1]);                   \
    })                                                            \
  }

GD_SHAPE_FACTORY(Zeros, at::zeros(shape, opts))
GD_SHAPE_FACTORY(Ones, at::ones(shape, opts))
GD_SHAPE_FACTORY(Empty, at::empty(shape, opts))
GD_SHAPE_FACTORY(Randn, at::randn(shape, opts))
GD_SHAPE_FACTORY(Rand, at::rand(shape, opts))

Napi::Value Full(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<int64_t> shape = ToShape(info[0], "shape");
    // Without a dtype, at::full infers it from the value as Python does: bool, int64 or float32.
    return Finish(info.Env(), at::full(shape, ToScalar(info[1], "value"), ToTensorOptions(info[2])), info[2]);
  })
}

// randint(low, high, shape, options): int64 by default, as PyTorch.
Napi::Value Randint(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t low = ToInt(info[0], "low");
    int64_t high = ToInt(info[1], "high");
    if (high <= low) ThrowRange(info.Env(), "randint: high (" + std::to_string(high) + ") must be greater than low (" + std::to_string(low) + ")");
    std::vector<int64_t> shape = ToShape(info[2], "shape");
    at::TensorOptions opts = ToTensorOptions(info[3], at::TensorOptions().dtype(at::kLong));
    return Finish(info.Env(), at::randint(low, high, shape, opts), info[3]);
  })
}

// arange(start, end, step, options): int64 when all bounds are integers, else float32.
Napi::Value Arange(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    double start = ToNumber(info[0], "start");
    double end = ToNumber(info[1], "end");
    double step = IsMissing(info[2]) ? 1.0 : ToNumber(info[2], "step");
    if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step)) {
      std::ostringstream msg;
      msg << "arange: start, end and step must be finite; got start " << start << ", end " << end << ", step " << step;
      ThrowRange(info.Env(), msg.str());
    }
    if (step == 0) ThrowRange(info.Env(), "arange: step must be non-zero");
    // Integers beyond 2^53 are not exact in JS and overflow the int64 casts below.
    auto exact_int = [](double v) { return std::floor(v) == v && std::fabs(v) <= 9.007199254740992e15; };
    bool integral = exact_int(start) && exact_int(end) && exact_int(step);
    at::TensorOptions opts = ToTensorOptions(info[3], at::TensorOptions().dtype(integral ? at::kLong : at::kFloat));
    at::Tensor t = integral ? at::arange(static_cast<int64_t>(start), static_cast<int64_t>(end), static_cast<int64_t>(step), opts)
                            : at::arange(start, end, step, opts);
    return Finish(info.Env(), t, info[3]);
  })
}

Napi::Value Linspace(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    double start = ToNumber(info[0], "start");
    double end = ToNumber(info[1], "end");
    int64_t steps = ToNonNegativeInt(info[2], "steps");
    return Finish(info.Env(), at::linspace(start, end, steps, FloatOptions(info[3])), info[3]);
  })
}

#define GD_LIKE_FACTORY(NAME, EXPR)                                                   \
  Napi::Value NAME(const Napi::CallbackInfo& info) {                                  \
    GD_GUARD(info.Env(), {                                                            \
      const at::Tensor& like = TensorWrap::From(info[0], "input");                    \
      at::TensorOptions opts = ToTensorOptions(info[1], like.options());              \
      return Finish(info.Env(), EXPR, info[1]);                                       \
    })                                                                                \
  }

GD_LIKE_FACTORY(ZerosLike, at::zeros_like(like, opts))
GD_LIKE_FACTORY(OnesLike, at::ones_like(like, opts))
GD_LIKE_FACTORY(EmptyLike, at::empty_like(like, opts))
GD_LIKE_FACTORY(RandnLike, at::randn_like(like, opts))
GD_LIKE_FACTORY(RandLike, at::rand_like(like, opts))

Napi::Value FullLike(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& like = TensorWrap::From(info[0], "input");
    at::TensorOptions opts = ToTensorOptions(info[2], like.options());
    return Finish(info.Env(), at::full_like(like, ToScalar(info[1], "value"), opts), info[2]);
  })
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    uint64_t seed = static_cast<uint64_t>(ToNonNegativeInt(info[0], "seed"));
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    int64_t n = at::detail::getCUDAHooks().deviceCount();
    for (int64_t i = 0; i < n; i++) {
      auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    return info.Env().Undefined();
  })
}

Napi::Value Cat(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t dim = IsMissing(info[1]) ? 0 : ToInt(info[1], "dim");
    return TensorWrap::Wrap(info.Env(), at::cat(ToTensorList(info[0], "tensors"), dim));
  })
}

Napi::Value Stack(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t dim = IsMissing(info[1]) ? 0 : ToInt(info[1], "dim");
    return TensorWrap::Wrap(info.Env(), at::stack(ToTensorList(info[0], "tensors"), dim));
  })
}

int64_t Reduction(const Napi::Value& options) {
  Napi::Value r = Option(options, "reduction");
  if (IsMissing(r)) return at::Reduction::Mean;
  std::string s = ToString(r, "reduction");
  if (s == "mean") return at::Reduction::Mean;
  if (s == "sum") return at::Reduction::Sum;
  if (s == "none") return at::Reduction::None;
  ThrowType(options.Env(), "Unknown reduction '" + s + "'; expected 'mean', 'sum' or 'none'");
}

// crossEntropy(logits (B, C), target (B,) int64, {reduction})
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& input = TensorWrap::From(info[0], "input");
    const at::Tensor& target = TensorWrap::From(info[1], "target");
    auto ls = at::log_softmax(input, 1);
    return TensorWrap::Wrap(info.Env(), at::nll_loss_nd(ls, target, {}, Reduction(info[2]), -100));
  })
}

Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& a = TensorWrap::From(info[0], "input");
    const at::Tensor& b = TensorWrap::From(info[1], "target");
    return TensorWrap::Wrap(info.Env(), at::mse_loss(a, b, Reduction(info[2])));
  })
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Value approx = Option(info[1], "approximate");
    std::string a = IsMissing(approx) ? "none" : ToString(approx, "approximate");
    if (a != "none" && a != "tanh") ThrowType(info.Env(), "Unknown approximate '" + a + "'; expected 'none' or 'tanh'");
    return TensorWrap::Wrap(info.Env(), at::gelu(TensorWrap::From(info[0], "input"), a));
  })
}

std::vector<int64_t> Pair(const Napi::Value& options, const char* key, int64_t dflt) {
  Napi::Value v = Option(options, key);
  if (IsMissing(v)) return {dflt, dflt};
  auto d = ToShape(v, key);
  if (d.size() == 1) return {d[0], d[0]};
  return d;
}

// conv2d(x, weight, bias?, {stride, padding, dilation, groups})
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& x = TensorWrap::From(info[0], "input");
    const at::Tensor& w = TensorWrap::From(info[1], "weight");
    std::optional<at::Tensor> b;
    if (!IsMissing(info[2])) b = TensorWrap::From(info[2], "bias");
    Napi::Value o = info[3];
    Napi::Value g = Option(o, "groups");
    int64_t groups = IsMissing(g) ? 1 : ToInt(g, "groups");
    return TensorWrap::Wrap(info.Env(), at::conv2d(x, w, b, Pair(o, "stride", 1), Pair(o, "padding", 0), Pair(o, "dilation", 1), groups));
  })
}

Napi::Value Linear(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& x = TensorWrap::From(info[0], "input");
    const at::Tensor& w = TensorWrap::From(info[1], "weight");
    std::optional<at::Tensor> b;
    if (!IsMissing(info[2])) b = TensorWrap::From(info[2], "bias");
    return TensorWrap::Wrap(info.Env(), at::linear(x, w, b));
  })
}

// interpolate(x (B,C,H,W), {size: [h, w] | scaleFactor, mode: 'nearest' | 'bilinear' | 'bicubic', alignCorners,
// antialias}); antialias (bilinear, bicubic): PyTorch's F.interpolate(antialias=True), which
// torchvision's Resize uses, so downscaling averages over the pixels it drops.
Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    const at::Tensor& x = TensorWrap::From(info[0], "input");
    if (x.dim() != 4) ThrowRange(env, "interpolate expects a 4-D (B, C, H, W) input; got " + std::to_string(x.dim()) + "-D");
    Napi::Value o = info[1];
    Napi::Value modeV = Option(o, "mode");
    std::string mode = IsMissing(modeV) ? "nearest" : ToString(modeV, "mode");
    std::vector<int64_t> size;
    Napi::Value sizeV = Option(o, "size");
    Napi::Value scaleV = Option(o, "scaleFactor");
    if (!IsMissing(sizeV)) {
      size = Pair(o, "size", 0);
    } else if (!IsMissing(scaleV)) {
      double s = ToNumber(scaleV, "scaleFactor");
      if (!(s > 0) || !std::isfinite(s) || x.size(2) * s > 9.0e15 || x.size(3) * s > 9.0e15) {
        ThrowRange(env, "Expected a positive finite number for scaleFactor but received " + Describe(scaleV));
      }
      size = {static_cast<int64_t>(std::floor(x.size(2) * s)), static_cast<int64_t>(std::floor(x.size(3) * s))};
    } else {
      ThrowType(env, "interpolate needs size or scaleFactor");
    }
    Napi::Value acV = Option(o, "alignCorners");
    bool align = IsMissing(acV) ? false : ToBool(acV, "alignCorners");
    Napi::Value aaV = Option(o, "antialias");
    const bool aa = !IsMissing(aaV) && ToBool(aaV, "antialias");
    if (aa && mode == "bilinear") return TensorWrap::Wrap(env, at::_upsample_bilinear2d_aa(x, size, align));
    if (aa && mode == "bicubic") return TensorWrap::Wrap(env, at::_upsample_bicubic2d_aa(x, size, align));
    if (aa) ThrowType(env, "antialias applies to the 'bilinear' and 'bicubic' modes, not '" + mode + "'");
    if (mode == "nearest") return TensorWrap::Wrap(env, at::upsample_nearest2d(x, size));
    if (mode == "bilinear") return TensorWrap::Wrap(env, at::upsample_bilinear2d(x, size, align));
    if (mode == "bicubic") return TensorWrap::Wrap(env, at::upsample_bicubic2d(x, size, align));
    ThrowType(env, "Unknown interpolate mode '" + mode + "'; expected 'nearest', 'bilinear' or 'bicubic'");
  })
}

Napi::Value WhereFn(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& cond = TensorWrap::From(info[0], "condition");
    Operand a = ToOperand(info[1], "input");
    Operand b = ToOperand(info[2], "other");
    if (a.is_tensor) return TensorWrap::Wrap(info.Env(), at::where(cond, a.tensor, OperandTensor(b, a.tensor)));
    if (b.is_tensor) return TensorWrap::Wrap(info.Env(), at::where(cond, OperandTensor(a, b.tensor), b.tensor));
    return TensorWrap::Wrap(info.Env(), at::where(cond, a.scalar, b.scalar));
  })
}

// autogradGrad(outputs[], inputs[], {gradOutputs, retainGraph, createGraph, allowUnused})
Napi::Value AutogradGrad(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    auto outputs = ToTensorList(info[0], "outputs");
    auto inputs = ToTensorList(info[1], "inputs");
    Napi::Value o = info[2];
    std::vector<at::Tensor> grad_outputs;
    Napi::Value go = Option(o, "gradOutputs");
    if (!IsMissing(go)) grad_outputs = ToTensorList(go, "gradOutputs");
    Napi::Value rg = Option(o, "retainGraph");
    Napi::Value cg = Option(o, "createGraph");
    Napi::Value au = Option(o, "allowUnused");
    std::optional<bool> retain;
    if (!IsMissing(rg)) retain = ToBool(rg, "retainGraph");
    bool create = IsMissing(cg) ? false : ToBool(cg, "createGraph");
    bool allow_unused = IsMissing(au) ? false : ToBool(au, "allowUnused");
    // LibTorch answers these with an internal assert ("report a bug to PyTorch").
    if (outputs.empty()) ThrowRange(env, "autograd.grad: outputs is empty; pass the tensor(s) to differentiate");
    if (inputs.empty()) ThrowRange(env, "autograd.grad: inputs is empty; pass the tensor(s) to differentiate with respect to");
    if (!grad_outputs.empty() && grad_outputs.size() != outputs.size()) {
      ThrowRange(env, "autograd.grad: gradOutputs has " + std::to_string(grad_outputs.size()) + " tensors but outputs has " +
                          std::to_string(outputs.size()));
    }
    for (size_t i = 0; i < outputs.size(); i++) {
      if (!outputs[i].requires_grad()) {
        throw Napi::Error::New(env, "autograd.grad: outputs[" + std::to_string(i) + "] does not require grad; was it computed under noGrad, or from inputs that do not require grad?");
      }
    }
    auto grads = torch::autograd::grad(outputs, inputs, grad_outputs, retain, create, allow_unused);
    auto arr = Napi::Array::New(env, grads.size());
    for (size_t i = 0; i < grads.size(); i++) arr.Set(static_cast<uint32_t>(i), TensorWrap::WrapOrNull(env, grads[i]));
    return arr;
  })
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    at::GradMode::set_enabled(ToBool(info[0], "enabled"));
    return info.Env().Undefined();
  })
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t n = ToInt(info[0], "threads");
    // A huge count makes OpenMP try to start that many threads at the next parallel region and
    // abort the process when it cannot.
    if (n < 1 || n > 1024) ThrowRange(info.Env(), "Expected integer between 1 and 1024 for threads but received " + Describe(info[0]));
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  })
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

Napi::Value CpuCache(const Napi::CallbackInfo& info) {
  const CpuCacheStats s = GetCpuCacheStats();
  auto o = Napi::Object::New(info.Env());
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(s.bytes)));
  o.Set("blocks", Napi::Number::New(info.Env(), static_cast<double>(s.blocks)));
  o.Set("limit", Napi::Number::New(info.Env(), static_cast<double>(s.limit)));
  return o;
}

Napi::Value CpuMemoryStats(const Napi::CallbackInfo& info) {
  const CpuAllocated a = GetCpuAllocated();
  auto o = Napi::Object::New(info.Env());
  o.Set("allocated", Napi::Number::New(info.Env(), static_cast<double>(a.bytes)));
  o.Set("peakAllocated", Napi::Number::New(info.Env(), static_cast<double>(a.peak)));
  return o;
}

Napi::Value ResetCpuPeakMemoryStats(const Napi::CallbackInfo& info) {
  ResetCpuPeak();
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(EmptyCpuCache()));
}

Napi::Value ReleaseFreeMemory(const Napi::CallbackInfo& info) {
  gd::js::ReleaseFreeMemory();
  return info.Env().Undefined();
}

Napi::Value SetCpuCacheLimit(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const double bytes = ToNumber(info[0], "bytes");
    if (!(bytes >= 0) || !std::isfinite(bytes)) ThrowRange(info.Env(), "setCpuCacheLimit: bytes must be a finite number >= 0; got " + Describe(info[0]));
    gd::js::SetCpuCacheLimit(static_cast<size_t>(bytes));
    return info.Env().Undefined();
  })
}

Napi::Value CudaIsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::detail::getCUDAHooks().hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0);
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(at::detail::getCUDAHooks().deviceCount()));
}

Napi::Value CudaGraphStats(const Napi::CallbackInfo& info) {
  const gd::CudaGraphStats s = gd::cuda_graph_stats();
  auto o = Napi::Object::New(info.Env());
  o.Set("supported", gd::cuda_graphs_built());
  o.Set("captures", static_cast<double>(s.captures));
  o.Set("replays", static_cast<double>(s.replays));
  o.Set("fallbacks", static_cast<double>(s.fallbacks));
  return o;
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  auto s = TensorWrap::stats(info.Env());
  auto o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(s.tensors)));
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(s.bytes)));
  return o;
}

Napi::Value StartScope(const Napi::CallbackInfo& info) {
  TensorWrap::StartScope(info.Env());
  return info.Env().Undefined();
}

// endScope(keep: Tensor[]): disposes what the scope created, except keep.
Napi::Value EndScope(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::vector<TensorWrap*> keep;
    if (info[0].IsArray()) {
      auto arr = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value v = arr.Get(i);
        if (TensorWrap::IsTensor(v)) keep.push_back(TensorWrap::UnwrapArg(v, "keep"));
      }
    }
    TensorWrap::EndScope(info.Env(), keep);
    return info.Env().Undefined();
  })
}

}  // namespace

void InstallTorchFunctions(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Fn fn;
  };
  const Entry entries[] = {
      {"fromData", FromData}, {"fromBytes", FromBytes}, {"toBytes", ToBytes}, {"zeros", Zeros}, {"ones", Ones}, {"empty", Empty}, {"full", Full},
      {"randn", Randn}, {"rand", Rand}, {"randint", Randint}, {"arange", Arange}, {"linspace", Linspace},
      {"zerosLike", ZerosLike}, {"onesLike", OnesLike}, {"emptyLike", EmptyLike}, {"fullLike", FullLike},
      {"randnLike", RandnLike}, {"randLike", RandLike}, {"manualSeed", ManualSeed},
      {"cat", Cat}, {"stack", Stack}, {"where", WhereFn},
      {"crossEntropy", CrossEntropy}, {"mseLoss", MseLoss}, {"gelu", Gelu}, {"conv2d", Conv2d},
      {"linear", Linear}, {"interpolate", Interpolate},
      {"autogradGrad", AutogradGrad}, {"setGradEnabled", SetGradEnabled}, {"isGradEnabled", IsGradEnabled},
      {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
      {"cpuCache", CpuCache}, {"emptyCache", EmptyCache}, {"setCpuCacheLimit", SetCpuCacheLimit}, {"releaseFreeMemory", ReleaseFreeMemory},
      {"cpuMemoryStats", CpuMemoryStats}, {"resetCpuPeakMemoryStats", ResetCpuPeakMemoryStats},
      {"cudaIsAvailable", CudaIsAvailable}, {"cudaDeviceCount", CudaDeviceCount},
      {"cudaGraphStats", CudaGraphStats},
      {"memory", Memory}, {"startScope", StartScope}, {"endScope", EndScope},
  };
  for (const auto& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
}

}  // namespace gd::js
