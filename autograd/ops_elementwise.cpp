// ops_elementwise.cpp: the elementwise primitives, each forward beside its backward.
//
// Every op reads the same way: compute `out` with a raw kernel (tensor/kernels/kernels.h), then `record` the
// backward closure. The comment above each op gives the math; `d` is dout, the gradient arriving from
// above. Backward closures use heed's own ops, so create_graph can differentiate them again.
//
// Broadcasting and its gradient, the classic stumbling block: if a (3,1) tensor is added to a (3,4)
// tensor, each element of a was used 4 times, so its gradient is the *sum* of the 4 gradients it fed.
// `sum_to_size(d, a.shape())` does exactly that reduction (and is a no-op when nothing was broadcast).
#include <cmath>

#include "autograd/node.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/kernels.h"

namespace heed {

using Grads = std::vector<Tensor>;
using U = simd::Unary;
using B = simd::Binary;

static const bool registered = register_ops({"neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "tanh", "sigmoid",
                                             "relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "softplus",
                                             "erf", "pow_scalar", "clamp", "add", "sub", "mul", "div", "pow",
                                             "maximum", "minimum", "where", "remainder"});

// A constant (not differentiable) 0/1 mask in x's dtype, e.g. (x > 0) for relu's backward.
static Tensor mask_like(const Tensor& m, const Tensor& x) { return kernels::cast(m, x.dtype()); }
static Tensor scalar_like(double v, const Tensor& x) { return scalar_tensor(v, x.dtype()); }

// A plain backward (no graph being recorded) of same-shape float tensors can take one fused
// pass (tensor/kernels/activation.h) where the composite makes several; create_graph takes the composite,
// whose own backward gives the second derivative. tests/autograd/test_engine.cpp checks the two agree.
// A strided d or x (the gradient of a transposed view, say) is copied to contiguous first: one pass more,
// still fewer than the composite's.
static bool fusable(const Tensor& d, const Tensor& x) {
  return !grad_enabled() && d.shape() == x.shape() && d.dtype() == x.dtype() && is_floating(x.dtype());
}

// ---- unary -----------------------------------------------------------------------------------------------
// out = -x;  dx = -d
Tensor neg(const Tensor& x) {
  return record("neg", kernels::unary(U::Neg, x), {x}, [](const Tensor& d, const Tensor&) { return Grads{neg(d)}; });
}

// out = e^x;  dx = d * out
Tensor exp(const Tensor& x) {
  return record("exp", kernels::unary(U::Exp, x), {x},
                [](const Tensor& d, const Tensor& out) { return Grads{d * out}; }, {.save_output = true});
}

// out = ln x;  dx = d / x
Tensor log(const Tensor& x) {
  return record("log", kernels::unary(U::Log, x), {x},
                [sx = SavedTensor(x)](const Tensor& d, const Tensor&) { return Grads{d / sx.get()}; });
}

// out = √x;  dx = d / (2 out)
Tensor sqrt(const Tensor& x) {
  return record("sqrt", kernels::unary(U::Sqrt, x), {x},
                [](const Tensor& d, const Tensor& out) { return Grads{d / (2.0 * out)}; }, {.save_output = true});
}

// out = x^-1/2;  dx = -½ d out³
Tensor rsqrt(const Tensor& x) {
  return record("rsqrt", kernels::unary(U::Rsqrt, x), {x},
                [](const Tensor& d, const Tensor& out) { return Grads{-0.5 * d * out * out * out}; },
                {.save_output = true});
}

// out = |x|;  dx = d sign(x)  (0 at x = 0, as PyTorch)
Tensor abs(const Tensor& x) {
  return record("abs", kernels::unary(U::Abs, x), {x},
                [sx = SavedTensor(x)](const Tensor& d, const Tensor&) { return Grads{d * sign(sx.get())}; });
}

// out = sign(x);  dx = 0 (an undefined gradient means zero)
Tensor sign(const Tensor& x) {
  return record("sign", kernels::unary(U::Sign, x), {x}, [](const Tensor&, const Tensor&) { return Grads{Tensor()}; });
}

// out = tanh x;  dx = d (1 - out²)
Tensor tanh(const Tensor& x) {
  return record("tanh", kernels::unary(U::Tanh, x), {x},
                [](const Tensor& d, const Tensor& out) { return Grads{d * (1.0 - out * out)}; }, {.save_output = true});
}

// out = σ(x) = 1/(1+e^-x);  dx = d out (1 - out)
Tensor sigmoid(const Tensor& x) {
  return record("sigmoid", kernels::unary(U::Sigmoid, x), {x},
                [](const Tensor& d, const Tensor& out) { return Grads{d * out * (1.0 - out)}; }, {.save_output = true});
}

// out = max(x, 0);  dx = d where x > 0, else 0
Tensor relu(const Tensor& x) {
  return record("relu", kernels::unary(U::Relu, x), {x}, [sx = SavedTensor(x)](const Tensor& d, const Tensor&) {
    Tensor x = sx.get();
    if (fusable(d, x)) return Grads{kernels::relu_backward(d, x, 0.0)};  // one pass
    return Grads{d * mask_like(kernels::compare("relu", kernels::Compare::Gt, x, scalar_like(0, x)), x)};
  });
}

// out = x if x > 0 else slope·x;  dx = d · (1 or slope)
Tensor leaky_relu(const Tensor& x, double slope) {
  return record("leaky_relu", kernels::unary(U::LeakyRelu, x, {slope}), {x},
                [sx = SavedTensor(x), slope](const Tensor& d, const Tensor&) {
                  Tensor x = sx.get();
                  if (fusable(d, x)) return Grads{kernels::relu_backward(d, x, slope)};
                  Tensor pos = kernels::compare("leaky_relu", kernels::Compare::Gt, x, scalar_like(0, x));
                  return Grads{d * kernels::where(pos, scalar_like(1, x), scalar_like(slope, x))};
                });
}

// out = x if x > 0 else α(e^x - 1);  dx = d if x > 0 else d (out + α)
Tensor elu(const Tensor& x, double alpha) {
  return record("elu", kernels::unary(U::Elu, x, {alpha}), {x},
                [sx = SavedTensor(x), alpha](const Tensor& d, const Tensor& out) {
                  Tensor x = sx.get();
                  Tensor pos = kernels::compare("elu", kernels::Compare::Gt, x, scalar_like(0, x));
                  return Grads{where(pos, d, d * (out + alpha))};
                },
                {.save_output = true});
}

// exact:  out = x Φ(x), Φ the normal CDF;  dx = d (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2) / √(2π)
// tanh:   out = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³);
//         dx = d (½(1 + t) + ½x(1 - t²) √(2/π)(1 + 3·0.044715x²)),  t = tanh u
Tensor gelu(const Tensor& x, bool tanh_approx) {
  if (tanh_approx)
    return record("gelu_tanh", kernels::unary(U::GeluTanh, x), {x},
                  [sx = SavedTensor(x)](const Tensor& d, const Tensor&) {
                    Tensor x = sx.get();
                    const double k = std::sqrt(2.0 / M_PI), c = 0.044715;
                    Tensor t = tanh(k * (x + c * x * x * x));
                    return Grads{d * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (k * (1.0 + 3.0 * c * x * x)))};
                  });
  // The fused backward takes Φ(x) = out / x from the output instead of computing erf again. The lambda
  // keeps the kernel's result: the output's storage without the graph (no cycle), and no extra memory when
  // the next layer keeps the output for its own backward anyway. Should the output have been modified in
  // place since, which PyTorch allows here, backward computes Φ(x) itself.
  Tensor out = kernels::unary(U::GeluErf, x);
  return record("gelu", out, {x},
                [sx = SavedTensor(x), out, version = out.storage()->version](const Tensor& d, const Tensor&) {
                  Tensor x = sx.get();
                  if (fusable(d, x))  // one pass
                    return Grads{out.storage()->version == version ? kernels::gelu_backward(d, x, out)
                                                                   : kernels::gelu_backward(d, x)};
                  Tensor cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
                  Tensor pdf = exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);  // 1/√(2π)
                  return Grads{d * (cdf + x * pdf)};
                });
}

