// promote.cpp: PyTorch's type promotion, and the elementwise kernels of integer and bool tensors.
//
// `labels * 7 + 3` must give int64 and `idx * 2.0` float32, as in PyTorch. The rule (torch.result_type):
//   - dtypes are ordered by category, bool < integer < floating, and within floating float32 < float64;
//   - the tensors with at least one dim decide first: the highest of their dtypes;
//   - a 0-d tensor (and a C++ number, which becomes one: see the operators in tensor.h) only counts when
//     its category is higher: float32 (B,T) * float64 0-d stays float32, int64 (B) * float32 0-d is float32.
// True division (div) of integers gives float32, as `/` does in Python 3; floor_divide and remainder keep
// integers integral. The float kernels stay in kernels.cpp (SIMD); integers and bools take the plain
// loops below: labels and indices are small, and these loops are the reference.
#include <cmath>

#include "tensor/kernels/kernels.h"

namespace heed {

static int category(DType t) { return t == DType::Bool ? 0 : t == DType::Int64 ? 1 : 2; }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (category(a) != category(b)) return category(a) > category(b) ? a : b;
  return DType::Float64;  // the only same-category pair that differs: float32 and float64
}

DType result_type(const Tensor& a, const Tensor& b) {
  bool a0 = a.dim() == 0, b0 = b.dim() == 0;
  if (a0 == b0) return promote_types(a.dtype(), b.dtype());
  const Tensor& dimmed = a0 ? b : a;
  const Tensor& zero_d = a0 ? a : b;
  return category(zero_d.dtype()) > category(dimmed.dtype()) ? zero_d.dtype() : dimmed.dtype();
}

Tensor wrap_scalar(const Tensor& like, double v) {
  return scalar_tensor(v, is_floating(like.dtype()) ? like.dtype() : float32);  // Python's default dtype
}

Tensor wrap_scalar_int(const Tensor& like, int64_t v) {
  DType dt = like.dtype() == DType::Bool ? DType::Int64 : like.dtype();
  Tensor t = empty({}, dt);
  dispatch_all(dt, [&](auto zero) { *t.data_ptr<decltype(zero)>() = static_cast<decltype(zero)>(v); });
  return t;
}

}  // namespace heed

