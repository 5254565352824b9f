// Tests for tensor/parallel.h: the thread count of a region (the cap the user sets, and the adaptive
// decision, fed with injected /proc readings rather than the real machine), and an exception thrown inside
// an OpenMP region reaching the caller instead of calling std::terminate (issue 15).
#include <doctest/doctest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "heed.h"
#include "tensor/kernels/blas.h"
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

// ---- the thread count -----------------------------------------------------------------------------------

namespace {

// Restores the cap, the adaptive switch and the /proc reader after a test.
struct ThreadSettings {
  int cap = get_num_threads();
  bool adaptive = adaptive_threads();
  ~ThreadSettings() {
    set_num_threads(cap);
    set_adaptive_threads(adaptive);
    detail::set_cpu_reader(nullptr);
  }
};

// A scripted machine of 2 cores: each reading advances the clock by 0.1 s, in which the cores were busy
// for g_busy seconds in all, g_own of them this process's.
double g_busy = 0, g_own = 0;
int g_reads = 0;
detail::CpuTimes g_now;
bool fake_reader(detail::CpuTimes& out) {
  g_reads++;
  g_now.wall += 0.1;
  g_now.busy += g_busy;
  g_now.own += g_own;
  g_now.cores = 2;
  out = g_now;
  return true;
}
bool failing_reader(detail::CpuTimes&) { return false; }

// Forces `n` readings and returns the last decision.
int readings(int n) {
  int free = 0;
  for (int i = 0; i < n; i++) free = detail::update_free_cores(true);
  return free;
}

// The team size of a region written as heed writes them.
int team_size() {
  int n = 0;
#pragma omp parallel num_threads(parallel_threads())
  {
#pragma omp single
    n = omp_get_num_threads();
  }
  return n;
}

}  // namespace

TEST_CASE("free_cores: a core is free when other processes used less than a quarter of it") {
  CHECK(detail::free_cores(2, 0.0) == 2);
  CHECK(detail::free_cores(2, 0.2) == 2);
  CHECK(detail::free_cores(2, 0.3) == 1);
  CHECK(detail::free_cores(2, 1.0) == 1);
  CHECK(detail::free_cores(2, 7.5) == 1);  // never below one: the caller's own thread always runs
  CHECK(detail::free_cores(2, -0.1) == 2);  // a reading that rounds below zero is an idle machine
  CHECK(detail::free_cores(8, 3.0) == 5);
  CHECK(detail::free_cores(1, 0.0) == 1);
}

TEST_CASE("parallel_threads follows injected readings, and set_num_threads stays the upper bound") {
  ThreadSettings restore;
  set_adaptive_threads(true);
  set_num_threads(2);
  g_busy = 0, g_own = 0;
  detail::set_cpu_reader(fake_reader);
  // Until two readings exist the load is unknown: one thread.
  CHECK(detail::update_free_cores(true) == 1);
  CHECK(parallel_threads() == 1);

  SUBCASE("an idle machine: both cores, once five readings in a row agree, and a region gets a team of 2") {
    g_busy = 0.1, g_own = 0.1;  // only this process ran
    CHECK(readings(4) == 1);
    CHECK(detail::update_free_cores(true) == 2);
    CHECK(parallel_threads() == 2);
    CHECK(team_size() == 2);
    set_num_threads(1);  // the user's count is an upper bound
    CHECK(parallel_threads() == 1);
    CHECK(team_size() == 1);
    set_num_threads(4);  // and more than the free cores gives the free cores
    CHECK(parallel_threads() == 2);
  }
  SUBCASE("another process keeps a core busy: one thread") {
    g_busy = 0.2, g_own = 0.1;
    CHECK(detail::update_free_cores(true) == 1);
    CHECK(parallel_threads() == 1);
    CHECK(team_size() == 1);
    // It stops: both cores come back after five quiet readings, and one busy reading takes one away at once.
    g_busy = 0.1, g_own = 0.1;
    CHECK(readings(5) == 2);
    CHECK(parallel_threads() == 2);
    g_busy = 0.2;
    CHECK(readings(1) == 1);
    // A quiet reading between busy ones does not bring the second core back.
    g_busy = 0.1;
    CHECK(readings(3) == 1);
    g_busy = 0.2;
    CHECK(readings(1) == 1);
    g_busy = 0.1;
    CHECK(readings(4) == 1);
    CHECK(readings(1) == 2);
  }
  SUBCASE("this process's own busy threads do not count as load") {
    g_busy = 0.2, g_own = 0.2;
    CHECK(readings(5) == 2);
  }
  SUBCASE("adaptive off: the count set, whatever the load") {
    g_busy = 0.2, g_own = 0.0;
    CHECK(detail::update_free_cores(true) == 1);
    set_adaptive_threads(false);
    CHECK(parallel_threads() == 2);
    CHECK(team_size() == 2);
  }
  SUBCASE("readings are taken at most every 100 ms, and never inside a region") {
    g_busy = 0.1, g_own = 0.1;
    CHECK(readings(5) == 2);
    const int reads = g_reads;
    for (int i = 0; i < 100; i++) CHECK(parallel_threads() == 2);
    int inner = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      inner = parallel_threads();
    }
    CHECK(inner == 2);
    CHECK(g_reads == reads);
  }
}

