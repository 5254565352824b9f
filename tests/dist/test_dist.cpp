// Tests for dist/dist.h: each collective against a hand computation, at odd sizes and size 0, in every
// dtype, on contiguous tensors and strided views; the error paths.
//
// Every case here runs twice in the suite: alone, as an ordinary ctest entry (a world of one, where MPI
// is never started), and under `mpirun -np 2` (ctest entry dist_np2, cmake/HeedMpiTests.cmake). The
// expected values are written for any world size p, so the same lines check both. All ranks run the
// same cases in the same order, as collectives require; the names start with "dist:" for that filter.
#include "dist/dist.h"

#include <doctest/doctest.h>

#include "heed.h"

using namespace heed;

namespace {

const int64_t kSizes[] = {0, 1, 7, 17, 1023};

// Rank r's value at element i: distinct across ranks and elements, exact in float32 (< 2^24).
double value_at(int r, int64_t i) { return 1000.0 * r + (double)(i % 997); }

Tensor rank_tensor(int r, int64_t n, DType dtype) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = value_at(r, i);
  return from_vector(v, {n}).to(dtype);
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector<double>() == b.to_vector<double>();
}

}  // namespace

TEST_CASE("dist: the world") {
  const int p = dist::world_size(), r = dist::rank();
  CHECK(p >= 1);
  CHECK(r >= 0);
  CHECK(r < p);
  CHECK(dist::local_rank() >= 0);
  CHECK(dist::local_rank() <= r);
  CHECK(dist::is_distributed() == (p > 1));
  if (p > 1) CHECK(dist::mpi_available());
  dist::barrier();
}

TEST_CASE("dist: all_reduce Sum, Avg, Max, Min by hand, sizes 0 to 1023, every dtype") {
  const int p = dist::world_size(), r = dist::rank();
  for (DType dtype : {float32, float64, int64})
    for (int64_t n : kSizes)
      for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max, dist::ReduceOp::Min}) {
        if (op == dist::ReduceOp::Avg && dtype == int64) continue;
        CAPTURE(dtype_name(dtype));
        CAPTURE(n);
        Tensor t = rank_tensor(r, n, dtype);
        dist::all_reduce(t, op);
        REQUIRE(t.shape() == Shape{n});
        REQUIRE(t.dtype() == dtype);
        for (int64_t i = 0; i < n; ++i) {
          double sum = 0;
          for (int q = 0; q < p; ++q) sum += value_at(q, i);
          const double want = op == dist::ReduceOp::Sum ? sum
                              : op == dist::ReduceOp::Avg ? sum / p
                              : op == dist::ReduceOp::Max ? value_at(p - 1, i)
                                                          : value_at(0, i);
          CHECK(t.at({i}) == doctest::Approx(want).epsilon(1e-6));
        }
      }
}

TEST_CASE("dist: all_reduce on a strided view writes the view in place, and bumps the version") {
  const int p = dist::world_size(), r = dist::rank();
  Tensor base = zeros({5, 3});
  Tensor view = base.transpose(0, 1).narrow(0, 1, 1);  // (1,5): column 1 of base, stride 3
  view.copy_(full({1, 5}, (double)(r + 1)));
  const uint64_t before = base.storage()->version;
  dist::all_reduce(view, dist::ReduceOp::Sum);
  if (p > 1) CHECK(base.storage()->version > before);  // a world of one writes nothing
  for (int64_t i = 0; i < 5; ++i) {
    CHECK(base.at({i, 1}) == p * (p + 1) / 2);  // 1 + 2 + ... + p
    CHECK(base.at({i, 0}) == 0);                // the rest of base untouched
    CHECK(base.at({i, 2}) == 0);
  }
}