namespace heed::kernels {

// Both operands broadcast to the result's shape and converted to `dt`, as contiguous buffers. The copies
// cost a pass each; integer tensors are labels and indices, rarely large.
static std::pair<Tensor, Tensor> operands(const char* name, const Tensor& a, const Tensor& b, DType dt, Shape& out) {
  out = broadcast_shapes(name, a.shape(), b.shape());
  Tensor ab = empty(out, dt), bb = empty(out, dt);
  copy_(ab, a);
  copy_(bb, b);
  return {ab, bb};
}

// Python's floor division and remainder: the quotient rounds toward -inf and the remainder takes the
// divisor's sign (-7 // 2 = -4, -7 % 2 = 1), unlike C++'s / and % (which truncate: -3 and -1).
static int64_t floor_div_int(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static int64_t rem_int(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

template <class T, class F>
static Tensor loop(const Tensor& a, const Tensor& b, const Shape& out, DType dt, F f) {
  Tensor y = empty(out, dt);
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  for (int64_t i = 0, n = y.numel(); i < n; i++) yp[i] = f(ap[i], bp[i]);
  return y;
}

static std::string operands_str(const Tensor& a, const Tensor& b) {
  return std::string(dtype_name(a.dtype())) + " " + shape_str(a.shape()) + " and " + dtype_name(b.dtype()) + " " +
         shape_str(b.shape());
}

Tensor binary_integral(const char* name, simd::Binary op, const Tensor& a, const Tensor& b, DType dt) {
  using B = simd::Binary;
  if (dt == DType::Bool) {
    // bool op bool as PyTorch: + is or, * is and, max/min are or/and; - is refused.
    if (op == B::Sub)
      throw Error(std::string(name) + ": subtraction of bool tensors (" + operands_str(a, b) +
                  ") is not supported, as in PyTorch; use logical_xor, or logical_not to invert a mask");
    if (op == B::Add || op == B::Maximum) return logical(name, Logical::Or, a, b);
    if (op == B::Mul || op == B::Minimum) return logical(name, Logical::And, a, b);
    return cast(binary_integral(name, op, a, b, DType::Int64), DType::Bool);
  }
  if (op == B::Sub && (a.dtype() == DType::Bool || b.dtype() == DType::Bool))
    throw Error(std::string(name) + ": subtraction with a bool tensor (" + operands_str(a, b) +
                ") is not supported, as in PyTorch; convert it with .to(int64) first");
  Shape out;
  auto [x, y] = operands(name, a, b, dt, out);
  switch (op) {
    case B::Add: return loop<int64_t>(x, y, out, dt, [](int64_t p, int64_t q) { return p + q; });
    case B::Sub: return loop<int64_t>(x, y, out, dt, [](int64_t p, int64_t q) { return p - q; });
    case B::Mul: return loop<int64_t>(x, y, out, dt, [](int64_t p, int64_t q) { return p * q; });
    case B::Maximum: return loop<int64_t>(x, y, out, dt, [](int64_t p, int64_t q) { return p > q ? p : q; });
    case B::Minimum: return loop<int64_t>(x, y, out, dt, [](int64_t p, int64_t q) { return p < q ? p : q; });
    case B::Pow:
      return loop<int64_t>(x, y, out, dt, [name](int64_t p, int64_t q) {
        if (q < 0) throw Error(std::string(name) + ": integers to negative integer powers are not allowed (" +
                               std::to_string(p) + " ** " + std::to_string(q) + ")");
        uint64_t r = 1, base = (uint64_t)p;  // wraps on overflow as PyTorch's int64 does, without UB
        for (; q > 0; q >>= 1, base *= base)
          if (q & 1) r *= base;
        return (int64_t)r;
      });
    case B::Div: break;
  }
  throw Error(std::string(name) + ": true division of integers gives float32; this kernel has no integer division");
}

Tensor floor_divide(const Tensor& a, const Tensor& b, bool remainder) {
  const char* name = remainder ? "remainder" : "floor_divide";
  DType dt = result_type(a, b);
  if (dt == DType::Bool)
    throw Error(std::string(name) + ": bool tensors are refused (" + operands_str(a, b) + "), as PyTorch refuses them");
  Shape out;
  // Plain variables, not a structured binding: the lambda below captures them, which clang before 16 refuses.
  const std::pair<Tensor, Tensor> xy = operands(name, a, b, dt, out);
  const Tensor& x = xy.first;
  const Tensor& y = xy.second;
  if (dt == DType::Int64) {
    for (int64_t q : y.to_vector<int64_t>())
      if (q == 0) throw Error(std::string(name) + ": integer division by zero (" + operands_str(a, b) + ")");
    if (remainder) return loop<int64_t>(x, y, out, dt, rem_int);
    return loop<int64_t>(x, y, out, dt, floor_div_int);
  }
  return dispatch_floating(dt, name, [&](auto zero) {
    using T = decltype(zero);
    // x - floor(x/y)·y, as torch.remainder (NaN for y = 0); floor_divide is floor(x / y) (±inf for y = 0).
    if (remainder) return loop<T>(x, y, out, dt, [](T p, T q) { return T(p - std::floor(p / q) * q); });
    return loop<T>(x, y, out, dt, [](T p, T q) { return T(std::floor(p / q)); });
  });
}

Tensor unary_integral(simd::Unary op, const Tensor& x) {
  using U = simd::Unary;
  if (x.dtype() == DType::Bool && op == U::Neg)
    throw Error("neg: negation of a bool tensor " + shape_str(x.shape()) +
                " is not supported, as in PyTorch; use logical_not to invert a mask");
  if (op != U::Neg && op != U::Abs && op != U::Sign)
    throw Error(std::string(simd::unary_name(op)) + ": expected a float32 or float64 tensor, got " +
                dtype_name(x.dtype()) + " " + shape_str(x.shape()) + " (convert it with .to(float32))");
  if (x.dtype() == DType::Bool) return cast(x, DType::Bool);  // abs and sign of a bool are itself
  Tensor y = cast(x, DType::Int64);
  int64_t* p = y.data_ptr<int64_t>();
  for (int64_t i = 0, n = y.numel(); i < n; i++)
    p[i] = op == U::Neg ? -p[i] : op == U::Abs ? (p[i] < 0 ? -p[i] : p[i]) : (p[i] > 0) - (p[i] < 0);
  return y;
}

}  // namespace heed::kernels
