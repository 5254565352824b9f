// ops_norm.cpp: layer_norm, the one normalisation with an op of its own. BatchNorm and GroupNorm
// (nn/norm.cpp) are composites of mean, sum, mul, add and rsqrt; LayerNorm as a composite is about ten
// elementwise ops and reductions forward and twenty backward, each a pass over the whole activation with
// a temporary of its own, and a transformer runs one per block and sublayer. So the op runs one pass per
// row forward and one backward (tensor/kernels/norm.h), and under create_graph writes the same backward
// in heed ops, which can be differentiated again.
//
// The derivation, with ŷ = (x - μ)·r the normalised x and r = 1/√(σ² + eps) over each row of C elements:
// y = ŷ·w + b, so dŷ = g = dy·w. μ and σ² depend on every element of the row, and summing their
// contributions gives  dx = r·(g - mean(g) - ŷ·mean(g·ŷ));  dw = Σ_rows dy·ŷ,  db = Σ_rows dy.
#include <string>
#include <utility>

#include "autograd/node.h"
#include "tensor/kernels/norm.h"

namespace heed {

using Grads = std::vector<Tensor>;

static const bool registered = register_ops({"layer_norm"});

static void check_layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                             const Tensor& bias) {
  const std::string op = "layer_norm: ";
  if (!x.defined()) throw Error(op + "input is an undefined tensor");
  if (!is_floating(x.dtype()))
    throw Error(op + "input must be float32 or float64, got " + dtype_name(x.dtype()) + " " + shape_str(x.shape()));
  if (normalized_shape.empty()) throw Error(op + "normalized_shape must have at least one dim");
  const int64_t k = (int64_t)normalized_shape.size();
  if (x.dim() < k || Shape(x.shape().end() - k, x.shape().end()) != normalized_shape)
    throw Error(op + "input " + shape_str(x.shape()) + " does not end in normalized_shape " +
                shape_str(normalized_shape));
  for (auto [t, name] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!t->defined()) continue;
    if (t->shape() != normalized_shape || t->dtype() != x.dtype())
      throw Error(op + name + " " + shape_str(t->shape()) + " " + dtype_name(t->dtype()) +
                  " must have normalized_shape " + shape_str(normalized_shape) + " and the input's dtype " +
                  dtype_name(x.dtype()));
  }
}

// The same y from primitives, for what the fused op does not take: an empty x, or a weight without a
// bias (or a bias without a weight).
static Tensor layer_norm_composite(const Tensor& x, int64_t k, const Tensor& weight, const Tensor& bias, double eps) {
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); d++) dims.push_back(d);
  Tensor xc = x - x.mean(dims, true);
  Tensor y = xc * rsqrt((xc * xc).mean(dims, true) + eps);
  if (weight.defined()) y = y * weight;
  return bias.defined() ? y + bias : y;
}

// y = (x - μ)·r·w + b over the trailing normalized_shape   x: (..., *S)  w, b: S  (R rows of C = numel(S))
// dx = r·(g - mean(g) - ŷ·mean(g·ŷ)) with g = dy·w,  dw = Σ_rows dy·ŷ,  db = Σ_rows dy
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_layer_norm(x, normalized_shape, weight, bias);
  const int64_t k = (int64_t)normalized_shape.size();
  if (x.numel() == 0 || weight.defined() != bias.defined()) return layer_norm_composite(x, k, weight, bias, eps);
  const int64_t C = numel_of(normalized_shape), R = x.numel() / C;
  const bool affine = weight.defined();
  kernels::LayerNormForward f = kernels::layer_norm_forward(x, C, weight, bias, eps);
  std::vector<Tensor> inputs{x};
  if (affine) inputs.push_back(weight), inputs.push_back(bias);
  return record("layer_norm", f.y, inputs,
                [sx = SavedTensor(x), sw = SavedTensor(weight), mean = f.mean, rstd = f.rstd, C, R, eps, affine](
                    const Tensor& d, const Tensor&) {
                  Tensor x = sx.get(), w = sw.get();
                  if (!grad_enabled()) {  // a plain backward: one pass per row
                    kernels::LayerNormGrads g = kernels::layer_norm_backward(d, x, w, mean, rstd, C);
                    return affine ? Grads{g.dx, g.dweight, g.dbias} : Grads{g.dx};
                  }
                  // create_graph: the formula in heed ops, on a recomputed ŷ
                  Tensor x2 = x.reshape({R, C}), d2 = d.reshape({R, C});
                  Tensor xc = x2 - x2.mean(1, true);
                  Tensor r = rsqrt((xc * xc).mean(1, true) + eps), xhat = xc * r;
                  Tensor g = affine ? d2 * w.reshape({C}) : d2;
                  Tensor dx = (r * (g - g.mean(1, true) - xhat * (g * xhat).mean(1, true))).reshape(x.shape());
                  if (!affine) return Grads{dx};
                  return Grads{dx, (d2 * xhat).sum(0).reshape(w.shape()), d2.sum(0).reshape(w.shape())};
                });
}

}  // namespace heed
