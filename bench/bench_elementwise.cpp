// bench_elementwise.cpp: the row kernels of tensor/kernels/simd.h, SIMD against the scalar reference.
//
// Elementwise ops run on one row of 1M floats (4 MB per operand, so add and mul mostly measure memory
// bandwidth, while exp and gelu measure arithmetic). Reductions and softmax run row by row over a
// 1024x1024 float matrix, the shape a batch of attention scores or logits has.
//
// bytes/s counts every byte read and written; items/s counts elements.
#include "tensor/kernels/simd.h"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

using namespace heed::simd;

namespace {

constexpr int64_t kN = 1 << 20;      // elementwise row length
constexpr int64_t kRows = 1024;      // reductions: kRows x kCols
constexpr int64_t kCols = 1024;

std::vector<float> random_floats(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

void report(benchmark::State& state, int64_t elements, int64_t bytes_per_element) {
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * bytes_per_element);
}

// ---- elementwise ---------------------------------------------------------------------------------------

void BM_binary(benchmark::State& state, Binary op, bool simd) {
  const auto a = random_floats(kN, -2, 2, 1), b = random_floats(kN, 0.5f, 2, 2);
  std::vector<float> y(kN);
  for (auto _ : state) {
    if (simd) binary_simd(op, a.data(), 1, b.data(), 1, y.data(), kN);
    else binary_ref(op, a.data(), 1, b.data(), 1, y.data(), 1, kN);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, kN, 3 * sizeof(float));  // read a and b, write y
}

void BM_unary(benchmark::State& state, Unary op, bool simd) {
  // [-6, 6] covers both branches of gelu_erf and the tails of exp without overflowing it.
  const auto x = random_floats(kN, -6, 6, 3);
  std::vector<float> y(kN);
  for (auto _ : state) {
    if (simd) unary_simd(op, x.data(), y.data(), kN, {});
    else unary_ref(op, x.data(), 1, y.data(), 1, kN, {});
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, kN, 2 * sizeof(float));  // read x, write y
}

BENCHMARK_CAPTURE(BM_binary, add_simd, Binary::Add, true)->Name("add_1M/simd");
BENCHMARK_CAPTURE(BM_binary, add_ref, Binary::Add, false)->Name("add_1M/ref");
BENCHMARK_CAPTURE(BM_binary, mul_simd, Binary::Mul, true)->Name("mul_1M/simd");
BENCHMARK_CAPTURE(BM_binary, mul_ref, Binary::Mul, false)->Name("mul_1M/ref");
BENCHMARK_CAPTURE(BM_unary, exp_simd, Unary::Exp, true)->Name("exp_1M/simd");
BENCHMARK_CAPTURE(BM_unary, exp_ref, Unary::Exp, false)->Name("exp_1M/ref");
BENCHMARK_CAPTURE(BM_unary, gelu_erf_simd, Unary::GeluErf, true)->Name("gelu_erf_1M/simd");
BENCHMARK_CAPTURE(BM_unary, gelu_erf_ref, Unary::GeluErf, false)->Name("gelu_erf_1M/ref");
BENCHMARK_CAPTURE(BM_unary, gelu_tanh_simd, Unary::GeluTanh, true)->Name("gelu_tanh_1M/simd");
BENCHMARK_CAPTURE(BM_unary, gelu_tanh_ref, Unary::GeluTanh, false)->Name("gelu_tanh_1M/ref");

// ---- row reductions over a 1024x1024 matrix ---------------------------------------------------------------

template <bool Simd>
void BM_sum_rows(benchmark::State& state) {
  const auto x = random_floats(kRows * kCols, -1, 1, 4);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      const float* row = x.data() + r * kCols;
      out[r] = Simd ? sum_simd(row, kCols) : sum_ref(row, 1, kCols);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state, kRows * kCols, sizeof(float));
}

template <bool Simd>
void BM_softmax_rows(benchmark::State& state) {
  const auto x = random_floats(kRows * kCols, -8, 8, 5);
  std::vector<float> y(kRows * kCols);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      const float* row = x.data() + r * kCols;
      float* out = y.data() + r * kCols;
      if constexpr (Simd) softmax_row_simd(row, out, kCols, false);
      else softmax_row_ref(row, out, kCols, false);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, kRows * kCols, 2 * sizeof(float));
}

BENCHMARK_TEMPLATE(BM_sum_rows, true)->Name("sum_rows_1024x1024/simd");
BENCHMARK_TEMPLATE(BM_sum_rows, false)->Name("sum_rows_1024x1024/ref");
BENCHMARK_TEMPLATE(BM_softmax_rows, true)->Name("softmax_rows_1024x1024/simd");
BENCHMARK_TEMPLATE(BM_softmax_rows, false)->Name("softmax_rows_1024x1024/ref");

}  // namespace
