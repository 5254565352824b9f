// activation.cpp: the backward loops of activation.h, and the chunking over threads around them.
#include "tensor/kernels/activation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "tensor/kernels/kernels.h"
#include "tensor/kernels/simd.h"
#include "tensor/parallel.h"

namespace heed::kernels {

template <class T>
void relu_backward_row(const T* dout, const T* x, T* dx, int64_t n, T slope) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dout[i] : dout[i] * slope;  // vectorised by the compiler
}

// One element at a time with the scalar erf and exp of simd.h's references.
template <class T>
void gelu_backward_ref(const T* dout, const T* x, T* dx, int64_t n) {
  const T inv_sqrt2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2);
  for (int64_t i = 0; i < n; i++) {
    T u = x[i] * T(M_SQRT1_2), e = T(-0.5) * x[i] * x[i];
    simd::unary_ref<T>(simd::Unary::Erf, &u, 1, &u, 1, 1, {});
    simd::unary_ref<T>(simd::Unary::Exp, &e, 1, &e, 1, 1, {});
    dx[i] = dout[i] * (T(0.5) * (T(1) + u) + x[i] * (e * inv_sqrt2pi));
  }
}

// The arguments of erf and exp for 512 elements into two arrays that stay in L1, one SIMD call for each,
// then the products.
template <class T>
void gelu_backward_simd(const T* dout, const T* x, T* dx, int64_t n) {
  constexpr int64_t kRow = 512;
  T u[kRow], e[kRow];
  const T inv_sqrt2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2);
  for (int64_t i0 = 0; i0 < n; i0 += kRow) {
    const int64_t m = std::min(kRow, n - i0);
    const T* xi = x + i0;
    for (int64_t k = 0; k < m; k++) {
      u[k] = xi[k] * T(M_SQRT1_2);
      e[k] = T(-0.5) * xi[k] * xi[k];
    }
    simd::unary_simd<T>(simd::Unary::Erf, u, u, m, {});
    simd::unary_simd<T>(simd::Unary::Exp, e, e, m, {});
    for (int64_t k = 0; k < m; k++) dx[i0 + k] = dout[i0 + k] * (T(0.5) * (T(1) + u[k]) + xi[k] * (e[k] * inv_sqrt2pi));
  }
}

// The same from the forward's output y = x Φ(x): Φ(x) = y / x, so only exp is left to compute. y carries
// at most a few ulp of relative error, and so does y / x. Near 0 (and at 0, where y / x is 0/0) y may
// have lost bits to the subnormal range; there Φ(x) = 1/2 to far better than the working precision.
// For x << 0, y underflows to 0 and so does the gradient, as it should. At x = ±inf both forms give NaN,
// as PyTorch's does (inf · 0).
template <class T>
void gelu_backward_from_output_simd(const T* dout, const T* x, const T* y, T* dx, int64_t n) {
  constexpr int64_t kRow = 512;
  T e[kRow];
  const T inv_sqrt2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2), tiny = T(0x1p-60);
  for (int64_t i0 = 0; i0 < n; i0 += kRow) {
    const int64_t m = std::min(kRow, n - i0);
    const T* xi = x + i0;
    const T* yi = y + i0;
    for (int64_t k = 0; k < m; k++) e[k] = T(-0.5) * xi[k] * xi[k];
    simd::unary_simd<T>(simd::Unary::Exp, e, e, m, {});
    for (int64_t k = 0; k < m; k++) {
      const T cdf = std::fabs(xi[k]) < tiny ? T(0.5) : yi[k] / xi[k];
      dx[i0 + k] = dout[i0 + k] * (cdf + xi[k] * (e[k] * inv_sqrt2pi));
    }
  }
}

template void relu_backward_row<float>(const float*, const float*, float*, int64_t, float);
template void relu_backward_row<double>(const double*, const double*, double*, int64_t, double);
template void gelu_backward_ref<float>(const float*, const float*, float*, int64_t);
template void gelu_backward_ref<double>(const double*, const double*, double*, int64_t);
template void gelu_backward_simd<float>(const float*, const float*, float*, int64_t);
template void gelu_backward_simd<double>(const double*, const double*, double*, int64_t);
template void gelu_backward_from_output_simd<float>(const float*, const float*, const float*, float*, int64_t);
template void gelu_backward_from_output_simd<double>(const double*, const double*, const double*, double*, int64_t);

// f(dout, x, out, dx, n) over contiguous copies of dout, x and the forward's output (out: null when
// not given), in chunks over threads when the tensor is big.
template <class F>
static Tensor backward_rows(const char* name, const Tensor& dout, const Tensor& x_in, const Tensor& out_in, F f) {
  const bool with_out = out_in.defined();
  if (dout.shape() != x_in.shape() || dout.dtype() != x_in.dtype() || !is_floating(x_in.dtype()) ||
      (with_out && (out_in.shape() != x_in.shape() || out_in.dtype() != x_in.dtype())))
    throw Error(std::string(name) + " backward: dout " + shape_str(dout.shape()) + " " + dtype_name(dout.dtype()) +
                " and x " + shape_str(x_in.shape()) + " " + dtype_name(x_in.dtype()) +
                (with_out ? " and out " + shape_str(out_in.shape()) + " " + dtype_name(out_in.dtype()) : "") +
                " must be floating tensors of one shape and dtype");
  Tensor d = dout.contiguous(), x = x_in.contiguous(), dx = empty(x.shape(), x.dtype());
  Tensor out = with_out ? out_in.contiguous() : Tensor();
  dispatch_floating(x.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    constexpr int64_t kChunk = 16384;
    const T* dp = d.data_ptr<T>();
    const T* xp = x.data_ptr<T>();
    const T* op = with_out ? out.data_ptr<T>() : nullptr;
    T* yp = dx.data_ptr<T>();
    const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 2) num_threads(parallel_threads())
    for (int64_t c = 0; c < chunks; c++) {
      const int64_t lo = c * kChunk;
      f(dp + lo, xp + lo, op ? op + lo : nullptr, yp + lo, std::min(kChunk, n - lo));
    }
  });
  return dx;
}

Tensor relu_backward(const Tensor& dout, const Tensor& x, double slope) {
  return backward_rows("relu", dout, x, Tensor(), [slope](const auto* dp, const auto* xp, const auto*, auto* yp,
                                                           int64_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(dp)>>;
    relu_backward_row<T>(dp, xp, yp, n, (T)slope);
  });
}

Tensor gelu_backward(const Tensor& dout, const Tensor& x, const Tensor& out) {
  const bool fast = use_simd();
  return backward_rows("gelu", dout, x, out, [fast](const auto* dp, const auto* xp, const auto* op, auto* yp,
                                                   int64_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(dp)>>;
    if (!fast) gelu_backward_ref<T>(dp, xp, yp, n);
    else if (op) gelu_backward_from_output_simd<T>(dp, xp, op, yp, n);
    else gelu_backward_simd<T>(dp, xp, yp, n);
  });
}

}  // namespace heed::kernels