// out = x σ(x);  dx = d σ(x) (1 + x (1 - σ(x)))
Tensor silu(const Tensor& x) {
  return record("silu", kernels::unary(U::Silu, x), {x}, [sx = SavedTensor(x)](const Tensor& d, const Tensor&) {
    Tensor x = sx.get();
    Tensor s = sigmoid(x);
    return Grads{d * s * (1.0 + x * (1.0 - s))};
  });
}

// out = ln(1 + e^x);  dx = d σ(x)
Tensor softplus(const Tensor& x) {
  return record("softplus", kernels::unary(U::Softplus, x), {x},
                [sx = SavedTensor(x)](const Tensor& d, const Tensor&) { return Grads{d * sigmoid(sx.get())}; });
}

// out = erf x;  dx = d (2/√π) e^(-x²)
Tensor erf(const Tensor& x) {
  return record("erf", kernels::unary(U::Erf, x), {x}, [sx = SavedTensor(x)](const Tensor& d, const Tensor&) {
    Tensor x = sx.get();
    return Grads{d * (M_2_SQRTPI * exp(-(x * x)))};
  });
}

// out = x^p;  dx = d p x^(p-1)
Tensor pow(const Tensor& x, double p) {
  return record("pow_scalar", kernels::unary(U::Pow, x, {p}), {x},
                [sx = SavedTensor(x), p](const Tensor& d, const Tensor&) {
                  if (p == 0) return Grads{Tensor()};
                  Tensor x = sx.get();
                  return Grads{p == 1 ? d : p == 2 ? d * (2.0 * x) : d * (p * pow(x, p - 1))};
                });
}
Tensor square(const Tensor& x) { return pow(x, 2.0); }

