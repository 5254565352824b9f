// optim.h: the fused update loops of the optimizers in nn/optim/optim.h, one per optimizer. Each step
// calls its loop once per parameter (in chunks on threads for a large one): one pass that reads p, g and
// the buffers once and writes them once.
//
// `*_ref` is the plain scalar loop, the definition; `*_simd` is the same arithmetic on xsimd batches, with
// the reference finishing the tail; tests/tensor/kernels/test_optim.cpp checks that the two agree. The
// scalars are computed once per step in double and used in T, as PyTorch passes Python floats to float
// kernels. Each loop performs PyTorch 1.13's single-tensor operations in the same order (the comments in
// optim.cpp name them), so that the results match PyTorch's. T is float or double.
#pragma once
#include <cstdint>

namespace heed::kernels {

struct SGDScalars {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
  bool first;  // the momentum buffer's first update: buf = d
};
/// buf may be null when momentum is 0.
template <class T> void sgd_update_ref(T* p, const T* g, T* buf, int64_t n, const SGDScalars& s);
template <class T> void sgd_update_simd(T* p, const T* g, T* buf, int64_t n, const SGDScalars& s);

struct AdamScalars {
  double beta1, beta2, eps, weight_decay;  // weight_decay: added to g (Adam), 0 for AdamW
  double decay;                            // AdamW's 1 - lr·wd (1 for Adam)
  double step_size;                        // lr / (1 - β1^t)
  double bias_correction2_sqrt;            // √(1 - β2^t)
  bool amsgrad, maximize;
};
/// vmax may be null without amsgrad.
template <class T> void adam_update_ref(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars& s);
template <class T> void adam_update_simd(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars& s);

struct RMSpropScalars {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
/// grad_avg may be null unless centered, buf unless momentum > 0.
template <class T>
void rmsprop_update_ref(T* p, const T* g, T* square_avg, T* grad_avg, T* buf, int64_t n, const RMSpropScalars& s);
template <class T>
void rmsprop_update_simd(T* p, const T* g, T* square_avg, T* grad_avg, T* buf, int64_t n, const RMSpropScalars& s);

}  // namespace heed::kernels
