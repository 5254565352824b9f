// bench_dist.cpp: data-parallel training and the all-reduce under it (dist/). Run it under mpirun, one
// thread per rank, and read rank 0's report (bench/README.md, "Distributed"):
//
//   OMP_NUM_THREADS=1 mpirun -np 2 sh -c '[ $OMPI_COMM_WORLD_RANK = 0 ] || exec >/dev/null;
//       exec build/heed_bench --benchmark_filter=dist'
//
// Without mpirun the same benchmarks measure a world of one (the wrapper then does nothing), which is the
// np = 1 row. Every rank must run the same collectives the same number of times, so each benchmark has a
// fixed iteration count, not Google Benchmark's adaptive one, and starts with a barrier.
#include <benchmark/benchmark.h>

#include "bench/models.h"
#include "dist/ddp.h"
#include "nn/loss.h"
#include "nn/optim/optim.h"

using namespace heed;
using namespace heed::bench;

// ---- all-reduce: latency and bandwidth at the sizes of the zoo's gradients -------------------------------
// Sizes in float32 elements: 1 (latency), 1k, 64k, then the gradients of whole models: vae_step's VAE
// (0.65M), gpt_step's GPT (0.83M, near 1M), and 4M and 16M for larger models. bytes_per_second is the
// "algorithm bandwidth", the tensor's bytes over the time; the bus bandwidth (what the links carry) is
// 2(p-1)/p times that for a ring (docs/distributed.md).
static void BM_dist_all_reduce(benchmark::State& state) {
  Tensor t = ones({state.range(0)});
  dist::barrier();
  for (auto _ : state) dist::all_reduce(t, dist::ReduceOp::Avg);
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
  state.counters["ranks"] = dist::world_size();
}
BENCHMARK(BM_dist_all_reduce)->Arg(1)->Arg(1 << 10)->Arg(1 << 16)->Arg(652824)->Arg(1 << 20)->Arg(1 << 22)->Arg(1 << 24)
    ->Iterations(40)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- training steps under DistributedDataParallel ------------------------------------------------------------
// Args: {bucket cap in KiB, overlap}. The global batch is fixed (vae_step's 128, gpt_step's 32) and split
// over the ranks, so items_per_second is the whole job's samples per second, comparable across np.
static dist::DDPOptions ddp_options(const benchmark::State& state) {
  return {.bucket_cap_mb = state.range(0) / 1024.0, .overlap = state.range(1) != 0};
}

static void BM_dist_vae_step(benchmark::State& state) {
  manual_seed(0);
  VAE m;
  dist::DistributedDataParallel ddp(m, ddp_options(state));
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  const int64_t B = 128 / dist::world_size();
  Tensor x = rand({B, 784});
  dist::barrier();
  for (auto _ : state) {
    opt.zero_grad();
    Tensor hdn = relu(m.fc1(x));
    Tensor mu = m.mu(hdn), lv = m.lv(hdn);
    Tensor z = mu + randn_like(mu) * exp(0.5 * lv);
    Tensor r = sigmoid(m.fc4(relu(m.fc3(z))));
    Tensor loss = nn::binary_cross_entropy(r, x, {.reduction = nn::Reduction::Sum}) -
                  0.5 * sum(1.0 + lv - mu.square() - exp(lv));
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * 128);
  state.counters["ranks"] = dist::world_size();
  state.counters["buckets"] = (double)ddp.buckets().size();
}
BENCHMARK(BM_dist_vae_step)->Args({25 * 1024, 1})->Args({256, 1})->Args({256, 0})
    ->Iterations(300)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_dist_gpt_step(benchmark::State& state) {
  manual_seed(0);
  const int64_t B = 32 / dist::world_size(), T = 64, d = 128, h = 4, L = 4, V = 96;
  GPT m(V, T, d, h, L);
  dist::DistributedDataParallel ddp(m, ddp_options(state));
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  Tensor idx = randint(0, V, {B, T}), tgt = randint(0, V, {B, T});
  dist::barrier();
  for (auto _ : state) {
    opt.zero_grad();
    nn::cross_entropy(m.forward(idx).reshape({-1, V}), tgt.reshape({-1})).backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * 32);
  state.counters["ranks"] = dist::world_size();
  state.counters["buckets"] = (double)ddp.buckets().size();
}
BENCHMARK(BM_dist_gpt_step)->Args({25 * 1024, 1})->Args({256, 1})->Args({256, 0})
    ->Iterations(40)->Unit(benchmark::kMillisecond)->UseRealTime();