// out = min(max(x, lo), hi);  dx = d where lo <= x <= hi, else 0
Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) throw Error("clamp: lo " + std::to_string(lo) + " > hi " + std::to_string(hi));
  return record("clamp", kernels::unary(U::Clamp, x, {lo, hi}), {x},
                [sx = SavedTensor(x), lo, hi](const Tensor& d, const Tensor&) {
                  Tensor x = sx.get();
                  Tensor inside =
                      kernels::logical("clamp", kernels::Logical::And,
                                       kernels::compare("clamp", kernels::Compare::Ge, x, scalar_like(lo, x)),
                                       kernels::compare("clamp", kernels::Compare::Le, x, scalar_like(hi, x)));
                  return Grads{d * mask_like(inside, x)};
                });
}

// ---- binary (broadcasting) ------------------------------------------------------------------------------
// Gradients are computed only for inputs that need them: `x * 2.0` must not spend a full reduction on
// the gradient of the constant 2.
static OpFlags broadcast_flags(const Tensor& a, const Tensor& b, const Tensor& out) {
  return {.reduces_broadcast = a.shape() != out.shape() || b.shape() != out.shape()};
}

// out = a + b;  da = d, db = d  (each summed to its input's shape)
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary("add", B::Add, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  return record("add", out, {a, b}, [sa = a.shape(), sb = b.shape(), ra = a.requires_grad(), rb = b.requires_grad()](
                                        const Tensor& d, const Tensor&) {
    return Grads{ra ? sum_to_size(d, sa) : Tensor(), rb ? sum_to_size(d, sb) : Tensor()};
  }, f);
}

// out = a - b;  da = d, db = -d
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary("sub", B::Sub, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  return record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape(), ra = a.requires_grad(), rb = b.requires_grad()](
                                        const Tensor& d, const Tensor&) {
    return Grads{ra ? sum_to_size(d, sa) : Tensor(), rb ? sum_to_size(neg(d), sb) : Tensor()};
  }, f);
}

// out = a * b;  da = d b, db = d a
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary("mul", B::Mul, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  return record(
      "mul", out, {a, b},
      [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& d,
                                                                                                 const Tensor&) {
        Tensor a = sa.get(), b = sb.get();
        return Grads{ra ? sum_to_size(d * b, a.shape()) : Tensor(), rb ? sum_to_size(d * a, b.shape()) : Tensor()};
      },
      f);
}

// out = a / b;  da = d / b, db = -d a / b²
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary("div", B::Div, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  return record(
      "div", out, {a, b},
      [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& d,
                                                                                                 const Tensor&) {
        Tensor a = sa.get(), b = sb.get();
        return Grads{ra ? sum_to_size(d / b, a.shape()) : Tensor(),
                     rb ? sum_to_size(neg(d * a) / (b * b), b.shape()) : Tensor()};
      },
      f);
}

// out = a^b;  da = d b a^(b-1),  db = d out ln a  (taken as 0 where a <= 0, where ln a is undefined)
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary("pow", B::Pow, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  f.save_output = true;
  return record(
      "pow", out, {a, b},
      [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& d,
                                                                                                 const Tensor& out) {
        Tensor a = sa.get(), b = sb.get();
        Tensor da, db;
        if (ra) da = sum_to_size(d * b * pow(a, b - 1.0), a.shape());
        if (rb) {
          Tensor pos = kernels::compare("pow", kernels::Compare::Gt, a, scalar_like(0, a));
          Tensor safe_a = where(pos, a, ones_like(a));  // ln 1 = 0 where a <= 0
          db = sum_to_size(d * out * log(safe_a), b.shape());
        }
        return Grads{da, db};
      },
      f);
}

