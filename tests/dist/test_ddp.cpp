// Tests for dist/ddp.h: DistributedDataParallel gives the parameters of one process with the whole batch,
// its buckets, its buffers, and DistributedSampler's shards. Like tests/dist/test_dist.cpp, every case runs
// alone and under `mpirun -np 2` (ctest entry dist_np2), with expectations written for any world size.
#include "dist/ddp.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "data/data.h"
#include "heed.h"

using namespace heed;

namespace {

struct Net : nn::Module {
  nn::Linear fc1{10, 32}, fc2{32, 3};
  Net() { register_module("fc1", fc1), register_module("fc2", fc2); }
  Tensor forward(const Tensor& x) { return fc2(tanh(fc1(x))); }
};

double max_abs(const Tensor& t) { return max(abs(t)).item(); }

double max_abs_diff(const nn::Module& a, const nn::Module& b) {
  double d = 0;
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) d = std::max(d, max_abs(pa[i] - pb[i]));
  return d;
}

// Batch s of the run: 128 rows of x (128,10) and y (128,3), the same on every rank.
std::pair<Tensor, Tensor> batch(int64_t s) {
  Generator gen(1000 + s);
  Tensor x = randn({128, 10}, float32, &gen);
  return {x, tanh(x.narrow(1, 0, 3)) + 0.1 * randn({128, 3}, float32, &gen)};
}

constexpr int kSteps = 20;

// Adam on `net` for kSteps batches; each step trains on the rows `rows` of the 128 (all of them, or this
// rank's shard). The loss is the mean over those rows, so averaging gradients over the ranks' shards
// gives the gradient of the mean over all 128.
void train(Net& net, const std::vector<int64_t>& rows) {
  optim::Adam opt(net.parameters(), {.lr = 1e-2});
  Tensor index = from_vector(rows, {(int64_t)rows.size()});
  for (int64_t s = 0; s < kSteps; ++s) {
    auto [x, y] = batch(s);
    opt.zero_grad();
    nn::mse_loss(net.forward(index_select(x, 0, index)), index_select(y, 0, index)).backward();
    opt.step();
  }
}

}  // namespace

// The equivalence the issue asks for: p ranks with 128/p rows each (64 on two ranks) end with the
// parameters of one process that trains on all 128, after kSteps Adam steps.
//
// Why a tolerance, and why 1e-5. The two runs compute the same sums in different orders: one process sums
// the gradient over 128 rows in one reduction; p ranks each sum 128/p rows, then MPI adds the p partial
// sums. float32 addition is not associative, so each gradient element may differ in its last bits, a
// relative 1e-7 or so (float32's epsilon is 1.2e-7; a sum of 128 terms in heed's blocked kernels adds a
// few epsilons). Adam divides the first moment by the root of the second, so these relative errors pass
// into each step nearly unchanged: |Δθ| ≲ lr · (a few ε) per step, and after kSteps = 20 steps of lr 1e-2
// that is below 1e-7. Larger only when a gradient element is near zero (Adam's m/√v then swings), which
// a 1e-5 bound leaves room for; a wrong averaging (a sum instead of a mean, a missed bucket, one rank's
// gradient alone) moves the parameters by lr per step, 1e-2, three orders of magnitude above it.
// Measured on two ranks: the difference printed by this test (docs/distributed.md quotes it).
TEST_CASE("dist: DDP on p ranks with 128/p rows each equals one process with 128") {
  const int p = dist::world_size(), r = dist::rank();
  if (128 % p != 0) return;  // the shards must be equal for the mean of means to be the mean
  manual_seed(7);
  Net reference;
  std::vector<int64_t> all(128);
  for (int64_t i = 0; i < 128; ++i) all[i] = i;
  train(reference, all);

  struct Setting { double bucket_cap_mb; bool overlap; };
  for (Setting setting : {Setting{25, true}, Setting{0.0001, true}, Setting{0.0001, false}}) {
    CAPTURE(setting.bucket_cap_mb);
    CAPTURE(setting.overlap);
    manual_seed(7 + 100 * r);  // ranks start apart: the wrapper must broadcast rank 0's parameters
    Net net;
    dist::DistributedDataParallel ddp(net, {.bucket_cap_mb = setting.bucket_cap_mb, .overlap = setting.overlap});
    train(net, dist::DistributedSampler(128, {.shuffle = false}).indices(0));
    const double diff = max_abs_diff(net, reference);
    MESSAGE("max |θ_ddp - θ_one| after " << kSteps << " steps on " << p << " ranks: " << diff);
    CHECK(diff <= 1e-5);
    // And the ranks agree with each other exactly: they took the same steps from the same averaged gradients.
    for (const Tensor& w : net.parameters()) {
      std::vector<Tensor> copies;
      dist::all_gather(copies, w.detach());
      for (const Tensor& c : copies) CHECK(max_abs(c - w) == 0.0);
    }
  }
}

