// clip.h: gradient clipping, as torch.nn.utils. Call between backward() and the optimizer's step():
//
//   loss.backward();
//   double norm = nn::clip_grad_norm_(model.parameters(), 1.0);  // the norm before clipping, worth logging
//   opt.step();
//
// Parameters whose grad is undefined are skipped. A clipped gradient is a new tensor given to the
// parameter with set_grad, not an in-place change of the old one: heed's engine may hand two leaves the
// very same gradient tensor (both inputs of a + b get dout itself), or a stride-0 view (the gradient of
// x.sum() is one value expanded), and scaling those in place would scale twice or write one element many
// times.
#pragma once
#include <cmath>
#include <vector>

#include "tensor/tensor.h"

namespace heed::nn {

/// Scales every gradient by max_norm / (total + 1e-6) when the total norm of all of them, as if
/// concatenated into one vector, exceeds max_norm. norm_type is p > 0 or INFINITY (the largest |g|).
/// The norm is accumulated in double whatever the dtype. Returns the total norm before clipping; a nan or
/// inf total throws when error_if_nonfinite, and otherwise clips as PyTorch does (the grads become nan or 0).
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace heed::nn
