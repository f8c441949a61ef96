// Tensor.prototype math: elementwise, reductions, shape and indexing, each one LibTorch call.
#include "js/common.h"
#include "js/tensor_wrap.h"

namespace gd::js {

namespace {

// Sizes given either as one array or as separate arguments: view([2, 3]) or view(2, 3).
std::vector<int64_t> VarDims(const Napi::CallbackInfo& info, const char* name, size_t from = 0) {
  if (info.Length() > from && info[from].IsArray()) return ToDims(info[from], name);
  std::vector<int64_t> out;
  for (size_t i = from; i < info.Length(); i++) {
    if (IsMissing(info[i])) break;
    out.push_back(ToInt(info[i], name));
  }
  return out;
}

bool KeepDim(const Napi::Value& v) { return IsMissing(v) ? false : ToBool(v, "keepdim"); }

#define GD_UNARY(NAME, EXPR)                                \
  Napi::Value NAME(const Napi::CallbackInfo& info) {        \
    GD_GUARD(info.Env(), {                                  \
      const at::Tensor& t = ThisTensor(info);                     \
      return TensorWrap::Wrap(info.Env(), EXPR);            \
    })                                                      \
  }

GD_UNARY(Neg, t.neg())
GD_UNARY(Exp, t.exp())
GD_UNARY(Log, t.log())
GD_UNARY(Sqrt, t.sqrt())
GD_UNARY(Rsqrt, t.rsqrt())
GD_UNARY(Abs, t.abs())
GD_UNARY(Sin, t.sin())
GD_UNARY(Cos, t.cos())
GD_UNARY(Tanh, t.tanh())
GD_UNARY(Sigmoid, t.sigmoid())
GD_UNARY(Relu, t.relu())
GD_UNARY(Silu, at::silu(t))
GD_UNARY(Square, t.square())
GD_UNARY(Floor, t.floor())
GD_UNARY(Round, t.round())
GD_UNARY(Sign, t.sign())
GD_UNARY(IsFinite, t.isfinite())
GD_UNARY(IsNan, t.isnan())
GD_UNARY(LogicalNot, t.logical_not())
GD_UNARY(Contiguous, t.contiguous())
GD_UNARY(T, t.t())

#define GD_BINARY(NAME, METHOD)                                                          \
  Napi::Value NAME(const Napi::CallbackInfo& info) {                                     \
    GD_GUARD(info.Env(), {                                                               \
      const at::Tensor& t = ThisTensor(info);                                                  \
      Operand o = ToOperand(info[0], "other");                                           \
      return TensorWrap::Wrap(info.Env(), o.is_tensor ? t.METHOD(o.tensor) : t.METHOD(o.scalar)); \
    })                                                                                   \
  }

GD_BINARY(Add, add)
GD_BINARY(Sub, sub)
GD_BINARY(Mul, mul)
GD_BINARY(Div, div)
GD_BINARY(Pow, pow)
GD_BINARY(Remainder, remainder)
GD_BINARY(Eq, eq)
GD_BINARY(Ne, ne)
GD_BINARY(Lt, lt)
GD_BINARY(Le, le)
GD_BINARY(Gt, gt)
GD_BINARY(Ge, ge)

Napi::Value Maximum(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    return TensorWrap::Wrap(info.Env(), at::maximum(t, OperandTensor(ToOperand(info[0], "other"), t)));
  })
}

Napi::Value Minimum(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    return TensorWrap::Wrap(info.Env(), at::minimum(t, OperandTensor(ToOperand(info[0], "other"), t)));
  })
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).matmul(TensorWrap::From(info[0], "other"))); })
}

// x.where(condition, other): x where condition holds, else other (as PyTorch's Tensor.where).
Napi::Value Where(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    const at::Tensor& cond = TensorWrap::From(info[0], "condition");
    return TensorWrap::Wrap(info.Env(), at::where(cond, t, OperandTensor(ToOperand(info[1], "other"), t)));
  })
}

Napi::Value Clamp(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::optional<at::Scalar> lo, hi;
    if (!IsMissing(info[0])) lo = ToScalar(info[0], "min");
    if (!IsMissing(info[1])) hi = ToScalar(info[1], "max");
    if (!lo && !hi) ThrowType(info.Env(), "clamp() needs at least one of min and max");
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).clamp(lo, hi));
  })
}

#define GD_REDUCE(NAME, ALL, DIMS)                                         \
  Napi::Value NAME(const Napi::CallbackInfo& info) {                       \
    GD_GUARD(info.Env(), {                                                 \
      const at::Tensor& t = ThisTensor(info);                                    \
      if (IsMissing(info[0])) return TensorWrap::Wrap(info.Env(), ALL);    \
      std::vector<int64_t> dims = ToDims(info[0], "dim");                  \
      bool keepdim = KeepDim(info[1]);                                     \
      return TensorWrap::Wrap(info.Env(), DIMS);                           \
    })                                                                     \
  }

