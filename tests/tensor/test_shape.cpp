// Tests for tensor/shape.cpp: the checked size products and dim wrapping that every op relies on (issue 15:
// sizes that wrapped around to tiny buffers, and dim 0 of a 0-d tensor).
#include <doctest/doctest.h>

#include <cstdint>

#include "heed.h"

using namespace heed;

TEST_CASE("checked_numel: negative sizes and products past int64 throw, naming the op and the shape") {
  CHECK(checked_numel("f", {}) == 1);
  CHECK(checked_numel("f", {2, 3}) == 6);
  CHECK(checked_numel("f", {0, 5}) == 0);
  CHECK_THROWS_WITH_AS(checked_numel("zeros", {-5, 3}), "zeros: negative size -5 in shape (-5,3)", Error);
  CHECK_THROWS_WITH_AS(checked_numel("zeros", {1LL << 32, 1LL << 32}),
                       "zeros: shape (4294967296,4294967296) has more than 2^63-1 elements", Error);
  // Empty, but its strides would overflow: refused as well.
  CHECK_THROWS_AS(checked_numel("load", {0, 1LL << 40, 1LL << 40}), Error);
  CHECK(checked_numel("f", {INT64_MAX}) == INT64_MAX);
  CHECK_THROWS_AS(checked_nbytes("empty", {INT64_MAX}, 2), Error);
  CHECK(checked_nbytes("empty", {3}, 8) == 24);
  CHECK_THROWS_AS(checked_mul("Linear", 1LL << 32, 1LL << 32), Error);
  CHECK_THROWS_AS(checked_mul("f", -1, 2), Error);
  CHECK_THROWS_AS(checked_add("narrow", 1, INT64_MAX), Error);
  CHECK(checked_add("f", -3, 5) == 2);
}

TEST_CASE("wrap_dim: a 0-d tensor has no dims; wrap_dim_scalar_ok lets reductions take 0 and -1") {
  CHECK_THROWS_WITH_AS(wrap_dim("size", 0, 0), "size: dim 0 given for a 0-d tensor, which has no dims", Error);
  CHECK_THROWS_AS(wrap_dim("select", -1, 0), Error);
  CHECK(wrap_dim("f", -1, 3) == 2);
  CHECK_THROWS_AS(wrap_dim("f", 3, 3), Error);
  CHECK(wrap_dim_scalar_ok("sum", 0, 0) == 0);
  CHECK(wrap_dim_scalar_ok("sum", -1, 0) == 0);
  CHECK_THROWS_AS(wrap_dim_scalar_ok("sum", 1, 0), Error);
}
