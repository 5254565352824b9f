// Tests for autograd/ops_sort.cpp: sort, argsort, topk, multinomial, split by sizes; expected values from
// torch 1.13 on the same inputs.
#include <doctest/doctest.h>

#include "heed.h"

using namespace heed;

namespace {
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }
}  // namespace

TEST_CASE("sort and argsort as torch.sort: NaN largest, descending, any dim") {
  double nan = std::nan("");
  Tensor x = tensor({{3, 1, 2}, {0, nan, -1}});
  auto [v, i] = sort(x, -1, true);
  CHECK(ints(i) == std::vector<int64_t>{0, 2, 1, 1, 0, 2});  // torch: [[0, 2, 1], [1, 0, 2]]
  CHECK(std::isnan(v.at({1, 0})));
  CHECK(v.at({0, 0}) == 3);
  CHECK(ints(argsort(x.select(0, 0))) == std::vector<int64_t>{1, 2, 0});
  CHECK(ints(argsort(tensor({{3, 1}, {0, 5}}), 0)) == std::vector<int64_t>{1, 0, 0, 1});
  CHECK(ints(sort(from_vector<int64_t>({4, -2, 9})).first) == std::vector<int64_t>{-2, 4, 9});
}

TEST_CASE("topk: values, indices, gradient through gather, and its errors") {
  Tensor x = tensor({1, 5, 3, 5, 2}).requires_grad_();
  auto [v, i] = topk(x, 3);
  CHECK(v.to_vector<double>() == std::vector<double>{5, 5, 3});  // torch: values [5, 5, 3], indices [1, 3, 2]
  CHECK(ints(i) == std::vector<int64_t>{1, 3, 2});
  v.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 1, 1, 0});
  CHECK(ints(topk(tensor({1, 5, 3}), 2, -1, false).second) == std::vector<int64_t>{0, 2});
  CHECK_THROWS_WITH_AS(topk(tensor({1, 2}), 3), doctest::Contains("topk: k = 3 is out of range"), Error);
  Tensor r = randn({3, 4}, float64).requires_grad_();
  CHECK_NOTHROW(gradcheck(
      [](const std::vector<Tensor>& a) { return topk(a[0], 2, 0).first * sort(a[0], 1).first.narrow(0, 0, 2); }, {r}));
}

TEST_CASE("multinomial: frequencies follow the weights; without replacement never repeats") {
  Generator g(7);
  Tensor w = tensor({1, 0, 3});  // unnormalised weights, as torch.multinomial takes
  Tensor s = multinomial(w, 4000, true, &g);
  CHECK(s.dtype() == int64);
  std::vector<int64_t> v = ints(s);
  int64_t twos = std::count(v.begin(), v.end(), 2), ones_ = std::count(v.begin(), v.end(), 1);
  CHECK(ones_ == 0);
  CHECK(std::abs(twos / 4000.0 - 0.75) < 0.03);
  Tensor rows = multinomial(tensor({{1, 1, 1, 1}, {0, 0, 1, 1}}), 2, false, &g);
  CHECK(rows.shape() == Shape{2, 2});
  CHECK(rows.at({0, 0}) != rows.at({0, 1}));
  CHECK(rows.at({1, 0}) >= 2);
  CHECK_THROWS_WITH_AS(multinomial(tensor({0, 0}), 1), doctest::Contains("sums to 0"), Error);
  CHECK_THROWS_WITH_AS(multinomial(tensor({1, -1}), 1), doctest::Contains("non-negative"), Error);
  CHECK_THROWS_WITH_AS(multinomial(tensor({0, 1}), 2), doctest::Contains("only 1 nonzero"), Error);
  Generator a(3), b(3);
  CHECK(ints(multinomial(tensor({1, 2, 3}), 5, true, &a)) == ints(multinomial(tensor({1, 2, 3}), 5, true, &b)));
}

TEST_CASE("split with a list of sizes, and a 0-d tensor from one value with an empty shape") {
  Tensor x = arange(10).reshape({2, 5});
  std::vector<Tensor> parts = split(x, {2, 3}, 1);
  CHECK(parts.size() == 2);
  CHECK(parts[1].shape() == Shape{2, 3});
  CHECK(ints(parts[1].select(0, 0)) == std::vector<int64_t>{2, 3, 4});
  CHECK_THROWS_WITH_AS(split(x, {2, 2}, 1), doctest::Contains("sum to 4"), Error);
  Tensor s = from_vector<double>({2.5}, {});
  CHECK(s.dim() == 0);
  CHECK(s.item() == 2.5);
  CHECK(from_vector<double>({2.5}).dim() == 1);  // no shape: 1-d, as torch.tensor([2.5])
  CHECK_THROWS_AS(from_vector<double>({1, 2}, {}), Error);
}
