// Tests for autograd/ops_norm.cpp and tensor/kernels/norm.cpp: layer_norm's one-pass kernels and its
// create_graph backward against the composite of primitives, and its shape errors. (Its gradcheck and
// gradgradcheck rows are in test_gradcheck.cpp's op table.)
#include <doctest/doctest.h>

#include "heed.h"

using namespace heed;

TEST_CASE("layer_norm: the fused op equals its composite definition, forward and both backwards") {
  // One-pass kernels for a plain backward, heed ops under create_graph; both against the composite
  // (x - mean) / sqrt(var + eps) * w + b written out here. Odd row widths, one row, many rows (threaded).
  for (DType dt : {float32, float64})
    for (Shape s : {Shape{1, 7}, Shape{32, 64, 128}, Shape{3, 1023}, Shape{5, 17}}) {
      CAPTURE(shape_str(s));
      int64_t C = s.back();
      Tensor x = (randn(s, dt) * 3.0 + 1.0).requires_grad_(), d = randn(s, dt);
      Tensor w = randn({C}, dt).requires_grad_(), b = randn({C}, dt).requires_grad_();
      Tensor mu = x.mean(-1, true), xc = x - mu;
      Tensor ref = xc * rsqrt((xc * xc).mean(-1, true) + 1e-5) * w + b;
      const double tol = dt == float32 ? 2e-5 : 1e-10;
      CHECK(allclose(layer_norm(x, {C}, w, b), ref, tol, tol));
      std::vector<Tensor> want = grad({ref}, {x, w, b}, {d}, false);
      std::vector<Tensor> fast = grad({layer_norm(x, {C}, w, b)}, {x, w, b}, {d}, false);
      std::vector<Tensor> ops = grad({layer_norm(x, {C}, w, b)}, {x, w, b}, {d}, true);
      for (int i = 0; i < 3; i++) {
        CAPTURE(i);
        CHECK(allclose(fast[i], want[i], tol * 10, tol * 10));
        CHECK(allclose(ops[i].detach(), want[i], tol * 10, tol * 10));
      }
    }
}

TEST_CASE("layer_norm: over several trailing dims, a non-contiguous input, weight or bias alone, and nn::LayerNorm") {
  Tensor x = randn({4, 3, 2}, float64).transpose(0, 2);  // (2, 3, 4), not contiguous
  Tensor w = randn({3, 4}, float64), b = randn({3, 4}, float64);
  Tensor flat = x.contiguous().reshape({2, 12});
  Tensor xc = flat - flat.mean(1, true);
  Tensor y = (xc * rsqrt((xc * xc).mean(1, true) + 1e-5)).reshape({2, 3, 4});
  CHECK(allclose(layer_norm(x, {3, 4}, w, b), y * w + b, 1e-12, 1e-12));
  CHECK(allclose(layer_norm(x, {3, 4}), y, 1e-12, 1e-12));
  CHECK(allclose(layer_norm(x, {3, 4}, w), y * w, 1e-12, 1e-12));
  CHECK(allclose(layer_norm(x, {3, 4}, Tensor(), b), y + b, 1e-12, 1e-12));
  CHECK(layer_norm(zeros({0, 4}), {4}).shape() == Shape{0, 4});
  nn::LayerNorm ln(Shape{3, 4});
  ln.weight = w, ln.bias = b;
  CHECK(allclose(ln(x), y * w + b, 1e-12, 1e-12));
}

TEST_CASE("layer_norm: bad shapes and dtypes are heed::Errors naming the op and the shapes") {
  Tensor x = zeros({2, 6, 5});
  CHECK_THROWS_WITH_AS(layer_norm(x, {5, 6}), "layer_norm: input (2,6,5) does not end in normalized_shape (5,6)",
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, {}), "layer_norm: normalized_shape must have at least one dim", Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, {5}, ones({6})),
                       "layer_norm: weight (6) float32 must have normalized_shape (5) and the input's dtype float32",
                       Error);
  CHECK_THROWS_AS(layer_norm(x, {5}, ones({5}), zeros({5}, float64)), Error);
  CHECK_THROWS_AS(layer_norm(zeros({2, 5}, int64), {5}), Error);
  CHECK_THROWS_AS(layer_norm(Tensor(), {5}), Error);
}