TEST_CASE("parallel_threads without /proc: the count set, no adapting") {
  ThreadSettings restore;
  set_adaptive_threads(true);
  set_num_threads(3);
  detail::set_cpu_reader(failing_reader);
  detail::update_free_cores(true);
  CHECK(parallel_threads() == 3);
  CHECK(team_size() == 3);
}

TEST_CASE("set_num_threads: the count is honoured, and 0 is refused") {
  ThreadSettings restore;
  set_adaptive_threads(false);
  for (int n : {1, 3, 2}) {
    set_num_threads(n);
    CHECK(get_num_threads() == n);
    CHECK(parallel_threads() == n);
    CHECK(team_size() == n);
  }
  CHECK_THROWS_WITH_AS(set_num_threads(0), "set_num_threads: need n >= 1, got 0", Error);
}

TEST_CASE("gemm on 1, 2 and 3 threads, and nested in a region, agrees with gemm_ref and repeats bitwise") {
  ThreadSettings restore;
  set_adaptive_threads(false);
  // Sizes that cut into uneven panels, by rows (M > N) and by columns (N > M), transposed or not.
  struct Case {
    bool ta, tb;
    int64_t M, N, K;
  };
  for (Case c : {Case{false, false, 333, 129, 77}, Case{true, false, 65, 301, 90}, Case{false, true, 1023, 17, 129},
                 Case{true, true, 200, 200, 200}}) {
    const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
    std::vector<double> A(c.M * c.K), B(c.K * c.N), ref(c.M * c.N, 1.0);
    for (size_t i = 0; i < A.size(); i++) A[i] = std::sin((double)i);
    for (size_t i = 0; i < B.size(); i++) B[i] = std::cos((double)i);
    blas::gemm_ref<double>(c.ta, c.tb, c.M, c.N, c.K, 0.5, A.data(), lda, B.data(), ldb, 2.0, ref.data(), c.N);
    auto run = [&] {
      std::vector<double> C(c.M * c.N, 1.0);
      blas::gemm<double>(c.ta, c.tb, c.M, c.N, c.K, 0.5, A.data(), lda, B.data(), ldb, 2.0, C.data(), c.N);
      return C;
    };
    auto check_close = [&](const std::vector<double>& C) {
      double diff = 0;
      for (size_t i = 0; i < C.size(); i++) diff = std::max(diff, std::abs(C[i] - ref[i]));
      CHECK(diff < 1e-10);
    };
    for (int n : {1, 2, 3}) {
      set_num_threads(n);
      std::vector<double> C = run(), again = run();
      INFO("threads ", n, " M ", c.M, " N ", c.N, " K ", c.K);
      check_close(C);
      CHECK(std::memcmp(C.data(), again.data(), C.size() * sizeof(double)) == 0);
    }
    // Inside a region gemm is one call on the calling thread.
    set_num_threads(2);
    std::vector<double> nested;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      nested = run();
    }
    check_close(nested);
  }
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
