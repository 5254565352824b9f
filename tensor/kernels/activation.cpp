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

template void relu_backward_row<float>(const float*, const float*, float*, int64_t, float);
template void relu_backward_row<double>(const double*, const double*, double*, int64_t, double);
template void gelu_backward_ref<float>(const float*, const float*, float*, int64_t);
template void gelu_backward_ref<double>(const double*, const double*, double*, int64_t);
template void gelu_backward_simd<float>(const float*, const float*, float*, int64_t);
template void gelu_backward_simd<double>(const double*, const double*, double*, int64_t);

// f(dout, x, dx, n) over contiguous copies of dout and x, in chunks over threads when the tensor is big.
template <class F>
static Tensor backward_rows(const char* name, const Tensor& dout, const Tensor& x_in, F f) {
  if (dout.shape() != x_in.shape() || dout.dtype() != x_in.dtype() || !is_floating(x_in.dtype()))
    throw Error(std::string(name) + " backward: dout " + shape_str(dout.shape()) + " " + dtype_name(dout.dtype()) +
                " and x " + shape_str(x_in.shape()) + " " + dtype_name(x_in.dtype()) +
                " must be floating tensors of one shape and dtype");
  Tensor d = dout.contiguous(), x = x_in.contiguous(), dx = empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    constexpr int64_t kChunk = 16384;
    const T* dp = d.data_ptr<T>();
    const T* xp = x.data_ptr<T>();
    T* yp = dx.data_ptr<T>();
    const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 2) num_threads(parallel_threads())
    for (int64_t c = 0; c < chunks; c++) {
      const int64_t lo = c * kChunk;
      f(dp + lo, xp + lo, yp + lo, std::min(kChunk, n - lo));
    }
  });
  return dx;
}

Tensor relu_backward(const Tensor& dout, const Tensor& x, double slope) {
  return backward_rows("relu", dout, x, [slope](const auto* dp, const auto* xp, auto* yp, int64_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(dp)>>;
    relu_backward_row<T>(dp, xp, yp, n, (T)slope);
  });
}

Tensor gelu_backward(const Tensor& dout, const Tensor& x) {
  const bool fast = use_simd();
  return backward_rows("gelu", dout, x, [fast](const auto* dp, const auto* xp, auto* yp, int64_t n) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(dp)>>;
    if (fast) gelu_backward_simd<T>(dp, xp, yp, n);
    else gelu_backward_ref<T>(dp, xp, yp, n);
  });
}

}  // namespace heed::kernels
