// Tests for tensor/kernels/promote.cpp: PyTorch's type promotion, integer and bool arithmetic, floor
// division and remainder. Every expected dtype and value below is what torch 1.13 printed for the same
// expression (python3 -c "import torch; i = torch.tensor([3, -7]); print(i * 7 + 3)").
#include <doctest/doctest.h>

#include <sstream>

#include "heed.h"

using namespace heed;

namespace {
Tensor I(std::vector<int64_t> v) { return from_vector<int64_t>(v); }
Tensor Bm(std::vector<int64_t> v) { return I(v).to(boolean); }
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }
std::vector<double> reals(const Tensor& t) { return t.to_vector<double>(); }
}  // namespace

TEST_CASE("promote_types and result_type follow torch") {
  CHECK(promote_types(int64, float32) == float32);
  CHECK(promote_types(boolean, int64) == int64);
  CHECK(promote_types(float32, float64) == float64);
  // A 0-d tensor only counts when its category is higher.
  CHECK(result_type(ones({2}), scalar_tensor(2.0, float64)) == float32);
  CHECK(result_type(I({1, 2}), scalar_tensor(2.5, float64)) == float64);
  CHECK(result_type(ones({2}), ones({2}, float64)) == float64);
}

TEST_CASE("integer arithmetic: int64 op int stays int64, int op float gives float32") {
  Tensor i = I({3, -7});
  Tensor r = i * 7 + 3;  // torch: tensor([24, -46])
  CHECK(r.dtype() == int64);
  CHECK(ints(r) == std::vector<int64_t>{24, -46});
  CHECK((i * 2.0).dtype() == float32);  // a Python float beside an int tensor: the default float dtype
  CHECK(reals(i * 2.0) == std::vector<double>{6, -14});
  CHECK((i / 2).dtype() == float32);  // true division
  CHECK(reals(i / 2) == std::vector<double>{1.5, -3.5});
  CHECK(ints(2 - i) == std::vector<int64_t>{-1, 9});
  CHECK(ints(-i) == std::vector<int64_t>{-3, 7});
  CHECK(ints(abs(i)) == std::vector<int64_t>{3, 7});
  CHECK(ints(sign(i)) == std::vector<int64_t>{1, -1});
  CHECK(ints(pow(i, I({2, 2}))) == std::vector<int64_t>{9, 49});
  CHECK_THROWS_WITH_AS(pow(i, I({-1, 1})), doctest::Contains("negative integer powers"), Error);
  CHECK(ints(maximum(i, I({0, 0}))) == std::vector<int64_t>{3, 0});
  // float op int keeps the float tensor's dtype; an integer literal keeps a float tensor's dtype too.
  Tensor f = tensor({1.5, 2.0});
  CHECK((f + i).dtype() == float32);
  CHECK(reals(f + i) == std::vector<double>{4.5, -5.0});
  CHECK((f * 2).dtype() == float32);
  CHECK((ones({2}, float64) * 2).dtype() == float64);
  // float32 with float64 promotes (as torch); a 0-d float64 does not upgrade a float32 tensor.
  CHECK((f + f.to(float64)).dtype() == float64);
  CHECK((f + scalar_tensor(2.0, float64)).dtype() == float32);
  CHECK((i + scalar_tensor(2.5, float64)).dtype() == float64);
  CHECK(ints(i.sum()) == std::vector<int64_t>{-4});
  CHECK(i.sum().dtype() == int64);
  CHECK_THROWS_WITH_AS(exp(i), doctest::Contains("exp"), Error);
}

