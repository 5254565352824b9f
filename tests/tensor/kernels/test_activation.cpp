// Tests for tensor/kernels/activation.cpp: the fused relu and gelu backwards against plain per-element
// loops, at odd sizes (1, 7, 17, 1023) and across the threaded chunks, SIMD rows against the reference.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "heed.h"
#include "tensor/kernels/activation.h"
#include "tensor/kernels/kernels.h"

using namespace heed;

namespace {

template <class T>
void check_rows(int64_t n) {
  Generator g(n + 11);
  Tensor x = randn({n}, dtype_of<T>(), &g), d = randn({n}, dtype_of<T>(), &g);
  std::vector<T> xv = x.to_vector<T>(), dv = d.to_vector<T>();
  if (n > 1) xv[0] = 0;  // relu's kink: no gradient at exactly 0
  x = from_vector(xv);
  const double ulp = std::numeric_limits<T>::epsilon();
  CAPTURE(n);
  CAPTURE(sizeof(T));
  for (double slope : {0.0, 0.2}) {
    std::vector<T> got = kernels::relu_backward(d, x, slope).template to_vector<T>();
    for (int64_t i = 0; i < n; i++) CHECK(got[i] == (xv[i] > 0 ? dv[i] : dv[i] * (T)slope));
  }
  std::vector<T> ref(n), fast(n), from_out(n);
  Tensor y = gelu(x);  // the forward's output, for the row loop that takes Φ(x) = y / x
  std::vector<T> yv = y.to_vector<T>();
  kernels::gelu_backward_ref<T>(dv.data(), xv.data(), ref.data(), n);
  kernels::gelu_backward_simd<T>(dv.data(), xv.data(), fast.data(), n);
  kernels::gelu_backward_from_output_simd<T>(dv.data(), xv.data(), yv.data(), from_out.data(), n);
  for (int64_t i = 0; i < n; i++) {
    CAPTURE(i);
    // the definition, in double: d (Φ(x) + x φ(x))
    const double xi = xv[i], want = dv[i] * (0.5 * (1 + std::erf(xi * M_SQRT1_2)) + xi * std::exp(-0.5 * xi * xi) /
                                                                                        std::sqrt(2 * M_PI));
    CHECK(std::fabs(ref[i] - want) <= 8 * ulp * (1 + std::fabs(want)));
    CHECK(std::fabs(fast[i] - ref[i]) <= 16 * ulp * (1 + std::fabs(ref[i])));
    CHECK(std::fabs(from_out[i] - ref[i]) <= 16 * ulp * (1 + std::fabs(ref[i])));
  }
  // The Tensor-level call on each level is exactly its row loop.
  kernels::set_use_simd(false);
  CHECK(kernels::gelu_backward(d, x).template to_vector<T>() == ref);
  CHECK(kernels::gelu_backward(d, x, y).template to_vector<T>() == ref);
  kernels::set_use_simd(true);
  CHECK(kernels::gelu_backward(d, x).template to_vector<T>() == fast);
  CHECK(kernels::gelu_backward(d, x, y).template to_vector<T>() == from_out);
}

// Where y / x cannot stand for Φ(x): x = ±0 (0/0) and subnormal x (y lost bits), x far below 0 (y and the
// gradient underflow), ±inf (NaN on both sides, as in PyTorch: inf · 0), NaN.
template <class T>
void check_from_output_edges() {
  const T inf = std::numeric_limits<T>::infinity(), sub = std::numeric_limits<T>::denorm_min();
  std::vector<T> xv = {T(0), -T(0), sub, -sub, T(1e-30), T(-1e-30), T(-20), T(-40), T(-1e4), T(3), T(1e4)};
  const int64_t n = (int64_t)xv.size();
  Tensor x = from_vector(xv), y = gelu(x);
  std::vector<T> yv = y.to_vector<T>(), dv(n, T(1.5)), ref(n), got(n);
  kernels::gelu_backward_ref<T>(dv.data(), xv.data(), ref.data(), n);
  kernels::gelu_backward_from_output_simd<T>(dv.data(), xv.data(), yv.data(), got.data(), n);
  const double ulp = std::numeric_limits<T>::epsilon();
  for (int64_t i = 0; i < n; i++) {
    CAPTURE(xv[i]);
    CHECK(std::fabs(got[i] - ref[i]) <= 16 * ulp * (1 + std::fabs(ref[i])));
  }
  std::vector<T> nv = {inf, -inf, std::numeric_limits<T>::quiet_NaN()}, nd(3, T(1)), nout(3);
  std::vector<T> ny = gelu(from_vector(nv)).template to_vector<T>();
  kernels::gelu_backward_from_output_simd<T>(nd.data(), nv.data(), ny.data(), nout.data(), 3);
  for (T v : nout) CHECK(std::isnan(v));
}

}  // namespace

TEST_CASE("kernels activation: gelu's backward from its output at 0, subnormals, the tails, inf and NaN") {
  check_from_output_edges<float>();
  check_from_output_edges<double>();
}

namespace {

}  // namespace

TEST_CASE("kernels activation: relu and gelu backwards agree with their plain loops (sizes 1, 7, 17, 1023, 40000)") {
  for (int64_t n : {1, 7, 17, 1023, 40000}) {
    check_rows<float>(n);
    check_rows<double>(n);
  }
}

TEST_CASE("kernels activation: non-contiguous inputs are read through their views; mismatches are errors") {
  Tensor x = randn({6, 5}).mT(), d = randn({5, 6});
  CHECK(allclose(kernels::relu_backward(d, x, 0.1), kernels::relu_backward(d, x.contiguous(), 0.1), 0, 0));
  CHECK(allclose(kernels::gelu_backward(d, x), kernels::gelu_backward(d, x.contiguous()), 0, 0));
  CHECK_THROWS_WITH_AS(
      kernels::relu_backward(zeros({3}), zeros({4}), 0),
      "relu backward: dout (3) float32 and x (4) float32 must be floating tensors of one shape and dtype", Error);
  CHECK_THROWS_AS(kernels::gelu_backward(zeros({3}), zeros({3}, float64)), Error);
  CHECK_THROWS_AS(kernels::gelu_backward(zeros({3}, int64), zeros({3}, int64)), Error);
}
