// simd.h: the inner loops of heed's elementwise ops and reductions, one 1-D row at a time.
//
// The tensor layer (tensor/kernels/kernels.cpp) walks shapes, broadcasting and strides with an N-d iterator and
// hands each innermost row to a function below. Every kernel comes in two levels, side by side:
//
//   *_ref   plain scalar loops that take any stride. They are the definition of the op, the yardstick the
//           fast path is tested against (tests/tensor/test_simd.cpp), and the fallback for strided rows.
//   *_simd  the same op on contiguous rows with xsimd batches (16 floats per instruction with AVX-512).
//
// Templates on T are instantiated for float and double in simd.cpp.
//
// Accuracy. Exact IEEE operations (add, mul, div, sqrt, max, ...) give bit-identical results at both
// levels. For transcendental functions the reference computes in a wider type (double for float, long
// double for double) with std:: and rounds once, so it is within about half an ulp of the true value; the
// SIMD versions are measured against it on 10^6 points each and are within 4 ulp (simd.cpp has the table).
//
// NaN and Inf follow std:: and PyTorch: Relu, Maximum, Minimum, Clamp, max() and softmax propagate NaN.
// Two deliberate choices differ from PyTorch, both documented where they are made:
//   - Sign(NaN) is NaN (as in NumPy); PyTorch returns 0 (pytorch/pytorch#41245).
//   - softmax of a row that is entirely -inf (a fully masked attention row) is all zeros, and log-softmax
//     is all -inf (log 0), instead of PyTorch's NaN. The attention layer relies on this.
#pragma once
#include <cstdint>
#include <vector>

namespace heed::simd {

// ---- elementwise: one input ------------------------------------------------------------------------

/// The enumerators keep their default values 0, 1, 2, ...: all_unary() walks them in that order.
enum class Unary {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Tanh, Sigmoid, Relu, LeakyRelu, Elu, GeluTanh, GeluErf, Silu,
  Softplus, Erf, Pow, Clamp, Square, Reciprocal
};

/// The scalar parameters of the ops that have them. Pow: a = exponent. Clamp: [a, b]. LeakyRelu: a = slope.
/// Elu: a = alpha.
struct UnaryArgs {
  double a = 0, b = 0;
};

/// "exp", "gelu_erf", ...: for error messages and benchmark names; "?" for a value that is no Unary.
const char* unary_name(Unary op);
/// Every Unary, in declaration order. It is read off unary_name, whose switch must name every enumerator
/// (simd.cpp makes a missing case a compile error), so the tests that sweep it (tests/tensor/kernels/)
/// check a new op against its reference the day it is added, with no list to update.
const std::vector<Unary>& all_unary();

/// y[i*sy] = f(x[i*sx]) for i < n. Any strides; y may be x.
template <class T> void unary_ref(Unary op, const T* x, int64_t sx, T* y, int64_t sy, int64_t n, UnaryArgs args);
/// The same on contiguous x and y. y == x is allowed (in place); other overlaps are not.
template <class T> void unary_simd(Unary op, const T* x, T* y, int64_t n, UnaryArgs args);

// ---- elementwise: two inputs -----------------------------------------------------------------------

/// Maximum and Minimum propagate NaN like torch.maximum; Pow follows std::pow. Default values 0, 1, 2, ...
enum class Binary { Add, Sub, Mul, Div, Pow, Maximum, Minimum };

/// "add", "maximum", ...; "?" for a value that is no Binary.
const char* binary_name(Binary op);
/// Every Binary, in declaration order, read off binary_name as all_unary() is off unary_name.
const std::vector<Binary>& all_binary();

/// y[i*sy] = a[i*sa] op b[i*sb]. A stride of 0 broadcasts one value along the row.
template <class T>
void binary_ref(Binary op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t sy, int64_t n);
/// Contiguous y; sa and sb are each 0 or 1 ("row op row", "row op scalar", "scalar op row"). y may be a or b.
template <class T> void binary_simd(Binary op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n);

// ---- reductions of one row -------------------------------------------------------------------------

/// Sum in a fixed order that depends only on n (64 interleaved partial sums per block of 4096 elements,
/// blocks combined pairwise), so the result never depends on thread count. sum_ref and sum_simd use the
/// same order and agree bit for bit. The sum of an empty row is 0.
template <class T> T sum_ref(const T* x, int64_t sx, int64_t n);
template <class T> T sum_simd(const T* x, int64_t n);
/// Largest element; NaN if any element is NaN (like torch.max). n must be > 0.
template <class T> T max_ref(const T* x, int64_t sx, int64_t n);
template <class T> T max_simd(const T* x, int64_t n);
/// acc[j] += x[j*sx] for j < n: column sums, when a non-last dim is reduced one row at a time.
template <class T> void accumulate_ref(T* acc, const T* x, int64_t sx, int64_t n);
template <class T> void accumulate_simd(T* acc, const T* x, int64_t n);

// ---- fused softmax of one contiguous row ----------------------------------------------------------

/// y = exp(x - max) / sum(exp(x - max)), or with log = true, y = x - max - log(sum(exp(x - max))).
/// y may be x. -inf entries (masked) get 0 (log: -inf). A row that is all -inf gives all 0 (log: all -inf).
template <class T> void softmax_row_ref(const T* x, T* y, int64_t n, bool log);
template <class T> void softmax_row_simd(const T* x, T* y, int64_t n, bool log);

}  // namespace heed::simd
