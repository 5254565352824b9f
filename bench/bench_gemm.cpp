// bench_gemm.cpp: square sgemm through heed's OpenBLAS loader, 1 and 2 threads.
//
// The number to watch is GFLOP/s at n=1024, 1 thread: it tells which OpenBLAS kernel family suits this CPU
// (tensor/kernels/blas.cpp picks one per CPU; bench/README.md, "The BLAS kernel per CPU", has the numbers
// behind each choice). The label shows which kernel ran.
//
// Counting: an (n,n) @ (n,n) product is n^3 multiply-adds, 2n^3 floating-point operations. The counter
// is 2n^3 / 1e9 per iteration, as a rate over wall-clock time, so the number printed IS GFLOP/s
// ("150.1/s" means 150.1 GFLOP/s). (Counting 2n^3 with kIs1000 instead would print FLOP/s with a "G"
// prefix under a GFLOP/s name.) Wall-clock, not CPU time, because OpenBLAS's worker threads do not
// show in the main thread's CPU time.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "tensor/kernels/blas.h"

namespace {

void BM_sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  // The thread count is process-wide state: put it back afterwards, or every benchmark that runs after
  // this one in the same process (bench/compare.py runs the model steps next) silently inherits it.
  const int threads_before = heed::get_num_threads();
  heed::set_num_threads((int)state.range(1));
  // Values in [-1,1], fixed: the timing does not depend on them, only on them being normal floats.
  std::vector<float> A(n * n), B(n * n), C(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    A[i] = std::sin(0.37f * (float)i);
    B[i] = std::cos(0.11f * (float)i);
  }
  for (auto _ : state) {
    heed::blas::gemm<float>(false, false, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * (double)n * (double)n * (double)n, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(heed::blas_summary());
  heed::set_num_threads(threads_before);
}

BENCHMARK(BM_sgemm)
    ->ArgsProduct({{128, 512, 1024}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- what a second thread costs (bench/README.md, "Two threads") ---------------------------------------------

// An empty parallel region of 2 threads: the fixed price of every kernel that splits its work.
void BM_parallel_region(benchmark::State& state) {
  int sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(2)
    {
#pragma omp atomic
      sink++;
    }
  }
  benchmark::DoNotOptimize(sink);
}
BENCHMARK(BM_parallel_region)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Two threads, each one (64, 256) @ (256, 256) sgemm at the same time, as gemm's two column panels of a
// (64, 256) @ (256, 512) product: C shared (each thread writes its half of every row of one (64, 512) C, as
// gemm does) or own (each writes a (64, 256) C of its own). A shared by both in either case. Arg 0 runs
// one thread alone, for the baseline.
void BM_sgemm_two_panels(benchmark::State& state) {
  const int64_t M = 64, K = 256, N = 512, half = N / 2;
  const int mode = (int)state.range(0);  // 0 alone, 1 shared C rows, 2 own C
  std::vector<float> A(M * K), B(K * N), C(M * N), C2(M * half);
  for (int64_t i = 0; i < M * K; ++i) A[i] = std::sin(0.37f * (float)i);
  for (int64_t i = 0; i < K * N; ++i) B[i] = std::cos(0.11f * (float)i);
  const int threads_before = heed::get_num_threads();
  heed::set_num_threads(1);  // for mode 0; in modes 1 and 2 each gemm runs inside the region, on its thread
  for (auto _ : state) {
    if (mode == 0) {
      heed::blas::gemm<float>(false, false, M, half, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
    } else {
#pragma omp parallel num_threads(2)
      {
        const int t = omp_get_thread_num();
        float* c = mode == 2 && t == 1 ? C2.data() : C.data() + t * half;
        const int64_t ldc = mode == 2 && t == 1 ? half : N;
        heed::blas::gemm<float>(false, false, M, half, K, 1.f, A.data(), K, B.data() + t * half, N, 0.f, c, ldc);
      }
    }
    benchmark::ClobberMemory();
  }
  heed::set_num_threads(threads_before);
  state.SetLabel(mode == 0 ? "one thread, one panel" : mode == 1 ? "2 threads, C rows shared" : "2 threads, own C");
}
BENCHMARK(BM_sgemm_two_panels)->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
