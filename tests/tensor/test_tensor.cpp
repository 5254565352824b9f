// Tests for tensor/tensor.cpp: creation, views, printing, and the errors of bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "heed.h"
#include "tensor/kernels/kernels.h"

using namespace heed;

TEST_CASE("creation: zeros, ones, full, arange, linspace, eye") {
  CHECK(zeros({2, 3}).to_vector<float>() == std::vector<float>(6, 0.f));
  CHECK(ones({2}, float64).to_vector<double>() == std::vector<double>{1, 1});
  CHECK(full({3}, 2.5).to_vector<float>() == std::vector<float>{2.5f, 2.5f, 2.5f});
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25, float64).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(linspace(0, 1, 5, float64).to_vector<double>() == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(eye(3).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(zeros_like(ones({2, 2}, float64)).dtype() == float64);
  CHECK(tensor({{1, 2}, {3, 4}}).shape() == Shape{2, 2});
  CHECK(from_vector<int64_t>({1, 2, 3, 4}, {2, 2}).at({1, 0}) == 3);
  CHECK_THROWS_AS(zeros({2, -1}), Error);
  CHECK_THROWS_AS(from_vector<float>({1, 2, 3}, {2, 2}), Error);
  CHECK_THROWS_AS(arange(0, 1, 0), Error);
  CHECK_THROWS_AS(tensor({{1, 2}, {3}}), Error);
}

TEST_CASE("random: the same seed gives the same numbers") {
  manual_seed(7);
  Tensor a = randn({100});
  Tensor u = rand({100}, float64);
  manual_seed(7);
  CHECK(randn({100}).to_vector<float>() == a.to_vector<float>());
  CHECK(rand({100}, float64).to_vector<double>() == u.to_vector<double>());
  Generator g(3), h(3);
  CHECK(randint(0, 10, {50}, &g).to_vector<int64_t>() == randint(0, 10, {50}, &h).to_vector<int64_t>());
  std::vector<double> r = rand({10000}, float64).to_vector<double>();
  for (double v : r) REQUIRE((v >= 0 && v < 1));
  Tensor n = randn({200000}, float64);
  CHECK(n.mean().item() == doctest::Approx(0).epsilon(0.01).scale(1));
  CHECK(var(n).item() == doctest::Approx(1).epsilon(0.02));
  for (int64_t v : randint(-3, 4, {1000}).to_vector<int64_t>()) REQUIRE((v >= -3 && v < 4));
  CHECK_THROWS_AS(randint(5, 5, {1}), Error);
}

TEST_CASE("views share storage and have the right strides") {
  Tensor x = arange(0, 24, 1, float32).reshape({2, 3, 4});
  CHECK(x.strides() == Shape{12, 4, 1});
  Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.strides() == Shape{1, 4, 12});
  CHECK(t.storage() == x.storage());
  CHECK(!t.is_contiguous());
  CHECK(t.at({3, 2, 1}) == x.at({1, 2, 3}));
  Tensor p = x.permute({1, 0, 2});
  CHECK(p.at({2, 1, 3}) == x.at({1, 2, 3}));
  Tensor s = x.slice(2, 1, 4, 2);  // columns 1 and 3
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.at({1, 1, 1}) == x.at({1, 1, 3}));
  CHECK(x.slice(1, -2, 100).shape() == Shape{2, 2, 4});  // python clipping
  CHECK(x.narrow(1, 1, 2).at({0, 0, 0}) == 4);
  CHECK(x.select(0, 1).shape() == Shape{3, 4});
  CHECK(x.select(-1, -1).at({1, 2}) == 23);
  Tensor e = tensor({1, 2, 3}).reshape({3, 1}).expand({3, 4});
  CHECK(e.strides() == Shape{1, 0});
  CHECK(e.at({2, 3}) == 3);
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(x.unsqueeze(1).squeeze(1).shape() == Shape{2, 3, 4});
  CHECK(ones({1, 3, 1}).squeeze().shape() == Shape{3});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.flatten().shape() == Shape{24});
  CHECK(x.view({6, -1}).shape() == Shape{6, 4});
  // reshape of a transposed tensor cannot be a view: it copies, and the values are still right.
  Tensor r = x.transpose(1, 2).reshape({2, 12});
  CHECK(r.storage() != x.storage());
  CHECK(r.at({0, 1}) == 4);
  // ... but reshape that only splits a dim stays a view even on a sliced tensor.
  Tensor sl = x.slice(0, 1, 2);
  CHECK(sl.reshape({3, 4}).storage() == x.storage());
  Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.to_vector<float>() == t.to_vector<float>());
  CHECK(x.contiguous().is_same(x));
}

