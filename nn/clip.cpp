// clip.cpp: clip_grad_norm_ and clip_grad_value_ (clip.h).
#include "nn/clip.h"

#include <algorithm>
#include <string>

#include "autograd/node.h"

namespace heed::nn {

// Σ |g|^p in double over one gradient (or max |g| for p = inf).
static double accumulate(const Tensor& grad, double p) {
  Tensor g = grad.contiguous();
  return dispatch_floating(g.dtype(), "clip_grad_norm_", [&](auto zero) {
    using T = decltype(zero);
    const T* x = g.data_ptr<T>();
    const int64_t n = g.numel();
    double acc = 0;
    if (std::isinf(p)) {
      for (int64_t i = 0; i < n; i++) {
        double a = std::fabs((double)x[i]);
        acc = std::isnan(a) || a > acc ? a : acc;  // a nan gradient makes the norm nan, as torch
        if (std::isnan(acc)) break;
      }
    } else if (p == 2) {
      for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];
    } else {
      for (int64_t i = 0; i < n; i++) acc += std::pow(std::fabs((double)x[i]), p);
    }
    return acc;
  });
}

// total = (Σ over all gradients of Σ |g|^p)^(1/p): the p-norm of every gradient element together.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  if (!(norm_type > 0))
    throw Error("clip_grad_norm_: norm_type must be > 0 or INFINITY, got " + std::to_string(norm_type));
  if (!(max_norm >= 0)) throw Error("clip_grad_norm_: max_norm must be >= 0, got " + std::to_string(max_norm));
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  bool any = false;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    double a = accumulate(p.grad(), norm_type);
    acc = inf ? (std::isnan(a) || a > acc ? a : acc) : acc + a;
    any = true;
  }
  if (!any) return 0;
  const double total = inf ? acc : norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
  if (!std::isfinite(total) && error_if_nonfinite)
    throw Error("clip_grad_norm_: the total norm of order " + std::to_string(norm_type) + " of the gradients is " +
                std::to_string(total) + "; pass error_if_nonfinite = false to clip anyway");
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1) return total;  // within bounds (a nan coef falls through and spreads, as in torch)
  NoGradGuard no_grad;
  for (Tensor p : params)  // a copy of the handle: set_grad changes the shared TensorImpl
    if (p.defined() && p.grad().defined()) p.set_grad(p.grad() * coef);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  if (!(clip_value >= 0)) throw Error("clip_grad_value_: clip_value must be >= 0, got " + std::to_string(clip_value));
  NoGradGuard no_grad;
  for (Tensor p : params)
    if (p.defined() && p.grad().defined()) p.set_grad(clamp(p.grad(), -clip_value, clip_value));
}

}  // namespace heed::nn
