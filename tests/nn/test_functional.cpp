// Tests for nn/functional.cpp against torch.nn.functional (torch 1.13 values on the same inputs), and
// gradcheck through each composite.
#include <doctest/doctest.h>

#include "heed.h"

using namespace heed;
using V = std::vector<Tensor>;

namespace {
bool near(const Tensor& t, std::vector<double> want, int64_t n = -1, double tol = 1e-9) {
  std::vector<double> got = t.contiguous().reshape({-1}).to_vector<double>();
  if (n >= 0) got.resize(n);
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); i++)
    if (std::abs(got[i] - want[i]) > tol) return false;
  return true;
}
Tensor y_input() {  // torch.arange(24.).reshape(2, 4, 3).sin()
  std::vector<double> v(24);
  for (int i = 0; i < 24; i++) v[i] = std::sin((double)i);
  return from_vector(v, {2, 4, 3});
}
}  // namespace

TEST_CASE("normalize as F.normalize") {
  Tensor x = tensor({{3, 4, 0}, {1, -2, 2}}, float64);
  CHECK(near(nn::normalize(x), {0.6, 0.8, 0.0, 1 / 3.0, -2 / 3.0, 2 / 3.0}));
  CHECK(near(nn::normalize(x, 1, 0), {0.75, 2 / 3.0, 0.0, 0.25, -1 / 3.0, 1.0}));
  CHECK(near(nn::normalize(zeros({1, 3})), {0, 0, 0}));  // eps keeps a zero row finite
  auto f = [](const V& a) { return nn::normalize(a[0]) + nn::normalize(a[0], 3.0, 0); };
  V in{randn({3, 4}, float64).requires_grad_()};
  CHECK_NOTHROW(gradcheck(f, in));
  CHECK_NOTHROW(gradgradcheck(f, in));
}

TEST_CASE("layer_norm, batch_norm, group_norm as F.*") {
  Tensor y = y_input();
  CHECK(near(nn::layer_norm(y, {4, 3}),
             {-0.0485109669431621, 1.1427561534441018, 1.238777777157113, 0.15127206618053438, -1.1199132441033086,
              -1.4060562417908644},
             6, 1e-6));
  Tensor w = tensor({1, 2, 3, 4}, float64), b = tensor({0, 1, 0, 1}, float64);
  CHECK(near(nn::group_norm(y, 2, w, b), {-0.04123417420140962, 1.1405449892322324, 1.2358018398588262,
                                          1.3139153370235108, -1.2082063380345758, -1.7759343087682329}, 6, 1e-6));
  Tensor rm = zeros({4}, float64), rv = ones({4}, float64);
  Tensor out = nn::batch_norm(y, rm, rv, Tensor(), Tensor(), true, 0.1);
  CHECK(near(out, {-0.7916818067270018, 0.7310265635475729, 0.8537638805211378, 0.8399810993490157, -0.658336282368046,
                   -0.9956065635956964}, 6, 1e-6));
  CHECK(near(rm, {0.04374949810257758, -0.03622699550497841, 0.02797940934603582, -0.01917181511879725}, -1, 1e-12));
  CHECK(near(rv, {0.9366447569298576, 0.9430962249664394, 0.9487747959379179, 0.953228118136234}, -1, 1e-12));
  CHECK_THROWS_WITH_AS(nn::group_norm(y, 3), doctest::Contains("cannot be split into 3 groups"), Error);
  CHECK_THROWS_WITH_AS(nn::layer_norm(y, {3, 4}), doctest::Contains("not the trailing shape"), Error);
  CHECK_THROWS_WITH_AS(nn::batch_norm(y, Tensor(), Tensor()), doctest::Contains("running_mean"), Error);
  auto f = [](const V& a) {
    return nn::group_norm(a[0], 2, a[1], a[2]) + nn::batch_norm(a[0], Tensor(), Tensor(), a[1], a[2], true) +
           nn::layer_norm(a[0], {3}, a[3]);
  };
  V in{randn({2, 4, 3}, float64).requires_grad_(), randn({4}, float64).requires_grad_(),
       randn({4}, float64).requires_grad_(), randn({3}, float64).requires_grad_()};
  CHECK_NOTHROW(gradcheck(f, in));
  CHECK_NOTHROW(gradgradcheck(f, in));
}

TEST_CASE("embedding and nn::Embedding refuse out-of-range and negative indices, naming the layer") {
  Tensor w = randn({5, 2});
  CHECK(nn::embedding(from_vector<int64_t>({4, 0}), w).shape() == Shape{2, 2});
  CHECK_THROWS_WITH_AS(nn::embedding(from_vector<int64_t>({5}), w), doctest::Contains("embedding: index 5"), Error);
  nn::Embedding emb(10, 3);
  CHECK_THROWS_WITH_AS(emb(from_vector<int64_t>({1, -1})),
                       doctest::Contains("Embedding(10, 3): index -1 at position 1"), Error);
  CHECK_THROWS_WITH_AS(emb(from_vector<int64_t>({10})), doctest::Contains("Embedding(10, 3): index 10"), Error);
}

TEST_CASE("kl_div with batchmean, sum and log_target as F.kl_div") {
  Tensor inp = log_softmax(tensor({{1, 2, 3}, {0, 0, 1}}, float64), 1);
  Tensor t = tensor({{0.2, 0.8, 0.0}, {0.5, 0.25, 0.25}}, float64);
  CHECK(std::abs(nn::kl_div(inp, t, "batchmean").item() - 0.6844637419991628) < 1e-12);
  CHECK(std::abs(nn::kl_div(inp, t, "sum").item() - 1.3689274839983256) < 1e-12);
  Tensor t2 = tensor({{0.2, 0.7, 0.1}, {0.5, 0.25, 0.25}}, float64);
  CHECK(std::abs(nn::kl_div(inp, log(t2), "batchmean", true).item() - nn::kl_div(inp, t2, "batchmean").item()) < 1e-12);
  CHECK_THROWS_WITH_AS(nn::kl_div(inp, t, "avg"), doctest::Contains("unknown reduction"), Error);
  auto f = [&](const V& a) { return nn::kl_div(log_softmax(a[0], 1), t, "batchmean"); };
  V in{randn({2, 3}, float64).requires_grad_()};
  CHECK_NOTHROW(gradcheck(f, in));
  CHECK_NOTHROW(gradgradcheck(f, in));
}

TEST_CASE("sampling: temperature and top-k") {
  Tensor logits = tensor({{2.0, 1.0, 0.5, -1.0}});
  Tensor kept = nn::top_k_logits(logits, 2, 0.5);
  CHECK(kept.at({0, 0}) == 4.0);
  CHECK(std::isinf(kept.at({0, 2})));
  Generator g(1);
  for (int i = 0; i < 50; i++) {
    Tensor s = nn::sample_next(logits, {.temperature = 1.0, .top_k = 2, .generator = &g});
    CHECK(s.shape() == Shape{1, 1});
    CHECK(s.item() <= 1);
  }
  CHECK(nn::sample_next(logits, {.temperature = 0}).item() == 0);  // greedy
  CHECK_THROWS_AS(nn::top_k_logits(logits, 2, -1.0), Error);
}