TEST_CASE("bad views throw with the op name and shapes") {
  Tensor x = zeros({2, 3});
  auto msg = [](auto f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no throw");
  };
  CHECK(msg([&] { x.transpose(0, 1).view({6}); }).find("view: a tensor of shape (3,2)") == 0);
  CHECK(msg([&] { x.reshape({4, 2}); }).find("reshape: shape (4,2) is invalid for 6 elements") == 0);
  CHECK(msg([&] { x.sum(2); }).find("sum: dim 2 out of range for a 2-d tensor") == 0);
  CHECK_THROWS_AS(x.reshape({-1, -1}), Error);
  CHECK_THROWS_AS(x.permute({0, 0}), Error);
  CHECK_THROWS_AS(x.permute({0}), Error);
  CHECK_THROWS_AS(x.narrow(1, 2, 2), Error);
  CHECK_THROWS_AS(x.select(0, 2), Error);
  CHECK_THROWS_AS(x.select(0, -3), Error);
  CHECK_THROWS_AS(x.slice(0, 0, 1, 0), Error);
  CHECK_THROWS_AS(x.expand({4, 3}), Error);
  CHECK_THROWS_AS(x.expand({3}), Error);
  CHECK_THROWS_AS(x.unsqueeze(4), Error);
  CHECK_THROWS_AS(x.flatten(1, 0), Error);
  CHECK_THROWS_AS(x.at({0, 3}), Error);
  CHECK_THROWS_AS(x.at({0}), Error);
  CHECK_THROWS_AS(x.item(), Error);
  CHECK_THROWS_AS(x.data_ptr<double>(), Error);
}

TEST_CASE("dtype mismatches are errors, and to() converts") {
  Tensor a = ones({2}), b = ones({2}, float64);
  CHECK((a + b).dtype() == float64);  // promotes as torch (tests/tensor/kernels/test_promote.cpp)
  CHECK_THROWS_AS(matmul(ones({2, 2}), ones({2, 2}, float64)), Error);
  CHECK_THROWS_AS(exp(arange(3)), Error);
  CHECK((a.to(float64) + b).dtype() == float64);
  CHECK(tensor({1.7, -2.2}).to(int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2});
  CHECK(a.to(float32).is_same(a));
}

TEST_CASE("printing looks like PyTorch") {
  std::ostringstream os;
  os << tensor({{1, 2}, {3, 4}});
  CHECK(os.str() == "tensor([[1., 2.],\n        [3., 4.]], shape=(2,2), dtype=float32)");
  std::ostringstream os2;
  os2 << tensor({0.5, -1.25}, float64);
  CHECK(os2.str() == "tensor([0.5000, -1.2500], shape=(2), dtype=float64)");
  std::ostringstream os3;
  os3 << arange(3);
  CHECK(os3.str() == "tensor([0, 1, 2], shape=(3), dtype=int64)");
  std::ostringstream os4;
  os4 << (arange(3) < from_vector<int64_t>({1}));
  CHECK(os4.str() == "tensor([True, False, False], shape=(3), dtype=bool)");
  std::ostringstream os5;
  os5 << zeros({2000});
  CHECK(os5.str().find("...") != std::string::npos);
  std::ostringstream os6;
  os6 << scalar_tensor(3.5);
  CHECK(os6.str() == "tensor(3.5000, shape=(), dtype=float32)");
}

TEST_CASE("in-place ops write through views") {
  Tensor x = zeros({3, 4});
  x.select(1, 2).fill_(5);
  CHECK(x.sum().item() == 15);
  x.slice(0, 0, 2).add_(ones({4}), 2.0);
  CHECK(x.sum().item() == 15 + 16);
  x.mul_(0.5);
  CHECK(x.sum().item() == doctest::Approx(15.5));
  x.zero_();
  CHECK(x.sum().item() == 0);
  x.copy_(arange(0, 4, 1, float32));
  CHECK(x.at({2, 3}) == 3);
  CHECK_THROWS_AS(x.add_(ones({5})), Error);
  CHECK_THROWS_AS(x.copy_(ones({2, 4})), Error);
}

TEST_CASE("memory stats count live storage") {
  MemoryStats before = memory_stats();
  {
    Tensor big = empty({1000, 1000});
    CHECK(memory_stats().current >= before.current + 4000000);
  }
  CHECK(memory_stats().current == before.current);
  CHECK(memory_stats().peak >= before.current + 4000000);
}

// ---- issue 15: sizes that overflow, dims of 0-d tensors, shape checks --------------------------------------

