// optim.cpp: the update loops of optim.h, each scalar reference beside its xsimd version.
//
// Matching PyTorch to the last bit. PyTorch 1.13's single-tensor optimizers run a few tensor ops per
// parameter, e.g. for Adam's first moment `exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)`. Each op
// rounds to the tensor's dtype, and its Python-float scalars are rounded to that dtype too. The loops
// below perform the same operations in the same order on values of type T, so that (up to the compiler
// fusing a multiply and an add) they produce PyTorch's numbers; tests/nn/optim/test_optim.cpp compares five
// steps of each optimizer with the ones tests/fixtures/optim/make_optim_fixtures.py recorded.
#include "tensor/kernels/optim.h"

// GCC 12 warns inside its own AVX-512 headers (see tensor/kernels/simd.cpp); the pragmas cover them only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop

#include <cmath>

namespace heed::kernels {

// ---- SGD ---------------------------------------------------------------------------------------------
template <class T>
void sgd_update_ref(T* p, const T* g, T* buf, int64_t n, const SGDScalars& s) {
  const T wd = T(s.weight_decay), mom = T(s.momentum), keep = T(1 - s.dampening), neg_lr = T(-s.lr);
  const T sign = s.maximize ? T(-1) : T(1);  // maximize ascends: d = -g (a multiply by -1 is exact)
  for (int64_t i = 0; i < n; i++) {
    T d = g[i] * sign;
    if (s.weight_decay != 0) d = d + wd * p[i];  // d_p.add(param, alpha=weight_decay)
    if (buf) {
      buf[i] = s.first ? d : buf[i] * mom + keep * d;  // buf.mul_(momentum).add_(d_p, alpha=1-dampening)
      d = s.nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
  }
}

template <class T>
void sgd_update_simd(T* p, const T* g, T* buf, int64_t n, const SGDScalars& s) {
  using V = xsimd::batch<T>;
  constexpr int64_t L = V::size;
  const V wd(T(s.weight_decay)), mom(T(s.momentum)), keep(T(1 - s.dampening)), neg_lr(T(-s.lr));
  const V sign(s.maximize ? T(-1) : T(1));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V pi = V::load_unaligned(p + i);
    V d = V::load_unaligned(g + i) * sign;
    if (s.weight_decay != 0) d = d + wd * pi;
    if (buf) {
      const V b = s.first ? d : V::load_unaligned(buf + i) * mom + keep * d;
      b.store_unaligned(buf + i);
      d = s.nesterov ? d + mom * b : b;
    }
    (pi + neg_lr * d).store_unaligned(p + i);
  }
  sgd_update_ref(p + i, g + i, buf ? buf + i : nullptr, n - i, s);  // the tail, fewer than L elements
}

// ---- Adam / AdamW ------------------------------------------------------------------------------------
template <class T>
void adam_update_ref(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars& s) {
  const T b1 = T(s.beta1), b2 = T(s.beta2), c1 = T(1 - s.beta1), c2 = T(1 - s.beta2);
  const T wd = T(s.weight_decay), decay = T(s.decay), eps = T(s.eps);
  const T bc2 = T(s.bias_correction2_sqrt), neg_step = T(-s.step_size);
  const T sign = s.maximize ? T(-1) : T(1);
  for (int64_t i = 0; i < n; i++) {
    T gi = g[i] * sign;
    if (s.weight_decay != 0) gi = gi + wd * p[i];  // Adam's L2 term (AdamW passes 0)
    m[i] = m[i] * b1 + c1 * gi;                     // exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
    v[i] = v[i] * b2 + c2 * gi * gi;                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
    T vi = v[i];
    if (s.amsgrad) vi = vmax[i] = vmax[i] > vi ? vmax[i] : vi;  // torch.maximum(max_exp_avg_sq, exp_avg_sq)
    const T denom = std::sqrt(vi) / bc2 + eps;
    const T pi = s.decay != 1 ? p[i] * decay : p[i];  // AdamW: param.mul_(1 - lr*wd), before the update
    p[i] = pi + neg_step * (m[i] / denom);             // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

template <class T>
void adam_update_simd(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars& s) {
  using V = xsimd::batch<T>;
  constexpr int64_t L = V::size;
  const V b1(T(s.beta1)), b2(T(s.beta2)), c1(T(1 - s.beta1)), c2(T(1 - s.beta2));
  const V wd(T(s.weight_decay)), decay(T(s.decay)), eps(T(s.eps));
  const V bc2(T(s.bias_correction2_sqrt)), neg_step(T(-s.step_size));
  const V sign(s.maximize ? T(-1) : T(1));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V pi = V::load_unaligned(p + i);
    V gi = V::load_unaligned(g + i) * sign;
    if (s.weight_decay != 0) gi = gi + wd * pi;
    const V mi = V::load_unaligned(m + i) * b1 + c1 * gi;
    V vi = V::load_unaligned(v + i) * b2 + c2 * gi * gi;
    mi.store_unaligned(m + i);
    vi.store_unaligned(v + i);
    if (s.amsgrad) {
      const V old = V::load_unaligned(vmax + i);
      vi = xsimd::select(old > vi, old, vi);
      vi.store_unaligned(vmax + i);
    }
    const V denom = xsimd::sqrt(vi) / bc2 + eps;
    if (s.decay != 1) pi = pi * decay;
    (pi + neg_step * (mi / denom)).store_unaligned(p + i);
  }
  adam_update_ref(p + i, g + i, m + i, v + i, vmax ? vmax + i : nullptr, n - i, s);
}

// ---- RMSprop ----------------------------------------------------------------------------------------
template <class T>
void rmsprop_update_ref(T* p, const T* g, T* sq, T* ga, T* buf, int64_t n, const RMSpropScalars& s) {
  const T alpha = T(s.alpha), c = T(1 - s.alpha), wd = T(s.weight_decay), eps = T(s.eps);
  const T mom = T(s.momentum), neg_lr = T(-s.lr);
  const T sign = s.maximize ? T(-1) : T(1);
  for (int64_t i = 0; i < n; i++) {
    T gi = g[i] * sign;
    if (s.weight_decay != 0) gi = gi + wd * p[i];
    sq[i] = sq[i] * alpha + c * gi * gi;  // square_avg.mul_(alpha).addcmul_(grad, grad, value=1-alpha)
    T avg;
    if (s.centered) {
      ga[i] = ga[i] * alpha + c * gi;        // grad_avg.mul_(alpha).add_(grad, alpha=1-alpha)
      avg = std::sqrt(sq[i] - ga[i] * ga[i]);  // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    } else {
      avg = std::sqrt(sq[i]);
    }
    avg = avg + eps;
    if (buf) {
      buf[i] = buf[i] * mom + gi / avg;  // buf.mul_(momentum).addcdiv_(grad, avg)
      p[i] = p[i] + neg_lr * buf[i];     // param.add_(buf, alpha=-lr)
    } else {
      p[i] = p[i] + neg_lr * (gi / avg);  // param.addcdiv_(grad, avg, value=-lr)
    }
  }
}

template <class T>
void rmsprop_update_simd(T* p, const T* g, T* sq, T* ga, T* buf, int64_t n, const RMSpropScalars& s) {
  using V = xsimd::batch<T>;
  constexpr int64_t L = V::size;
  const V alpha(T(s.alpha)), c(T(1 - s.alpha)), wd(T(s.weight_decay)), eps(T(s.eps));
  const V mom(T(s.momentum)), neg_lr(T(-s.lr));
  const V sign(s.maximize ? T(-1) : T(1));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V pi = V::load_unaligned(p + i);
    V gi = V::load_unaligned(g + i) * sign;
    if (s.weight_decay != 0) gi = gi + wd * pi;
    const V si = V::load_unaligned(sq + i) * alpha + c * gi * gi;
    si.store_unaligned(sq + i);
    V avg;
    if (s.centered) {
      const V ai = V::load_unaligned(ga + i) * alpha + c * gi;
      ai.store_unaligned(ga + i);
      avg = xsimd::sqrt(si - ai * ai);
    } else {
      avg = xsimd::sqrt(si);
    }
    avg = avg + eps;
    if (buf) {
      const V b = V::load_unaligned(buf + i) * mom + gi / avg;
      b.store_unaligned(buf + i);
      (pi + neg_lr * b).store_unaligned(p + i);
    } else {
      (pi + neg_lr * (gi / avg)).store_unaligned(p + i);
    }
  }
  rmsprop_update_ref(p + i, g + i, sq + i, ga ? ga + i : nullptr, buf ? buf + i : nullptr, n - i, s);
}

#define HEED_OPTIM_INSTANTIATE(T)                                                                      \
  template void sgd_update_ref<T>(T*, const T*, T*, int64_t, const SGDScalars&);                       \
  template void sgd_update_simd<T>(T*, const T*, T*, int64_t, const SGDScalars&);                      \
  template void adam_update_ref<T>(T*, const T*, T*, T*, T*, int64_t, const AdamScalars&);             \
  template void adam_update_simd<T>(T*, const T*, T*, T*, T*, int64_t, const AdamScalars&);            \
  template void rmsprop_update_ref<T>(T*, const T*, T*, T*, T*, int64_t, const RMSpropScalars&);       \
  template void rmsprop_update_simd<T>(T*, const T*, T*, T*, T*, int64_t, const RMSpropScalars&);
HEED_OPTIM_INSTANTIATE(float)
HEED_OPTIM_INSTANTIATE(double)
#undef HEED_OPTIM_INSTANTIATE

}  // namespace heed::kernels