TEST_CASE("dist: all_reduce of one number") {
  const int p = dist::world_size(), r = dist::rank();
  CHECK(dist::all_reduce((double)r, dist::ReduceOp::Sum) == p * (p - 1) / 2);
  CHECK(dist::all_reduce(2.0 * r, dist::ReduceOp::Avg) == doctest::Approx(p - 1.0));
  CHECK(dist::all_reduce((double)r, dist::ReduceOp::Max) == p - 1);
}

TEST_CASE("dist: broadcast from every source, sizes 0 to 1023") {
  const int p = dist::world_size(), r = dist::rank();
  for (int src = 0; src < p; ++src)
    for (DType dtype : {float32, float64, int64})
      for (int64_t n : kSizes) {
        Tensor t = rank_tensor(r, n, dtype);
        dist::broadcast(t, src);
        CHECK(same_values(t, rank_tensor(src, n, dtype)));
      }
  Tensor m = zeros({4, 6});
  Tensor col = m.slice(1, 0, 6, 2);  // every other column: a strided view
  col.fill_(r == 0 ? 7.0 : -1.0);
  dist::broadcast(col, 0);
  CHECK(m.sum().item() == 7.0 * 12);
}

TEST_CASE("dist: all_gather, sizes 0 to 1023 and a 2-D tensor") {
  const int p = dist::world_size(), r = dist::rank();
  for (DType dtype : {float32, float64, int64})
    for (int64_t n : kSizes) {
      std::vector<Tensor> list{ones({3})};  // replaced, not appended to
      dist::all_gather(list, rank_tensor(r, n, dtype));
      REQUIRE(list.size() == (size_t)p);
      for (int q = 0; q < p; ++q) CHECK(same_values(list[q], rank_tensor(q, n, dtype)));
    }
  std::vector<Tensor> list;
  dist::all_gather(list, full({2, 3}, (double)r).transpose(0, 1));
  REQUIRE(list.size() == (size_t)p);
  for (int q = 0; q < p; ++q) {
    CHECK(list[q].shape() == Shape{3, 2});
    CHECK(list[q].sum().item() == 6.0 * q);
  }
}

TEST_CASE("dist: all_reduce_async completes on wait, and several can be in flight") {
  const int p = dist::world_size(), r = dist::rank();
  std::vector<Tensor> ts;
  std::vector<dist::Work> works;
  for (int64_t n : kSizes) {
    ts.push_back(rank_tensor(r, n, float32));
    works.push_back(dist::all_reduce_async(ts.back(), dist::ReduceOp::Avg));
  }
  for (auto& w : works) w.wait();
  for (size_t k = 0; k < ts.size(); ++k)
    for (int64_t i = 0; i < ts[k].numel(); ++i) {
      double sum = 0;
      for (int q = 0; q < p; ++q) sum += value_at(q, i);
      CHECK(ts[k].at({i}) == doctest::Approx(sum / p));
    }
  CHECK(works[0].is_completed());
  dist::barrier();
}

TEST_CASE("dist: errors name the op and the tensor") {
  Tensor undefined;
  CHECK_THROWS_AS(dist::all_reduce(undefined), Error);
  Tensor flags = zeros({3}).to(DType::Bool);
  CHECK_THROWS_WITH_AS(dist::all_reduce(flags), doctest::Contains("all_reduce: bool tensors"), Error);
  Tensor ints = zeros({3}, int64);
  CHECK_THROWS_WITH_AS(dist::all_reduce(ints, dist::ReduceOp::Avg), doctest::Contains("needs a float tensor"), Error);
  Tensor t = zeros({3});
  CHECK_THROWS_WITH_AS(dist::broadcast(t, dist::world_size()), doctest::Contains("is not a rank"), Error);
  CHECK_THROWS_AS(dist::broadcast(t, -1), Error);
  Tensor strided = zeros({4, 4}).transpose(0, 1);
  CHECK_THROWS_WITH_AS(dist::all_reduce_async(strided), doctest::Contains("must be contiguous"), Error);
  std::vector<Tensor> list;
  CHECK_THROWS_AS(dist::all_gather(list, undefined), Error);
}
