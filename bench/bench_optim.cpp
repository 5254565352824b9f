// bench_optim.cpp: one Adam step on 1M float32 parameters, three ways, and the fused cross-entropy.
//
//   BM_adam_kernel/{simd,reference}          the update loop alone on one thread: xsimd vs the scalar loop
//   BM_adam_step/{simd,reference}            optim::Adam::step(), which also splits a large parameter
//                                            into chunks over the OpenMP threads
//   BM_adam_step/tensor_ops                  the same update as a chain of heed tensor ops, one sweep over
//                                            memory per op, the way a framework without fused optimizers
//                                            (or PyTorch's for-loop Adam) runs it
//   BM_cross_entropy/{fused,composite}       forward + backward of nn::cross_entropy vs the composite
//
// Adam reads p, g, m, v and writes p, m, v: 28 bytes per float32 parameter. bytes/s counts those 28 bytes
// for every variant, so it is the *useful* bandwidth; the tensor-op chain moves several times more.
// Times are wall-clock (UseRealTime), since step() and the tensor ops run on OpenMP threads.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "heed.h"
#include "nn/loss.h"
#include "nn/optim/optim.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/optim.h"

using namespace heed;

namespace {

constexpr int64_t kParams = 1 << 20;
constexpr int64_t kAdamBytes = 7 * sizeof(float);

const kernels::AdamScalars kScalars{0.9, 0.999, 1e-8, 0.0, 1.0, 1e-3 / (1 - 0.9), std::sqrt(1 - 0.999),
                                    false, false};

void BM_adam_kernel(benchmark::State& state, bool simd) {
  Generator gen(1);
  std::vector<float> p = randn({kParams}, float32, &gen).to_vector<float>();
  std::vector<float> g = randn({kParams}, float32, &gen).to_vector<float>();
  std::vector<float> m(kParams), v(kParams);
  for (auto _ : state) {
    float* none = nullptr;  // no max_exp_avg_sq without amsgrad
    if (simd) kernels::adam_update_simd(p.data(), g.data(), m.data(), v.data(), none, kParams, kScalars);
    else kernels::adam_update_ref(p.data(), g.data(), m.data(), v.data(), none, kParams, kScalars);
    benchmark::DoNotOptimize(p.data());
  }
  state.SetBytesProcessed(state.iterations() * kParams * kAdamBytes);
}
BENCHMARK_CAPTURE(BM_adam_kernel, simd, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_adam_kernel, reference, false)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_adam_step(benchmark::State& state, bool simd) {
  Generator gen(1);
  Tensor p = randn({kParams}, float32, &gen).requires_grad_();
  p.set_grad(randn({kParams}, float32, &gen));
  optim::Adam opt({p}, {.lr = 1e-3});
  kernels::set_use_simd(simd);
  for (auto _ : state) opt.step();
  kernels::set_use_simd(true);
  state.SetBytesProcessed(state.iterations() * kParams * kAdamBytes);
}
BENCHMARK_CAPTURE(BM_adam_step, simd, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_adam_step, reference, false)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Adam without weight decay or amsgrad, written as PyTorch's _single_tensor_adam writes it: every line
// below is at least one full pass over a 4 MB array, and most allocate a new one.
void BM_adam_tensor_ops(benchmark::State& state) {
  Generator gen(1);
  Tensor p = randn({kParams}, float32, &gen), g = randn({kParams}, float32, &gen);
  Tensor m = zeros({kParams}), v = zeros({kParams});
  const double b1 = 0.9, b2 = 0.999, lr = 1e-3, eps = 1e-8;
  int64_t step = 0;
  NoGradGuard no_grad;
  for (auto _ : state) {
    step++;
    double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    m.mul_(b1).add_(g, 1 - b1);
    v.mul_(b2).add_(g * g, 1 - b2);
    Tensor denom = sqrt(v) / std::sqrt(bc2) + eps;
    p.add_(m / denom, -lr / bc1);
  }
  state.SetBytesProcessed(state.iterations() * kParams * kAdamBytes);
}
BENCHMARK(BM_adam_tensor_ops)->Name("BM_adam_step/tensor_ops")->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- cross-entropy: the fused (N,C) kernel against log_softmax + gather + masks ---------------------------------
void BM_cross_entropy(benchmark::State& state, bool fused) {
  const int64_t N = state.range(0), C = state.range(1);
  Generator gen(2);
  Tensor logits = randn({N, C}, float32, &gen).requires_grad_();
  Tensor labels = randint(0, C, {N}, &gen);
  for (auto _ : state) {
    Tensor loss = fused ? nn::cross_entropy(logits, labels) : nn::cross_entropy_composite(logits, labels);
    loss.backward();
    logits.set_grad(Tensor());
  }
  state.SetItemsProcessed(state.iterations() * N * C);
}
// (N, C): a small classifier batch, and language-model logits over a 32k vocabulary.
BENCHMARK_CAPTURE(BM_cross_entropy, fused, true)
    ->Args({256, 10})
    ->Args({64, 32768})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_cross_entropy, composite, false)
    ->Args({256, 10})
    ->Args({64, 32768})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
