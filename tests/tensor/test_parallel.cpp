// Tests for tensor/parallel.h: an exception thrown inside an OpenMP region reaches the caller instead of
// calling std::terminate (issue 15).
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "heed.h"
#include "tensor/kernels/kernels.h"
#include "tensor/parallel.h"

using namespace heed;

TEST_CASE("ParallelGuard: the first exception of a parallel loop is rethrown after it, with its type") {
  ParallelGuard guard;
  std::atomic<int> ran{0};
#pragma omp parallel for schedule(static) num_threads(2)
  for (int i = 0; i < 1000; i++)
    guard.run([&] {
      ++ran;
      if (i == 500) throw Error("op: element 500 is bad");
    });
  CHECK(guard.failed());
  CHECK(ran.load() <= 1000);
  CHECK_THROWS_WITH_AS(guard.rethrow(), "op: element 500 is bad", Error);
}

TEST_CASE("ParallelGuard: a failed per-thread set-up still lets every thread reach the loop's barrier") {
  ParallelGuard guard;
#pragma omp parallel num_threads(2)
  {
    std::vector<double> scratch;
    const bool ok = guard.run([&] { scratch.resize(size_t(1) << 62); });  // bad_alloc (or length_error)
#pragma omp for schedule(static)
    for (int i = 0; i < 100; i++)
      if (ok) scratch[0] = i;
  }
  CHECK_THROWS_AS(guard.rethrow(), std::exception);
  ParallelGuard fine;
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 10; i++) fine.run([] {});
  CHECK_NOTHROW(fine.rethrow());
}

TEST_CASE("im2col: scratch too large for memory inside its parallel region is an error, not std::terminate") {
  // Each thread of the region pads one image into (H+2p)·(W+2p) elements of scratch: 2^42 floats for
  // p = 2^20, while the output stays (2, 4, 9) thanks to the stride. Before ParallelGuard the bad_alloc
  // escaped the OpenMP region and the process ended in std::terminate.
  Tensor x = ones({2, 1, 4, 4});
  kernels::Window2d w{.kh = 2, .kw = 2, .sh = 1 << 20, .sw = 1 << 20, .ph = 1 << 20, .pw = 1 << 20};
  CHECK_THROWS_WITH_AS(kernels::im2col(x, w), doctest::Contains("im2col: out of memory allocating 2097156x2097156"),
                       OutOfMemory);
  Tensor cols = zeros({2, 4, 9});
  CHECK_THROWS_WITH_AS(kernels::col2im(cols, 1, 4, 4, w), doctest::Contains("col2im: out of memory"), OutOfMemory);
}
