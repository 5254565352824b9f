// Tests for autograd/ops_loss.cpp beyond the gradcheck table and tests/nn/test_loss.cpp (which compares the
// fused losses with the composites): the ops' own argument errors, and the mean's denominator.
#include <doctest/doctest.h>

#include "heed.h"

using namespace heed;

TEST_CASE("cross_entropy_rows: per-row losses and the mean's denominator; bad arguments are heed::Errors") {
  Tensor x = tensor({{1.0, 2.0, 0.5}, {0.0, -1.0, 3.0}}), w = tensor({0.5, 2.0, 1.0});
  auto [rows, weight_sum] = cross_entropy_rows(x, tensor({1, 2}, int64), w, -100, 0.0);
  Tensor logp = log_softmax(x, 1);
  CHECK(allclose(rows, tensor({-2.0 * logp.to_vector<float>()[1], -1.0 * logp.to_vector<float>()[5]})));
  CHECK(weight_sum == 3.0);
  CHECK(cross_entropy_rows(x, tensor({-100, 0}, int64), Tensor(), -100, 0.0).second == 1.0);

  CHECK_THROWS_WITH_AS(cross_entropy_rows(x, tensor({1, 2, 0}, int64), Tensor(), -100, 0.0),
                       doctest::Contains("cross_entropy_rows: expected float logits (N,C) and int64 class indices (N)"),
                       Error);
  CHECK_THROWS_AS(cross_entropy_rows(x.reshape({6}), tensor({1}, int64), Tensor(), -100, 0.0), Error);
  CHECK_THROWS_AS(cross_entropy_rows(x, tensor({1.0, 2.0}), Tensor(), -100, 0.0), Error);
  CHECK_THROWS_AS(cross_entropy_rows(x, tensor({1, 2}, int64), tensor({1.0, 2.0}), -100, 0.0), Error);
  CHECK_THROWS_AS(cross_entropy_rows(x, tensor({1, 2}, int64), w.clone().requires_grad_(), -100, 0.0), Error);
  CHECK_THROWS_AS(cross_entropy_rows(x, tensor({1, 2}, int64), Tensor(), -100, 1.5), Error);
  CHECK_THROWS_WITH_AS(cross_entropy_rows(x, tensor({1, 3}, int64), Tensor(), -100, 0.0),
                       doctest::Contains("target 3 at index 1 is out of range for 3 classes"), Error);
}

TEST_CASE("binary_cross_entropy_elementwise: bad arguments are heed::Errors naming the shapes") {
  CHECK_THROWS_WITH_AS(binary_cross_entropy_elementwise(zeros({2}), zeros({3})),
                       "binary_cross_entropy: input (2) float32 and target (3) float32 must be floating tensors of one "
                       "shape and dtype",
                       Error);
  CHECK_THROWS_AS(binary_cross_entropy_elementwise(zeros({2}), zeros({2}, float64)), Error);
  CHECK_THROWS_AS(binary_cross_entropy_elementwise(zeros({2}, int64), zeros({2}, int64)), Error);
  CHECK_THROWS_AS(binary_cross_entropy_elementwise(Tensor(), zeros({2})), Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_elementwise(tensor({0.5, -0.5}), zeros({2})),
                       doctest::Contains("is not a probability in [0,1]"), Error);
}
