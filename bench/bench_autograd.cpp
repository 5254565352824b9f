// bench_autograd.cpp: the cost of the framework itself. 1,000 chained ops on one-element tensors,
// forward plus backward: the arithmetic is nothing, so the time is heed's bookkeeping (allocating a
// tensor, recording a node, running its closure). Small-model training steps live or die on it.
// PyTorch's number for the same chain comes from bench/torch_ref.py --only overhead.
#include <benchmark/benchmark.h>

#include "heed.h"

using namespace heed;

static void BM_autograd_overhead(benchmark::State& state) {
  const int n_ops = 1000;
  Tensor x = scalar_tensor(0.5, float32).requires_grad_();
  Tensor c = scalar_tensor(1.0001, float32);
  for (auto _ : state) {
    Tensor y = x;
    // alternate mul and add so that neither gets special treatment
    for (int i = 0; i < n_ops / 2; i++) y = (y * c) + c;
    y.backward();
    x.set_grad(Tensor());
    benchmark::DoNotOptimize(y);
  }
  state.counters["time_per_op"] =
      benchmark::Counter(n_ops, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert,
                         benchmark::Counter::OneK::kIs1000);
}
BENCHMARK(BM_autograd_overhead)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_forward_overhead_nograd(benchmark::State& state) {
  const int n_ops = 1000;
  Tensor x = scalar_tensor(0.5, float32), c = scalar_tensor(1.0001, float32);
  for (auto _ : state) {
    Tensor y = x;
    for (int i = 0; i < n_ops / 2; i++) y = (y * c) + c;
    benchmark::DoNotOptimize(y);
  }
  state.counters["time_per_op"] =
      benchmark::Counter(n_ops, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert,
                         benchmark::Counter::OneK::kIs1000);
}
BENCHMARK(BM_forward_overhead_nograd)->Unit(benchmark::kMillisecond)->UseRealTime();