TEST_CASE("creation refuses sizes whose element or byte count overflows, instead of writing past a tiny buffer") {
  CHECK_THROWS_WITH_AS(zeros({1LL << 62}), doctest::Contains("zeros: shape (4611686018427387904)"), Error);
  CHECK_THROWS_WITH_AS(ones({1LL << 62}), doctest::Contains("ones:"), Error);
  CHECK_THROWS_AS(empty({1LL << 62}), Error);
  CHECK_THROWS_AS(randn({1LL << 62}), Error);
  CHECK_THROWS_AS(rand({1LL << 62}), Error);
  CHECK_THROWS_AS(randint(0, 2, {1LL << 62}), Error);
  CHECK_THROWS_AS(full({1LL << 62}, 3.0), Error);
  CHECK_THROWS_AS(linspace(0, 1, 1LL << 62), Error);
  CHECK_THROWS_AS(eye(1LL << 32), Error);
  CHECK_THROWS_AS(eye(-1), Error);
  CHECK_THROWS_WITH_AS(zeros({1LL << 32, 1LL << 32}), doctest::Contains("more than 2^63-1 elements"), Error);
  CHECK_THROWS_AS(zeros({0, 1LL << 40, 1LL << 40}), Error);
  CHECK_THROWS_AS(zeros({-5, 3}), Error);
  CHECK_THROWS_WITH_AS(arange(0, 1e30), doctest::Contains("arange:"), Error);
  CHECK(arange(0, 5).numel() == 5);
  CHECK(arange(5, 0).numel() == 0);
}

TEST_CASE("a size the system cannot give throws OutOfMemory naming the op, the shape and the bytes") {
  // 2^61 floats = 2^63 bytes would overflow; 2^60 floats (4 EiB) fits in int64 but not in any machine.
  CHECK_THROWS_WITH_AS(zeros({1LL << 60}),
                       doctest::Contains("zeros: out of memory allocating 4611686018427387904 bytes"), OutOfMemory);
  CHECK_THROWS_WITH_AS(randn({1LL << 30, 1LL << 30}), doctest::Contains("shape (1073741824,1073741824)"), OutOfMemory);
}

TEST_CASE("dim 0 of a 0-d tensor is an error, not a null dereference") {
  Tensor s = scalar_tensor(2.0);
  CHECK_THROWS_AS(s.size(0), Error);
  CHECK_THROWS_AS(s.size(-1), Error);
  CHECK_THROWS_AS(s.stride(0), Error);
  CHECK_THROWS_AS(s.select(0, 0), Error);
  CHECK_THROWS_AS(s.narrow(0, 0, 1), Error);
  CHECK_THROWS_AS(s.slice(0, 0, 1), Error);
  CHECK_THROWS_AS(split(s, 1, 0), Error);
  CHECK_THROWS_AS(chunk(s, 1, 0), Error);
  CHECK_THROWS_AS(gather(s, 0, scalar_tensor(0, int64)), Error);
  // Reductions, index_select and transpose over "dim 0" of a scalar work, as in PyTorch; var of one value is
  // nan (0 / 0).
  CHECK(index_select(s, 0, from_vector<int64_t>({0})).item() == 2.0);
  CHECK(s.transpose(0, -1).item() == 2.0);
  CHECK(sum(s, {0}).item() == 2.0);
  CHECK(mean(s, {0}).item() == 2.0);
  CHECK(softmax(s, 0).item() == 1.0);
  CHECK(std::isnan(var(s, 0).item()));
}

TEST_CASE("shape checks: expand, narrow, slice, split and chunk with extreme values") {
  Tensor x = ones({1, 3});
  CHECK_THROWS_WITH_AS(x.expand({-5, 3}), doctest::Contains("expand: invalid size -5"), Error);
  CHECK_THROWS_AS(x.expand({-1, 3, 3}), Error);
  CHECK(x.expand({-1, 3}).shape() == Shape{1, 3});
  CHECK_THROWS_AS(x.expand({1LL << 62, 1LL << 62, 3}), Error);
  Tensor y = arange(10);
  CHECK_THROWS_WITH_AS(y.narrow(0, 1, INT64_MAX), doctest::Contains("narrow: start 1 length"), Error);
  CHECK_THROWS_AS(y.narrow(0, INT64_MAX, 1), Error);
  CHECK(y.slice(0, 1, INT64_MAX).numel() == 9);
  CHECK(y.slice(0, 1, INT64_MAX, INT64_MAX).to_vector<int64_t>() == std::vector<int64_t>{1});
  CHECK(y.slice(0, INT64_MIN, INT64_MAX, 3).to_vector<int64_t>() == std::vector<int64_t>{0, 3, 6, 9});
  CHECK(split(y, INT64_MAX).size() == 1);
  std::vector<Tensor> c = chunk(y, INT64_MAX);
  CHECK(c.size() == 10);
  CHECK(c[9].item() == 9);
  CHECK_THROWS_AS(y.reshape({1LL << 32, 1LL << 32, -1}), Error);
}

TEST_CASE("randint over the whole int64 range does not overflow") {
  Generator g(3);
  Tensor r = randint(INT64_MIN, INT64_MAX, {1000}, &g);
  std::vector<int64_t> v = r.to_vector<int64_t>();
  CHECK(*std::min_element(v.begin(), v.end()) < -(1LL << 60));
  CHECK(*std::max_element(v.begin(), v.end()) > (1LL << 60));
  Tensor small = randint(-3, -1, {100}, &g);
  for (int64_t k : small.to_vector<int64_t>()) CHECK((k == -3 || k == -2));
}