// out = max(a, b);  the gradient goes to the larger input, split half and half on ties (as PyTorch)
static Tensor minmax(const char* name, B op, const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary(name, op, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  bool is_max = op == B::Maximum;
  return record(
      name, out, {a, b},
      [sa = SavedTensor(a), sb = SavedTensor(b), is_max, name](const Tensor& d, const Tensor&) {
        Tensor a = sa.get(), b = sb.get();
        Tensor wins = kernels::compare(name, is_max ? kernels::Compare::Gt : kernels::Compare::Lt, a, b);
        Tensor ties = kernels::compare(name, kernels::Compare::Eq, a, b);
        Tensor wa = mask_like(wins, a) + 0.5 * mask_like(ties, a);  // a's share of the gradient: 1, ½ or 0
        return Grads{sum_to_size(d * wa, a.shape()), sum_to_size(d * (1.0 - wa), b.shape())};
      },
      f);
}
Tensor maximum(const Tensor& a, const Tensor& b) { return minmax("maximum", B::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax("minimum", B::Minimum, a, b); }

// ---- comparisons and selection ---------------------------------------------------------------------------
Tensor eq(const Tensor& a, const Tensor& b) { return kernels::compare("eq", kernels::Compare::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return kernels::compare("ne", kernels::Compare::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return kernels::compare("lt", kernels::Compare::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return kernels::compare("le", kernels::Compare::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return kernels::compare("gt", kernels::Compare::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return kernels::compare("ge", kernels::Compare::Ge, a, b); }
Tensor logical_not(const Tensor& m) { return kernels::logical("logical_not", kernels::Logical::Not, m, m); }
Tensor logical_and(const Tensor& a, const Tensor& b) {
  return kernels::logical("logical_and", kernels::Logical::And, a, b);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return kernels::logical("logical_or", kernels::Logical::Or, a, b);
}

// out = cond ? a : b;  da = d where cond, db = d where not cond
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = kernels::where(cond, a, b);
  OpFlags f = broadcast_flags(a, b, out);
  return record(
      "where", out, {a, b},
      [cond, sa = a.shape(), sb = b.shape(), ra = a.requires_grad(), rb = b.requires_grad()](const Tensor& d,
                                                                                             const Tensor&) {
        Tensor zero = scalar_like(0, d);
        return Grads{ra ? sum_to_size(where(cond, d, zero), sa) : Tensor(),
                     rb ? sum_to_size(where(cond, zero, d), sb) : Tensor()};
      },
      f);
}

// Composite: out = mask ? value : x.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, scalar_like(value, x), x);
}

// ---- C++ operators ------------------------------------------------------------------------------------------
// A double becomes a 0-d tensor as a Python float would (wrap_scalar: int64 * 2.0 is float32).
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return add(a, wrap_scalar(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, wrap_scalar(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, wrap_scalar(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, wrap_scalar(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(wrap_scalar(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(wrap_scalar(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(wrap_scalar(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(wrap_scalar(b, a), b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, wrap_scalar(a, b)); }
Tensor operator>(const Tensor& a, double b) { return gt(a, wrap_scalar(a, b)); }

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); i++) {
    if (std::isnan(x[i]) || std::isnan(y[i])) return false;
    if (x[i] == y[i]) continue;  // equal infinities
    if (!(std::fabs(x[i] - y[i]) <= atol + rtol * std::fabs(y[i]))) return false;
  }
  return true;
}

// ---- Python's floor division and remainder, and the comparison operators beside them -----------------------
// Their kernels, and PyTorch's type promotion (which makes `labels * 7 + 3` int64), are in
// tensor/kernels/promote.cpp.

// out = ⌊a / b⌋, rounded toward -inf.  Not differentiable (PyTorch has no derivative for it): a constant.
Tensor floor_divide(const Tensor& a, const Tensor& b) { return kernels::floor_divide(a, b); }

// out = a - ⌊a / b⌋ b  (the sign of b);  da = d,  db = -d ⌊a / b⌋  (the quotient is piecewise constant)
Tensor remainder(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::floor_divide(a, b, /*remainder=*/true);
  OpFlags f{.reduces_broadcast = a.shape() != out.shape() || b.shape() != out.shape()};
  return record("remainder", out, {a, b},
                [sa = SavedTensor(a), sb = SavedTensor(b), ra = a.requires_grad(), rb = b.requires_grad()](
                    const Tensor& d, const Tensor&) {
                  Tensor a = sa.get(), b = sb.get();
                  return Grads{ra ? sum_to_size(d, a.shape()) : Tensor(),
                               rb ? sum_to_size(neg(d * floor_divide(a, b)), b.shape()) : Tensor()};
                },
                f);
}

Tensor operator%(const Tensor& a, const Tensor& b) { return remainder(a, b); }
Tensor operator%(const Tensor& a, double b) { return remainder(a, wrap_scalar(a, b)); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator==(const Tensor& a, double b) { return eq(a, wrap_scalar(a, b)); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, wrap_scalar(a, b)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, wrap_scalar(a, b)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, wrap_scalar(a, b)); }

}  // namespace heed
