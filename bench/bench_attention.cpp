// bench_attention.cpp: attention forward + backward, composite (heed ops, (T, T) matrices) against the
// fused kernel (tensor/kernels/flash_attention.h, O(T·D) memory), and local attention's linear scaling in T.
//
// Every benchmark reports, besides the time, `peak_MiB`: the most bytes held by live Storages during one
// forward + backward, above what was live before it (memory_stats() in tensor/tensor.h; workspace that
// is not a Storage, such as the fused kernel's per-thread tiles of a few KiB, is not counted).
//
//   BM_attention/{composite,fused}/B/NH/T/D   causal self-attention, float32
//   BM_local_attention/T                      window 128, D 64, one head, float32; us_per_token should stay
//                                             flat as T grows 1k -> 16k if the cost is O(T·w)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>

#include "heed.h"
#include "nn/attention.h"

using namespace heed;

namespace {

void set_peak(benchmark::State& state, int64_t peak) { state.counters["peak_MiB"] = (double)peak / (1024.0 * 1024.0); }

void BM_attention(benchmark::State& state, nn::AttentionImpl impl) {
  const int64_t B = state.range(0), NH = state.range(1), T = state.range(2), D = state.range(3);
  Generator gen(1);
  Tensor q = randn({B, NH, T, D}, float32, &gen).requires_grad_();
  Tensor k = randn({B, NH, T, D}, float32, &gen).requires_grad_();
  Tensor v = randn({B, NH, T, D}, float32, &gen).requires_grad_();
  Tensor dout = randn({B, NH, T, D}, float32, &gen);
  int64_t peak = 0;
  for (auto _ : state) {
    int64_t before = memory_stats().current;
    reset_peak_memory();
    Tensor out = nn::scaled_dot_product_attention(q, k, v, {.causal = true, .impl = impl}).out;
    out.backward(dout);
    peak = std::max(peak, memory_stats().peak - before);
    q.set_grad(Tensor()), k.set_grad(Tensor()), v.set_grad(Tensor());
    benchmark::DoNotOptimize(out);
  }
  set_peak(state, peak);
}

void BM_local_attention(benchmark::State& state) {
  const int64_t T = state.range(0), w = 128, D = 64;
  Generator gen(2);
  Tensor q = randn({1, T, D}, float32, &gen).requires_grad_();
  Tensor k = randn({1, T, D}, float32, &gen).requires_grad_();
  Tensor v = randn({1, T, D}, float32, &gen).requires_grad_();
  Tensor dout = randn({1, T, D}, float32, &gen);
  int64_t peak = 0;
  double seconds = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    int64_t before = memory_stats().current;
    reset_peak_memory();
    Tensor out = nn::local_attention(q, k, v, w);
    out.backward(dout);
    peak = std::max(peak, memory_stats().peak - before);
    q.set_grad(Tensor()), k.set_grad(Tensor()), v.set_grad(Tensor());
    benchmark::DoNotOptimize(out);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  set_peak(state, peak);
  // Time per query position: flat across T means linear total cost.
  state.counters["us_per_token"] = seconds * 1e6 / (double)state.iterations() / (double)T;
}

}  // namespace

// The attn_long shape (d_model 256, 8 heads of 32) at T = 2048, and a short-sequence batch.
BENCHMARK_CAPTURE(BM_attention, composite, nn::AttentionImpl::Composite)
    ->Args({1, 8, 2048, 32})->Args({16, 8, 128, 32})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_attention, fused, nn::AttentionImpl::Fused)
    ->Args({1, 8, 2048, 32})->Args({16, 8, 128, 32})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_local_attention)->Arg(1024)->Arg(4096)->Arg(16384)->Unit(benchmark::kMillisecond)->UseRealTime();
