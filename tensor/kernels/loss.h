// loss.h: the raw loops of the two fused losses, binary cross-entropy and cross-entropy over class
// indices. No autograd here: the differentiable ops heed::binary_cross_entropy_elementwise and
// heed::cross_entropy_rows (autograd/ops_loss.cpp) call them for the forward and a plain backward, and
// nn/loss.h's losses call those ops.
//
// Letters: N rows (samples), C classes. The logarithms and the softmax come from simd.h's row kernels, at
// the level that kernels::use_simd() selects, so set_use_simd(false) runs these on the scalar references.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace heed::kernels {

// ---- binary cross-entropy ------------------------------------------------------------------------------
// loss = -(y log⁺p + (1-y) log⁺(1-p)),  log⁺ = log clamped below at -100 (PyTorch's guard)
// dp = dout (-y [p > e^-100]/p + (1-y) [1-p > e^-100]/(1-p))

/// The elementwise loss for p and y of one shape and floating dtype (any layout). Throws heed::Error on a
/// p outside [0, 1], naming its index: a logit passed by mistake.
Tensor binary_cross_entropy_forward(const Tensor& p, const Tensor& y);
/// dp for dout of p's shape.
Tensor binary_cross_entropy_backward(const Tensor& dout, const Tensor& p, const Tensor& y);

// ---- cross-entropy over class indices -------------------------------------------------------------------
// With lse_i = log Σ_c e^x[i,c], logp = x - lse, W = Σ_c w_c and ε the label smoothing:
//   loss[i] = (1-ε) w[t_i] (lse_i - x[i,t_i])  +  ε/C Σ_c w_c (lse_i - x[i,c])        (0 if t_i is ignored)
//   dx[i,c] = dout[i] (softmax(x_i)_c a_i - b_i,c),   a_i = (1-ε) w[t_i] + ε W / C,
//                                                     b_i,c = (1-ε) w[t_i] [c = t_i] + ε w_c / C

/// What depends only on the targets and the class weights, computed once per forward.
struct CrossEntropyRows {
  int64_t N = 0, C = 0;
  double eps = 0;                  // label smoothing
  std::vector<int64_t> target;     // (N); an ignored row holds class 0, and its a, c and keep are 0
  std::vector<double> weight;      // (C); ones without a weight
  std::vector<double> a, c, keep;  // (N): a_i, the one-hot coefficient c_i = (1-ε) w[t_i], 1 if counted
  double weight_sum = 0;           // Σ w[t_i] over the counted rows: the mean's denominator
};
/// target: int64 (N) class indices in [0, C) or ignore_index; weight: (C) or undefined. Throws heed::Error
/// on an index out of range.
CrossEntropyRows cross_entropy_row_constants(const Tensor& target, const Tensor& weight, int64_t C,
                                             int64_t ignore_index, double eps);
/// loss (N) for logits x (N, C) of floating dtype (any layout).
Tensor cross_entropy_forward(const Tensor& x, const CrossEntropyRows& r);
/// dx (N, C) for dout (N).
Tensor cross_entropy_backward(const Tensor& dout, const Tensor& x, const CrossEntropyRows& r);

}  // namespace heed::kernels