GD_REDUCE(Sum, t.sum(), t.sum(dims, keepdim))
GD_REDUCE(Mean, t.mean(), t.mean(dims, keepdim))
GD_REDUCE(Amax, t.amax(), t.amax(dims, keepdim))
GD_REDUCE(Amin, t.amin(), t.amin(dims, keepdim))
GD_REDUCE(All, t.all(), t.all(dims, keepdim))
GD_REDUCE(Any, t.any(), t.any(dims, keepdim))
GD_REDUCE(Logsumexp, t.logsumexp(at::IntArrayRef{}, false), t.logsumexp(dims, keepdim))

int64_t OneDim(const Napi::Value& v) {
  auto dims = ToDims(v, "dim");
  if (dims.size() != 1) ThrowType(v.Env(), "Expected a single dim but received " + std::to_string(dims.size()));
  return dims[0];
}

// max(dim?, keepdim?) -> values (use argmax for indices)
Napi::Value Max(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    if (IsMissing(info[0])) return TensorWrap::Wrap(info.Env(), t.max());
    return TensorWrap::Wrap(info.Env(), std::get<0>(t.max(OneDim(info[0]), KeepDim(info[1]))));
  })
}

Napi::Value Min(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    if (IsMissing(info[0])) return TensorWrap::Wrap(info.Env(), t.min());
    return TensorWrap::Wrap(info.Env(), std::get<0>(t.min(OneDim(info[0]), KeepDim(info[1]))));
  })
}

Napi::Value Argmax(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    std::optional<int64_t> dim;
    if (!IsMissing(info[0])) dim = OneDim(info[0]);
    return TensorWrap::Wrap(info.Env(), t.argmax(dim, KeepDim(info[1])));
  })
}

Napi::Value Argmin(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    std::optional<int64_t> dim;
    if (!IsMissing(info[0])) dim = OneDim(info[0]);
    return TensorWrap::Wrap(info.Env(), t.argmin(dim, KeepDim(info[1])));
  })
}

// std/var(dim?, keepdim?, correction = 1): Bessel-corrected by default, as PyTorch.
#define GD_MOMENT(NAME, FN)                                                       \
  Napi::Value NAME(const Napi::CallbackInfo& info) {                              \
    GD_GUARD(info.Env(), {                                                        \
      const at::Tensor& t = ThisTensor(info);                                           \
      std::optional<at::IntArrayRef> dims;                                        \
      std::vector<int64_t> d;                                                     \
      if (!IsMissing(info[0])) {                                                  \
        d = ToDims(info[0], "dim");                                               \
        dims = at::IntArrayRef(d);                                                \
      }                                                                           \
      double corr = IsMissing(info[2]) ? 1.0 : ToNumber(info[2], "correction");   \
      return TensorWrap::Wrap(info.Env(), at::FN(t, dims, at::Scalar(corr), KeepDim(info[1]))); \
    })                                                                            \
  }

GD_MOMENT(Std, std)
GD_MOMENT(Var, var)

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).softmax(ToInt(info[0], "dim"))); })
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).log_softmax(ToInt(info[0], "dim"))); })
}

Napi::Value View(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).view(VarDims(info, "shape"))); })
}

Napi::Value Reshape(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).reshape(VarDims(info, "shape"))); })
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).permute(VarDims(info, "dims"))); })
}

Napi::Value Expand(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).expand(VarDims(info, "shape"))); })
}

Napi::Value Repeat(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).repeat(VarDims(info, "repeats"))); })
}

Napi::Value Transpose(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).transpose(ToInt(info[0], "dim0"), ToInt(info[1], "dim1")));
  })
}

Napi::Value Flatten(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t start = IsMissing(info[0]) ? 0 : ToInt(info[0], "startDim");
    int64_t end = IsMissing(info[1]) ? -1 : ToInt(info[1], "endDim");
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).flatten(start, end));
  })
}

Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    if (IsMissing(info[0])) return TensorWrap::Wrap(info.Env(), t.squeeze());
    return TensorWrap::Wrap(info.Env(), t.squeeze(ToInt(info[0], "dim")));
  })
}

Napi::Value Unsqueeze(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), { return TensorWrap::Wrap(info.Env(), ThisTensor(info).unsqueeze(ToInt(info[0], "dim"))); })
}

Napi::Value Chunk(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    int64_t chunks = ToInt(info[0], "chunks");
    if (chunks <= 0) ThrowRange(info.Env(), "Expected positive integer for chunks but received " + Describe(info[0]));
    int64_t dim = IsMissing(info[1]) ? 0 : ToInt(info[1], "dim");
    return WrapList(info.Env(), ThisTensor(info).chunk(chunks, dim));
  })
}

