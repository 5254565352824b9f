// norm.cpp: the LayerNorm row loops of norm.h and the Tensor-level calls around them.
#include "tensor/kernels/norm.h"

#include <algorithm>
#include <cmath>

#include "tensor/parallel.h"

namespace heed::kernels {

// Below this many elements a loop runs on one thread (as kernels.cpp's kParallelGrain).
constexpr int64_t kParallelGrain = 32768;

// Σ_c f(c) over c = 0..C-1 in double, as 16 running sums (lane k takes c ≡ k mod 16) added together at
// the end. One running sum would be a chain of dependent adds, each waiting for the last (about 4 cycles):
// 16 independent ones vectorise and overlap. The order is fixed, so the result does not depend on the
// compiler or the thread count.
template <class F>
static inline double row_sum(int64_t C, F f) {
  constexpr int64_t kLanes = 16;
  double part[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= C; c += kLanes)
    for (int64_t k = 0; k < kLanes; k++) part[k] += f(c + k);
  for (int64_t k = 0; c < C; c++, k++) part[k] += f(c);
  for (int64_t half = kLanes / 2; half > 0; half /= 2)
    for (int64_t k = 0; k < half; k++) part[k] += part[k + half];
  return part[0];
}

// Each row's statistics in double, then one pass that writes y: three passes over a row that stays in
// cache, instead of the composite's ten passes over the whole tensor.
template <class T>
void layer_norm_forward_rows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t R, int64_t C,
                             double eps) {
#pragma omp parallel for schedule(static) if (R * C >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    const double m = row_sum(C, [&](int64_t c) { return (double)xr[c]; }) / (double)C;
    const double ss = row_sum(C, [&](int64_t c) { return ((double)xr[c] - m) * ((double)xr[c] - m); });
    const T mu = (T)m, rs = (T)(1.0 / std::sqrt(ss / (double)C + eps));
    for (int64_t c = 0; c < C; c++) {
      const T v = (xr[c] - mu) * rs;
      yr[c] = w ? v * w[c] + b[c] : v;
    }
    mean[r] = mu, rstd[r] = rs;
  }
}

// dx row by row (the two means of g and g·ŷ, then the formula); dw and db summed over the rows on one
// thread, in row order, so they do not depend on the thread count.
template <class T>
void layer_norm_backward_rows(const T* x, const T* w, const T* dy, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                              int64_t R, int64_t C) {
#pragma omp parallel for schedule(static) if (R * C >= kParallelGrain) num_threads(parallel_threads())
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    const T* dr = dy + r * C;
    T* out = dx + r * C;
    const T mu = mean[r], rs = rstd[r];
    auto g = [&](int64_t c) { return w ? dr[c] * w[c] : dr[c]; };
    const double sg = row_sum(C, [&](int64_t c) { return (double)g(c); });
    const double sgy = row_sum(C, [&](int64_t c) { return (double)(g(c) * ((xr[c] - mu) * rs)); });
    const T mg = (T)(sg / (double)C), mgy = (T)(sgy / (double)C);
    for (int64_t c = 0; c < C; c++) out[c] = rs * (g(c) - mg - ((xr[c] - mu) * rs) * mgy);
  }
  if (!w) return;
  std::fill(dw, dw + C, T(0));
  std::fill(db, db + C, T(0));
  for (int64_t r = 0; r < R; r++) {
    const T* xr = x + r * C;
    const T* dr = dy + r * C;
    const T mu = mean[r], rs = rstd[r];
    for (int64_t c = 0; c < C; c++) {
      dw[c] += dr[c] * ((xr[c] - mu) * rs);
      db[c] += dr[c];
    }
  }
}

template void layer_norm_forward_rows<float>(const float*, const float*, const float*, float*, float*, float*,
                                             int64_t, int64_t, double);
template void layer_norm_forward_rows<double>(const double*, const double*, const double*, double*, double*, double*,
                                              int64_t, int64_t, double);
template void layer_norm_backward_rows<float>(const float*, const float*, const float*, const float*, const float*,
                                              float*, float*, float*, int64_t, int64_t);
template void layer_norm_backward_rows<double>(const double*, const double*, const double*, const double*,
                                               const double*, double*, double*, double*, int64_t, int64_t);

// ---- Tensor level ----------------------------------------------------------------------------------------
LayerNormForward layer_norm_forward(const Tensor& x_in, int64_t C, const Tensor& weight, const Tensor& bias,
                                    double eps) {
  Tensor x = x_in.contiguous();
  const int64_t R = C ? x.numel() / C : 0;
  LayerNormForward f{empty(x.shape(), x.dtype()), empty({R}, x.dtype()), empty({R}, x.dtype())};
  const bool affine = weight.defined();
  Tensor w = affine ? weight.contiguous() : Tensor(), b = affine ? bias.contiguous() : Tensor();
  dispatch_floating(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    layer_norm_forward_rows<T>(x.data_ptr<T>(), affine ? w.data_ptr<T>() : nullptr, affine ? b.data_ptr<T>() : nullptr,
                               f.y.data_ptr<T>(), f.mean.data_ptr<T>(), f.rstd.data_ptr<T>(), R, C, eps);
  });
  return f;
}

LayerNormGrads layer_norm_backward(const Tensor& dout, const Tensor& x_in, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, int64_t C) {
  Tensor x = x_in.contiguous(), d = dout.contiguous();
  const int64_t R = C ? x.numel() / C : 0;
  const bool affine = weight.defined();
  Tensor w = affine ? weight.contiguous() : Tensor();
  LayerNormGrads g{empty(x.shape(), x.dtype()), affine ? empty(weight.shape(), x.dtype()) : Tensor(),
                   affine ? empty(weight.shape(), x.dtype()) : Tensor()};
  dispatch_floating(x.dtype(), "layer_norm backward", [&](auto zero) {
    using T = decltype(zero);
    layer_norm_backward_rows<T>(x.data_ptr<T>(), affine ? w.data_ptr<T>() : nullptr, d.data_ptr<T>(),
                                mean.data_ptr<T>(), rstd.data_ptr<T>(), g.dx.data_ptr<T>(),
                                affine ? g.dweight.data_ptr<T>() : nullptr, affine ? g.dbias.data_ptr<T>() : nullptr, R,
                                C);
  });
  return g;
}

}  // namespace heed::kernels
