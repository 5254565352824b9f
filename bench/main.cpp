// bench/main.cpp: the main() of heed_bench. The other files in bench/ hold only BENCHMARK()s.
//
// It is Google Benchmark's BENCHMARK_MAIN() plus one line first: which BLAS heed loaded and how many
// threads it runs. A matmul timing means little without it, and it is the first thing to compare when
// two machines disagree.
#include <benchmark/benchmark.h>

#include <iostream>

#include "tensor/kernels/blas.h"

int main(int argc, char** argv) {
  std::cout << heed::blas_summary() << std::endl;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
