// norm.h: LayerNorm's forward and backward as raw row loops, llm.c's layernorm_forward and
// layernorm_backward. No autograd here: the differentiable op heed::layer_norm (autograd/ops_norm.cpp)
// calls them for a plain backward, and writes the same formula in heed ops under create_graph.
//
// Letters: R rows, C the elements normalised together (the product of normalized_shape). Per row:
//
//     μ = mean(x),  r = 1/√(mean((x - μ)²) + eps),  ŷ = (x - μ)·r,  y = ŷ·w + b
//     g = dy·w,  dx = r·(g - mean(g) - ŷ·mean(g·ŷ)),  dw = Σ_rows dy·ŷ,  db = Σ_rows dy
//
// The forward saves μ and r per row, so the backward rebuilds ŷ from x instead of keeping a copy of it.
// These are plain loops with no xsimd version, so there is no *_simd to test against a *_ref: the op's
// tests compare them with the composite of primitives instead (tests/autograd/test_ops_norm.cpp).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace heed::kernels {

/// y, and the per-row μ and r that the backward needs.
struct LayerNormForward {
  Tensor y;     // x's shape
  Tensor mean;  // (R)
  Tensor rstd;  // (R): 1/√(σ² + eps)
};
/// x (..., C) of floating dtype, any layout (copied to contiguous rows first); weight and bias (C elements,
/// x's dtype) both defined or both undefined.
LayerNormForward layer_norm_forward(const Tensor& x, int64_t C, const Tensor& weight, const Tensor& bias, double eps);

struct LayerNormGrads {
  Tensor dx;       // x's shape
  Tensor dweight;  // weight's shape; undefined without weight
  Tensor dbias;
};
/// The gradients for dout (x's shape), from the mean and rstd that layer_norm_forward returned.
LayerNormGrads layer_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, int64_t C);

// ---- the row loops (float and double), on contiguous rows --------------------------------------------------
/// w and b may be null (no affine).
template <class T>
void layer_norm_forward_rows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t R, int64_t C,
                             double eps);
/// dx for every row; dw and db (when w is not null) as column sums over the rows, in row order.
template <class T>
void layer_norm_backward_rows(const T* x, const T* w, const T* dy, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                              int64_t R, int64_t C);

}  // namespace heed::kernels