// split(size | sizes[], dim = 0)
Napi::Value Split(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    const at::Tensor& t = ThisTensor(info);
    int64_t dim = IsMissing(info[1]) ? 0 : ToInt(info[1], "dim");
    if (info[0].IsArray()) return WrapList(info.Env(), t.split_with_sizes(ToShape(info[0], "sizes"), dim));
    int64_t size = ToInt(info[0], "splitSize");
    if (size <= 0) ThrowRange(info.Env(), "Expected positive integer for splitSize but received " + Describe(info[0]));
    return WrapList(info.Env(), t.split(size, dim));
  })
}

Napi::Value Narrow(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).narrow(ToInt(info[0], "dim"), ToInt(info[1], "start"),
                                                          ToNonNegativeInt(info[2], "length")));
  })
}

// slice(dim, start?, end?, step = 1), like x[:, start:end:step]
Napi::Value Slice(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    std::optional<int64_t> start, end;
    if (!IsMissing(info[1])) start = ToInt(info[1], "start");
    if (!IsMissing(info[2])) end = ToInt(info[2], "end");
    int64_t step = IsMissing(info[3]) ? 1 : ToInt(info[3], "step");
    if (step <= 0) ThrowRange(info.Env(), "Expected positive integer for step but received " + Describe(info[3]));
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).slice(ToInt(info[0], "dim"), start, end, step));
  })
}

// select(dim, index), like x[:, i]
Napi::Value Select(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).select(ToInt(info[0], "dim"), ToInt(info[1], "index")));
  })
}

Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).index_select(ToInt(info[0], "dim"), TensorWrap::From(info[1], "index")));
  })
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).gather(ToInt(info[0], "dim"), TensorWrap::From(info[1], "index")));
  })
}

// index([i0, i1, ...]): advanced indexing with integer (or boolean) tensors, one per leading
// dim; null skips a dim. x.index([torch.arange(B), y]) is Python's x[range(B), y].
Napi::Value Index(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    if (!info[0].IsArray()) ThrowType(info.Env(), "Expected an array of index tensors for indices but received " + Describe(info[0]));
    auto arr = info[0].As<Napi::Array>();
    c10::List<std::optional<at::Tensor>> indices;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      std::string name = "indices[" + std::to_string(i) + "]";
      if (IsMissing(v)) {
        indices.push_back(std::nullopt);
      } else {
        indices.push_back(TensorWrap::From(v, name.c_str()));
      }
    }
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).index(indices));
  })
}

Napi::Value MaskedFill(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    return TensorWrap::Wrap(info.Env(), ThisTensor(info).masked_fill(TensorWrap::From(info[0], "mask"), ToScalar(info[1], "value")));
  })
}

}  // namespace

void InstallTensorOps(Napi::Env env, Napi::Object p) {
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Entry entries[] = {
      {"neg", Neg}, {"exp", Exp}, {"log", Log}, {"sqrt", Sqrt}, {"rsqrt", Rsqrt}, {"abs", Abs}, {"sin", Sin},
      {"cos", Cos}, {"tanh", Tanh}, {"sigmoid", Sigmoid}, {"relu", Relu}, {"silu", Silu}, {"square", Square},
      {"floor", Floor}, {"round", Round}, {"sign", Sign}, {"isfinite", IsFinite}, {"isnan", IsNan},
      {"logicalNot", LogicalNot}, {"contiguous", Contiguous}, {"t", T},
      {"add", Add}, {"sub", Sub}, {"mul", Mul}, {"div", Div}, {"pow", Pow}, {"remainder", Remainder},
      {"eq", Eq}, {"ne", Ne}, {"lt", Lt}, {"le", Le}, {"gt", Gt}, {"ge", Ge},
      {"maximum", Maximum}, {"minimum", Minimum}, {"matmul", Matmul}, {"where", Where}, {"clamp", Clamp},
      {"sum", Sum}, {"mean", Mean}, {"amax", Amax}, {"amin", Amin}, {"all", All}, {"any", Any},
      {"logsumexp", Logsumexp}, {"max", Max}, {"min", Min}, {"argmax", Argmax}, {"argmin", Argmin},
      {"std", Std}, {"var", Var}, {"softmax", Softmax}, {"logSoftmax", LogSoftmax},
      {"view", View}, {"reshape", Reshape}, {"permute", Permute}, {"expand", Expand}, {"repeat", Repeat},
      {"transpose", Transpose}, {"flatten", Flatten}, {"squeeze", Squeeze}, {"unsqueeze", Unsqueeze},
      {"chunk", Chunk}, {"split", Split}, {"narrow", Narrow}, {"slice", Slice}, {"select", Select},
      {"indexSelect", IndexSelect}, {"gather", Gather}, {"index", Index}, {"maskedFill", MaskedFill},
  };
  for (const auto& e : entries) SetMethod(env, p, e.name, e.fn);
}

}  // namespace gd::js
