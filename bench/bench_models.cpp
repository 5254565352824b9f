// bench_models.cpp: heed's side of every model-level workload in bench/torch_ref.py, with the same
// shapes, the same optimizer and the same step (forward, backward, update). bench/compare.py runs both
// and prints the ratio. Names match torch_ref.py's keys: BM_<workload>.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <fstream>

#include "heed.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim/optim.h"
#include "nn/transformer.h"
#include "bench/models.h"

using namespace heed;
using namespace heed::nn;
using namespace heed::bench;

// Resident memory now (from /proc) and the process's peak so far (getrusage), in MB.
static double rss_now_mb() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  f >> pages_total >> pages_resident;
  return (double)pages_resident * 4096.0 / 1e6;
}
static double rss_peak_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_maxrss * 1024.0 / 1e6;
}

// Peak memory of a step workload, "peak RSS above baseline" as attn_long's: the process's peak resident
// memory minus its resident memory when the benchmark function was first called, before the model was built
// (bench/main.cpp has loaded OpenBLAS by then, as `import torch` has on PyTorch's side). It covers the
// parameters, optimizer state, inputs and the step's own tensors, and means something only when the
// benchmark runs alone in its process: bench/compare.py runs each workload so for its memory rows.
static void report_peak_rss(benchmark::State& state, double rss_base) {
  state.counters["peak_rss_above_base_MB"] = rss_peak_mb() - rss_base;
}

// ---- mha_step: MHA B16 T128 d256 h8, Adam ------------------------------------------------------------
static void BM_mha_step(benchmark::State& state) {
  static const double rss_base = rss_now_mb();
  manual_seed(0);
  const int64_t B = 16, T = 128, d = 256, h = 8;
  MultiheadAttention m(d, h, {.batch_first = true});
  Tensor x = randn({B, T, d}).requires_grad_();
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  for (auto _ : state) {
    opt.zero_grad();
    x.set_grad(Tensor());
    Tensor y = m.forward(x, x, x).out;
    y.square().mean().backward();
    opt.step();
  }
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_mha_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// ---- vae_step: pytorch/examples' VAE 784-400-20, B128, Adam --------------------------------------------
// struct VAE: bench/models.h

static void BM_vae_step(benchmark::State& state) {
  static const double rss_base = rss_now_mb();
  manual_seed(0);
  VAE m;
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  Tensor x = rand({128, 784});
  for (auto _ : state) {
    opt.zero_grad();
    Tensor hdn = relu(m.fc1(x));
    Tensor mu = m.mu(hdn), lv = m.lv(hdn);
    Tensor z = mu + randn_like(mu) * exp(0.5 * lv);
    Tensor r = sigmoid(m.fc4(relu(m.fc3(z))));
    Tensor loss =
        binary_cross_entropy(r, x, {.reduction = Reduction::Sum}) - 0.5 * sum(1.0 + lv - mu.square() - exp(lv));
    loss.backward();
    opt.step();
  }
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_vae_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// ---- gan_step: MLP GAN on 28x28, B64, one D step and one G step --------------------------------------------
static void BM_gan_step(benchmark::State& state) {
  static const double rss_base = rss_now_mb();
  manual_seed(0);
  const int64_t B = 64, Z = 100;
  Sequential G, D;
  G.add<Linear>(Z, 256), G.add<LeakyReLU>(0.2), G.add<Linear>(256, 512), G.add<LeakyReLU>(0.2), G.add<Linear>(512, 784),
      G.add<Tanh>();
  D.add<Linear>(784, 512), D.add<LeakyReLU>(0.2), D.add<Linear>(512, 256), D.add<LeakyReLU>(0.2), D.add<Linear>(256, 1);
  optim::Adam og(G.parameters(), {.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999});
  optim::Adam od(D.parameters(), {.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999});
  Tensor real = rand({B, 784}) * 2.0 - 1.0;
  Tensor ones_ = ones({B, 1}), zeros_ = zeros({B, 1});
  for (auto _ : state) {
    od.zero_grad();
    Tensor fake = G(randn({B, Z}));
    (binary_cross_entropy_with_logits(D(real), ones_) + binary_cross_entropy_with_logits(D(fake.detach()), zeros_))
        .backward();
    od.step();
    og.zero_grad();
    binary_cross_entropy_with_logits(D(fake), ones_).backward();
    og.step();
  }
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_gan_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// ---- gpt_step: char GPT, 4 pre-LN blocks, d128, 4 heads, T64, B32, vocabulary 96, AdamW --------------------
// struct GPT: bench/models.h

static void BM_gpt_step(benchmark::State& state) {
  static const double rss_base = rss_now_mb();
  manual_seed(0);
  const int64_t B = 32, T = 64, d = 128, h = 4, L = 4, V = 96;
  GPT m(V, T, d, h, L);
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  Tensor idx = randint(0, V, {B, T}), tgt = randint(0, V, {B, T});
  for (auto _ : state) {
    opt.zero_grad();
    cross_entropy(m.forward(idx).reshape({-1, V}), tgt.reshape({-1})).backward();
    opt.step();
  }
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_gpt_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// ---- conv_ae_step: a small convolutional autoencoder on 28x28, B64 --------------------------------------------
static void BM_conv_ae_step(benchmark::State& state) {
  static const double rss_base = rss_now_mb();
  manual_seed(0);
  Sequential enc, dec;
  enc.add<Conv2d>(1, 32, 3, Conv2d::Config{.stride = 2, .padding = 1}), enc.add<ReLU>();
  enc.add<Conv2d>(32, 64, 3, Conv2d::Config{.stride = 2, .padding = 1}), enc.add<ReLU>();
  dec.add<ConvTranspose2d>(64, 32, 4, ConvTranspose2d::Config{.stride = 2, .padding = 1}), dec.add<ReLU>();
  dec.add<ConvTranspose2d>(32, 1, 4, ConvTranspose2d::Config{.stride = 2, .padding = 1}), dec.add<Sigmoid>();
  std::vector<Tensor> params = enc.parameters();
  for (Tensor& p : dec.parameters()) params.push_back(p);
  optim::Adam opt(params, {.lr = 1e-3});
  Tensor x = rand({64, 1, 28, 28});
  for (auto _ : state) {
    opt.zero_grad();
    mse_loss(dec(enc(x)), x).backward();
    opt.step();
  }
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_conv_ae_step)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// ---- attn_long: causal MHA at B1 T2048 d256 h8, forward + backward, no optimizer; peak memory ------------------
static void BM_attn_long(benchmark::State& state) {
  static const double rss_base = rss_now_mb();  // see report_peak_rss
  manual_seed(0);
  const int64_t T = 2048, d = 256, h = 8;
  MultiheadAttention m(d, h, {.batch_first = true});
  Tensor x = randn({1, T, d}).requires_grad_();
  int64_t peak = 0;
  for (auto _ : state) {
    reset_peak_memory();
    int64_t base = memory_stats().current;
    Tensor y = m.forward(x, x, x, {.causal = true}).out;
    y.square().mean().backward();
    peak = std::max(peak, memory_stats().peak - base);
    m.zero_grad();
    x.set_grad(Tensor());
  }
  state.counters["peak_tensor_MB"] = (double)peak / 1e6;
  report_peak_rss(state, rss_base);
}
BENCHMARK(BM_attn_long)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