TEST_CASE("bool arithmetic as torch: + is or, * is and, - refuses, bool + int is int64") {
  Tensor b = Bm({1, 0});
  CHECK((b + b).dtype() == boolean);
  CHECK(ints(b + b) == std::vector<int64_t>{1, 0});
  CHECK(ints(b * b) == std::vector<int64_t>{1, 0});
  CHECK((b + 1).dtype() == int64);
  CHECK(ints(b + 1) == std::vector<int64_t>{2, 1});
  CHECK((b * 2.0).dtype() == float32);
  CHECK((b / b).dtype() == float32);
  CHECK(b.sum().dtype() == int64);
  CHECK(b.sum().item() == 1);
  CHECK_THROWS_WITH_AS(b - b, doctest::Contains("logical_xor"), Error);
  CHECK_THROWS_WITH_AS(I({1, 2}) - b, doctest::Contains("bool"), Error);
  CHECK_THROWS_WITH_AS(-b, doctest::Contains("logical_not"), Error);
}

TEST_CASE("floor_divide and remainder: Python's // and %") {
  Tensor i = I({3, -7});
  CHECK(ints(floor_divide(i, I({2, 2}))) == std::vector<int64_t>{1, -4});
  CHECK(ints(floor_divide(i, I({-2, -2}))) == std::vector<int64_t>{-2, 3});
  CHECK(ints(i % 3) == std::vector<int64_t>{0, 2});
  CHECK(ints(i % -3) == std::vector<int64_t>{0, -1});
  CHECK((i % 3).dtype() == int64);
  CHECK(reals(remainder(i, scalar_tensor(2.5))) == std::vector<double>{0.5, 0.5});
  CHECK(reals(floor_divide(tensor({5.5, -5.5}), scalar_tensor(2.0))) == std::vector<double>{2, -3});
  CHECK(reals(tensor({5.5, -5.5}) % 2) == std::vector<double>{1.5, 0.5});
  CHECK_THROWS_WITH_AS(floor_divide(i, I({0, 1})), doctest::Contains("division by zero"), Error);
  CHECK_THROWS_WITH_AS(i % I({0, 1}), doctest::Contains("remainder"), Error);
  // torch refuses both on two bool tensors ("not implemented for 'Bool'").
  CHECK_THROWS_WITH_AS(floor_divide(Bm({1, 0}), Bm({1, 1})), doctest::Contains("floor_divide: bool"), Error);
  CHECK_THROWS_WITH_AS(remainder(Bm({1, 0}), Bm({1, 1})), doctest::Contains("remainder: bool"), Error);
  // remainder's gradient: da = 1, db = -floor(a/b)  (torch: x.grad [1, 1], y.grad [-2, 2])
  Tensor x = tensor({5.0, -3.0}).requires_grad_(), y = tensor({2.0, 2.0}).requires_grad_();
  remainder(x, y).sum().backward();
  CHECK(reals(x.grad()) == std::vector<double>{1, 1});
  CHECK(reals(y.grad()) == std::vector<double>{-2, 2});
}

TEST_CASE("comparisons promote: labels == 3, x < 2.5, pred == labels") {
  Tensor i = I({3, -7});
  CHECK(ints(i == 3) == std::vector<int64_t>{1, 0});
  CHECK(ints(i < 2.5) == std::vector<int64_t>{0, 1});
  CHECK(ints(i != I({3, 3})) == std::vector<int64_t>{0, 1});
  CHECK(ints(tensor({3.0, 1.0}) == i) == std::vector<int64_t>{1, 0});
  CHECK(ints(i >= -7) == std::vector<int64_t>{1, 1});
  CHECK(ints(where(Bm({1, 0}), i, tensor({1.5, 2.0}))) == std::vector<int64_t>{3, 2});
  CHECK(where(Bm({1, 0}), i, tensor({1.5, 2.0})).dtype() == float32);
}

TEST_CASE("a float32 leaf used with a float64 tensor gets a float32 gradient") {
  Tensor w = ones({2}).requires_grad_();
  (w * ones({2}, float64)).sum().backward();
  CHECK(w.grad().dtype() == float32);
  CHECK(reals(w.grad()) == std::vector<double>{1, 1});
}

TEST_CASE("DType prints its name") {
  std::ostringstream os;
  os << float32 << " " << int64 << " " << boolean;
  CHECK(os.str() == "float32 int64 bool");
}