TEST_CASE("dist: DDP buckets run from the last parameter back, within the cap") {
  Net net;
  dist::DistributedDataParallel one_bucket(net);
  auto b = one_bucket.buckets();
  REQUIRE(b.size() == 1);
  CHECK(b[0] == std::vector<std::string>{"fc2.bias", "fc2.weight", "fc1.bias", "fc1.weight"});
  if (!dist::is_distributed()) return;  // a world of one builds no buckets
  Net net2;
  dist::DistributedDataParallel small(net2, {.bucket_cap_mb = 0.0001});  // 104 bytes: one parameter each
  CHECK(small.buckets().size() == 4);
  CHECK_THROWS_AS(dist::DistributedDataParallel(net2, {.bucket_cap_mb = 0}), Error);
}

TEST_CASE("dist: DDP broadcasts buffers, and synchronize() covers a parameter without gradient") {
  const int r = dist::rank();
  struct WithNorm : nn::Module {
    nn::Linear fc{4, 4}, unused{4, 4};
    nn::BatchNorm1d norm{4};
    WithNorm() { register_module("fc", fc), register_module("norm", norm), register_module("unused", unused); }
  };
  manual_seed(3 + r);
  WithNorm m;
  {
    NoGradGuard no_grad;
    m.norm.running_mean.fill_(r);  // rank-specific buffers, replaced by rank 0's at construction
  }
  dist::DistributedDataParallel ddp(m);
  CHECK(m.norm.running_mean.sum().item() == 0.0);
  Generator gen(50 + r);  // each rank its own data: batch statistics differ, so running stats would too
  Tensor x = randn({8, 4}, float32, &gen);
  m.norm(m.fc(x)).square().mean().backward();
  ddp.synchronize();  // `unused` got no gradient; without this call the averaging would wait for it
  std::vector<Tensor> means;
  dist::all_gather(means, m.norm.running_mean);
  for (const Tensor& t : means) CHECK(max_abs(t - m.norm.running_mean) == 0.0);
  if (dist::is_distributed()) {
    REQUIRE(m.unused.weight.grad().defined());
    CHECK(max_abs(m.unused.weight.grad()) == 0.0);
    std::vector<Tensor> grads;
    dist::all_gather(grads, m.fc.weight.grad());
    for (const Tensor& g : grads) CHECK(max_abs(g - m.fc.weight.grad()) == 0.0);
  }
}

TEST_CASE("dist: DistributedSampler with one replica is the DataLoader's order") {
  data::DataLoader loader(data::TensorDataset{{arange(0, 50)}}, {.batch_size = 8, .shuffle = true, .seed = 3});
  dist::DistributedSampler sampler(50, {.num_replicas = 1, .rank = 0, .seed = 3});
  for (int64_t epoch : {0, 1, 5}) CHECK(sampler.indices(epoch) == loader.order(epoch));
  CHECK(sampler.indices(0) != sampler.indices(1));
}

TEST_CASE("dist: DistributedSampler shards, pads and drops like PyTorch's") {
  // n = 10 over 3 ranks: 4 each; the 2 missing are the epoch's first 2 samples again.
  std::multiset<int64_t> seen;
  std::vector<int64_t> order = dist::DistributedSampler(10, {.num_replicas = 1, .rank = 0, .seed = 9}).indices(2);
  for (int r = 0; r < 3; ++r) {
    auto mine = dist::DistributedSampler(10, {.num_replicas = 3, .rank = r, .seed = 9}).indices(2);
    REQUIRE(mine.size() == 4);
    for (size_t k = 0; k < mine.size(); ++k) CHECK(mine[k] == order[(r + 3 * k) % 10]);
    seen.insert(mine.begin(), mine.end());
  }
  for (int64_t i = 0; i < 10; ++i) CHECK(seen.count(i) == ((i == order[0] || i == order[1]) ? 2u : 1u));
  CHECK(dist::DistributedSampler(10, {.num_replicas = 3, .rank = 2, .drop_last = true}).indices(0).size() == 3);
  CHECK(dist::DistributedSampler(0, {.num_replicas = 2, .rank = 1}).indices(0).empty());
  // Batch b of each of 2 shards (64 each) together make batch b of one process with 128.
  std::vector<int64_t> whole = dist::DistributedSampler(1000, {.num_replicas = 1, .rank = 0}).indices(0);
  auto s0 = dist::DistributedSampler(1000, {.num_replicas = 2, .rank = 0}).indices(0);
  auto s1 = dist::DistributedSampler(1000, {.num_replicas = 2, .rank = 1}).indices(0);
  for (int64_t b = 0; b * 128 < 1000; ++b) {
    std::set<int64_t> one(whole.begin() + b * 128, whole.begin() + std::min<int64_t>(1000, b * 128 + 128)), two;
    for (auto* s : {&s0, &s1})
      two.insert(s->begin() + b * 64, s->begin() + std::min<int64_t>((int64_t)s->size(), b * 64 + 64));
    CHECK(one == two);
  }
  CHECK_THROWS_AS(dist::DistributedSampler(10, {.num_replicas = 2, .rank = 2}), Error);
  CHECK_THROWS_AS(dist::DistributedSampler(-1, {.num_replicas = 1, .rank = 0}), Error);
  CHECK_THROWS_AS(dist::DistributedSampler(10, {.num_replicas = 1, .rank = 0}).indices(-1), Error);
}
