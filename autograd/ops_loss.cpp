// ops_loss.cpp: the two fused losses, each forward beside its backward. nn/loss.h's losses check their
// arguments and apply weights and reductions; the per-element (or per-row) loss comes from here.
//
// Why fused: binary cross-entropy as a composite is about ten passes and temporaries (four wheres, two
// logs, the masks) forward and as many backward, and cross-entropy is log_softmax, gather, index_select
// and the masks. Each op below is one pass forward (tensor/kernels/loss.h) and one pass for a plain
// backward. Under create_graph the backward is the same formula in heed ops, so the second derivative is
// still there. tests/nn/test_loss.cpp checks both backwards against the composites and PyTorch's numbers.
#include <cmath>
#include <memory>
#include <string>

#include "autograd/node.h"
#include "tensor/kernels/loss.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"binary_cross_entropy", "cross_entropy"});

// ---- binary cross-entropy ------------------------------------------------------------------------------
// log x clamped below at -100, PyTorch's guard. The "double where": log is only evaluated where it is
// above -100, on 1 elsewhere, so its backward d/x never divides 0 by 0 at x = 0, and the outer where sends
// no gradient to the clamped elements (their loss is the constant 100).
static Tensor clamped_log(const Tensor& x) {
  Tensor ok = x > std::exp(-100.0);
  return where(ok, log(where(ok, x, ones_like(x))), full_like(x, -100.0));
}

// The backward in heed ops, differentiable again (under create_graph, or when y needs a gradient).
static Grads bce_backward_ops(const Tensor& p, const Tensor& y, const Tensor& d, bool need_dy) {
  const double tiny = std::exp(-100.0);
  Tensor q = 1.0 - p;
  Tensor okp = p > tiny, okq = q > tiny, zero = zeros_like(p), one = ones_like(p);
  Tensor inv_p = where(okp, 1.0 / where(okp, p, one), zero), inv_q = where(okq, 1.0 / where(okq, q, one), zero);
  Tensor dp = d * ((1.0 - y) * inv_q - y * inv_p);
  Tensor dy = need_dy ? -(d * (clamped_log(p) - clamped_log(q))) : Tensor();
  return {dp, dy};
}

static std::string describe(const Tensor& t) {
  return t.defined() ? shape_str(t.shape()) + " " + dtype_name(t.dtype()) : "undefined";
}

static void check_bce(const Tensor& p, const Tensor& y) {
  if (!p.defined() || !y.defined() || !is_floating(p.dtype()) || p.shape() != y.shape() || p.dtype() != y.dtype())
    throw Error("binary_cross_entropy: input " + describe(p) + " and target " + describe(y) +
                " must be floating tensors of one shape and dtype");
}

// out = -(y log⁺p + (1-y) log⁺(1-p)),  log⁺ = clamped_log   p, y: any shape (the same)  ->  out: that shape
// dp = d (-y [p > e^-100]/p + (1-y) [1-p > e^-100]/(1-p)),  dy = -d (log⁺p - log⁺(1-p))
Tensor binary_cross_entropy_elementwise(const Tensor& p, const Tensor& y) {
  check_bce(p, y);
  Tensor loss = kernels::binary_cross_entropy_forward(p, y);
  const bool need_dy = y.requires_grad();
  return record("binary_cross_entropy", loss, {p, y},
                [sp = SavedTensor(p), sy = SavedTensor(y), need_dy](const Tensor& d, const Tensor&) {
                  Tensor p = sp.get(), y = sy.get();
                  if (!grad_enabled() && !need_dy)  // a plain backward: one pass
                    return Grads{kernels::binary_cross_entropy_backward(d, p, y), Tensor()};
                  return bce_backward_ops(p, y, d, need_dy);
                });
}

// ---- cross-entropy over class indices -------------------------------------------------------------------
// The same dx as kernels::cross_entropy_backward in heed ops, differentiable again (used under
// create_graph): a second derivative flows through softmax's own backward.
static Tensor cross_entropy_backward_ops(const Tensor& x, const Tensor& d, const kernels::CrossEntropyRows& r) {
  const DType dt = x.dtype();
  Tensor a = from_vector(r.a, {r.N}).to(dt), c = from_vector(r.c, {r.N}).to(dt);
  Tensor g = softmax(x, 1) * (d * a).unsqueeze(1);
  g = scatter_add(g, 1, from_vector(r.target, {r.N, 1}), (-(d * c)).unsqueeze(1));  // the one-hot term
  if (r.eps > 0) {
    Tensor keep = from_vector(r.keep, {r.N}).to(dt), w = from_vector(r.weight, {1, r.C}).to(dt);
    g = g - (d * keep * (r.eps / (double)r.C)).unsqueeze(1) * w;
  }
  return g;
}

static void check_cross_entropy(const Tensor& x, const Tensor& target, const Tensor& weight, double eps) {
  const std::string op = "cross_entropy_rows: ";
  if (!x.defined() || !target.defined()) throw Error(op + "logits and target must be defined tensors");
  if (x.dim() != 2 || !is_floating(x.dtype()) || target.dtype() != int64 || target.shape() != Shape{x.size(0)})
    throw Error(op + "expected float logits (N,C) and int64 class indices (N), got " + dtype_name(x.dtype()) + " " +
                shape_str(x.shape()) + " and " + dtype_name(target.dtype()) + " " + shape_str(target.shape()));
  if (weight.defined() && (weight.shape() != Shape{x.size(1)} || weight.dtype() != x.dtype()))
    throw Error(op + "weight " + shape_str(weight.shape()) + " " + dtype_name(weight.dtype()) + " must be (" +
                std::to_string(x.size(1)) + ") " + dtype_name(x.dtype()));
  if (weight.defined() && weight.requires_grad())
    throw Error(op + "weight must be a constant (it requires grad); nn::cross_entropy_composite trains it");
  if (!(eps >= 0 && eps <= 1)) throw Error(op + "label_smoothing must be in [0,1], got " + std::to_string(eps));
}

// out[i] = (1-ε) w[t_i] (lse_i - x[i,t_i]) + ε/C Σ_c w_c (lse_i - x[i,c])   x: (N,C)  t: (N)  ->  out: (N)
// dx[i,c] = d[i] (softmax(x_i)_c a_i - b_i,c)   (a, b and their derivation: tensor/kernels/loss.h)
// a_i, b_i and the mean's denominator depend only on the targets, so the forward computes them once and
// the backward closure shares them.
std::pair<Tensor, double> cross_entropy_rows(const Tensor& x, const Tensor& target, const Tensor& weight,
                                             int64_t ignore_index, double label_smoothing) {
  check_cross_entropy(x, target, weight, label_smoothing);
  auto r = std::make_shared<const kernels::CrossEntropyRows>(
      kernels::cross_entropy_row_constants(target, weight, x.size(1), ignore_index, label_smoothing));
  Tensor rows = kernels::cross_entropy_forward(x, *r);
  Tensor out = record("cross_entropy", rows, {x}, [sx = SavedTensor(x), r](const Tensor& d, const Tensor&) {
    Tensor x = sx.get();
    if (!grad_enabled()) return Grads{kernels::cross_entropy_backward(d, x, *r)};  // a plain backward: one pass
    return Grads{cross_entropy_backward_ops(x, d, *r)};
  });
  return {out, r->weight_sum};
}

}  // namespace heed
