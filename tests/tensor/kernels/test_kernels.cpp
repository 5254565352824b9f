// Tests for tensor/kernels/kernels.cpp: the N-d machinery around the row kernels. Every fast path is compared
// with the scalar reference path (kernels::set_use_simd(false)) over odd sizes and non-contiguous views,
// in both float dtypes; matmul is compared with gemm_ref; results must not depend on the thread count.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "heed.h"
#include "tensor/kernels/kernels.h"

using namespace heed;
using U = simd::Unary;
using Bn = simd::Binary;

namespace {

// Runs f with the fast paths, then with the reference loops, and returns both results.
template <class F>
std::pair<Tensor, Tensor> fast_and_ref(F f) {
  kernels::set_use_simd(true);
  Tensor fast = f();
  kernels::set_use_simd(false);
  Tensor ref = f();
  kernels::set_use_simd(true);
  return {fast, ref};
}

bool close(const Tensor& a, const Tensor& b, double tol) {
  if (a.shape() != b.shape()) return false;
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); i++) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    if (x[i] == y[i]) continue;
    if (!(std::fabs(x[i] - y[i]) <= tol * (1 + std::fabs(y[i])))) return false;
  }
  return true;
}

// The inputs every kernel test sweeps: contiguous rows of odd lengths, and the same data seen through a
// transpose, a step-2 slice and a broadcast.
std::vector<Tensor> sample_inputs(DType dt) {
  std::vector<Tensor> xs;
  for (int64_t n : {0, 1, 7, 17, 1023}) xs.push_back(randn({n}, dt) * 3.0);
  Tensor m = randn({17, 33}, dt) * 3.0;
  xs.push_back(m.transpose(0, 1));
  xs.push_back(m.slice(1, 0, 33, 2));
  xs.push_back(randn({7, 1}, dt).expand({7, 9}));
  xs.push_back(randn({3, 40000}, dt));  // big enough to run on several threads
  return xs;
}

}  // namespace

TEST_CASE("unary kernels: fast path equals reference over sizes and views") {
  manual_seed(1);
  for (DType dt : {float32, float64}) {
    double tol = dt == float32 ? 2e-6 : 1e-14;
    for (const Tensor& x : sample_inputs(dt)) {
      for (U op : simd::all_unary()) {  // every enumerator (simd.h)
        simd::UnaryArgs args{op == U::Pow ? 3.0 : op == U::Clamp ? -0.5 : 0.1, 0.5};
        Tensor in = (op == U::Log || op == U::Sqrt || op == U::Rsqrt) ? kernels::unary(U::Abs, x) + 0.1 : x;
        auto [fast, ref] = fast_and_ref([&] { return kernels::unary(op, in, args); });
        INFO(simd::unary_name(op), " ", dtype_name(dt), " ", shape_str(in.shape()));
        CHECK(close(fast, ref, tol));
      }
    }
  }
}

TEST_CASE("binary kernels: broadcasting and views, fast path equals reference") {
  manual_seed(2);
  for (DType dt : {float32, float64}) {
    Tensor a = randn({5, 1, 33}, dt), b = randn({7, 33}, dt), s = randn({}, dt);
    Tensor at = randn({33, 7}, dt).transpose(0, 1);
    for (Bn op : simd::all_binary()) {
      if (op == Bn::Pow) continue;  // needs positive bases: checked below
      for (auto [x, y] : {std::pair{a, b}, {b, a}, {b, s}, {s, b}, {b, at}, {at, a}}) {
        auto [fast, ref] = fast_and_ref([&] { return kernels::binary("op", op, x, y); });
        CHECK(close(fast, ref, dt == float32 ? 1e-6 : 1e-15));
      }
    }
    // Broadcasting semantics against an explicit loop.
    Tensor c = kernels::binary("add", Bn::Add, a, b);
    CHECK(c.shape() == Shape{5, 7, 33});
    CHECK(c.at({4, 6, 32}) == doctest::Approx(a.at({4, 0, 32}) + b.at({6, 32})));
    Tensor p = kernels::binary("pow", Bn::Pow, kernels::unary(U::Abs, a) + 0.5, b);
    auto [fp, rp] = fast_and_ref([&] { return kernels::binary("pow", Bn::Pow, kernels::unary(U::Abs, a) + 0.5, b); });
    CHECK(close(fp, rp, dt == float32 ? 1e-5 : 1e-13));
  }
  CHECK_THROWS_WITH_AS(ones({2, 3}) + ones({4, 3}),
                       doctest::Contains("add: shapes (2,3) and (4,3) cannot be broadcast"), Error);
}

TEST_CASE("comparisons, where and masked_fill") {
  Tensor a = tensor({1, 2, 3}), b = tensor({3, 2, 1});
  CHECK((a < b).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
  CHECK(eq(a, b).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0});
  CHECK(ge(a, b).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
  CHECK(logical_not(a < b).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
  CHECK(where(a > b, a, b).to_vector<float>() == std::vector<float>{3, 2, 3});
  Tensor m = tensor({1, 0, 1}) > 0.5;
  CHECK(masked_fill(a, m, -1).to_vector<float>() == std::vector<float>{-1, 2, -1});
  CHECK_THROWS_AS(where(a, a, b), Error);  // the condition must be bool
  CHECK_THROWS_AS(logical_and(a, b), Error);
}

TEST_CASE("reductions: sum, mean, max, var, logsumexp against naive loops") {
  manual_seed(3);
  for (DType dt : {float32, float64}) {
    double tol = dt == float32 ? 1e-5 : 1e-12;
    Tensor x = randn({6, 17, 33}, dt);
    for (const Tensor& v : {x, x.transpose(0, 2), x.slice(1, 1, 17, 3)}) {
      for (std::vector<int64_t> dims : std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {0, 1, 2}, {-1}}) {
        auto [fast, ref] = fast_and_ref([&] { return sum(v, dims, true); });
        CHECK(close(fast, ref, tol));
      }
    }
    // several dims, neighbouring ones merged into one (a conv bias gradient: {0, 2, 3}), against a hand loop
    Tensor x4 = randn({3, 4, 5, 6}, dt);
    for (std::vector<int64_t> dims : std::vector<std::vector<int64_t>>{{0, 2, 3}, {1, 2}, {0, 1, 3}, {0, 3}, {2, 3}}) {
      INFO("dims ", dims.size(), " first ", dims[0]);
      Tensor got = sum(x4, dims, true);
      std::vector<double> want(got.numel(), 0.0);
      for (int64_t a = 0; a < 3; a++)
        for (int64_t b = 0; b < 4; b++)
          for (int64_t c = 0; c < 5; c++)
            for (int64_t d = 0; d < 6; d++) {
              int64_t idx[4] = {a, b, c, d}, flat = 0;
              for (int64_t k = 0; k < 4; k++)
                flat = flat * got.size(k) + (std::find(dims.begin(), dims.end(), k) != dims.end() ? 0 : idx[k]);
              want[flat] += x4.at({a, b, c, d});
            }
      CHECK(close(got, from_vector(want, got.shape()).to(dt), tol * 10));
      CHECK(close(sum(x4.transpose(1, 3), dims, true), sum(x4.transpose(1, 3).contiguous(), dims, true), tol * 10));
    }
    // sum over dim 1 against a hand loop
    Tensor s = sum(x, {1});
    double acc = 0;
    for (int64_t j = 0; j < 17; j++) acc += x.at({2, j, 5});
    CHECK(s.at({2, 5}) == doctest::Approx(acc).epsilon(tol));
    CHECK(sum(x).item() == doctest::Approx(sum(sum(x, {2}), {0, 1}).item()).epsilon(tol));
    CHECK(mean(x, {0}).at({3, 4}) == doctest::Approx(sum(x, {0}).at({3, 4}) / 6).epsilon(tol));
    auto [mv, mi] = max(x, 1);
    for (int64_t i = 0; i < 6; i++)
      for (int64_t k = 0; k < 33; k += 8) {
        double best = -INFINITY;
        int64_t bi = 0;
        for (int64_t j = 0; j < 17; j++)
          if (x.at({i, j, k}) > best) best = x.at({i, j, k}), bi = j;
        CHECK(mv.at({i, k}) == best);
        CHECK(mi.at({i, k}) == bi);
      }
    CHECK(argmin(x, 2).shape() == Shape{6, 17});
    CHECK(max(x).item() == max(max(max(x, 2).first, 1).first).item());
    Tensor r = randn({5, 40}, dt);
    double m = 0, q = 0;
    for (int64_t j = 0; j < 40; j++) m += r.at({1, j});
    m /= 40;
    for (int64_t j = 0; j < 40; j++) q += (r.at({1, j}) - m) * (r.at({1, j}) - m);
    CHECK(var(r, 1).at({1}) == doctest::Approx(q / 39).epsilon(tol));
    CHECK(var(r, 1, 0).at({1}) == doctest::Approx(q / 40).epsilon(tol));
    CHECK(heed::std(r, 1).at({1}) == doctest::Approx(std::sqrt(q / 39)).epsilon(tol));
    double lse = 0;
    for (int64_t j = 0; j < 40; j++) lse += std::exp(r.at({1, j}));
    CHECK(logsumexp(r, 1).at({1}) == doctest::Approx(std::log(lse)).epsilon(tol));
    // logsumexp stays finite for huge inputs, and is -inf for an all -inf row
    CHECK(logsumexp(tensor({1000, 1000}, dt), 0).item() == doctest::Approx(1000 + std::log(2.0)));
    CHECK(logsumexp(full({3}, -INFINITY, dt), 0).item() == -INFINITY);
  }
  CHECK_THROWS_AS(max(zeros({0})), Error);
  CHECK_THROWS_AS(max(zeros({2, 0}), 1), Error);
}

TEST_CASE("softmax rows: fast equals reference, rows sum to 1, masked rows are zero") {
  manual_seed(4);
  for (DType dt : {float32, float64}) {
    for (int64_t n : {1, 7, 17, 1023}) {
      Tensor x = randn({5, n}, dt) * 4.0;
      auto [fast, ref] = fast_and_ref([&] { return softmax(x, 1); });
      CHECK(close(fast, ref, 1e-6));
      auto [lf, lr] = fast_and_ref([&] { return log_softmax(x, -1); });
      CHECK(close(lf, lr, 1e-5));
      CHECK(close(sum(fast, {1}), ones({5}, dt), 1e-5));
    }
    Tensor x = randn({4, 6, 5}, dt);
    CHECK(close(softmax(x, 1), exp(x) / sum(exp(x), {1}, true), 1e-6));  // non-last dim
    Tensor masked = tensor({{0, -INFINITY, 1}, {-INFINITY, -INFINITY, -INFINITY}}, dt);
    Tensor p = softmax(masked, 1);
    CHECK(p.at({0, 1}) == 0);
    CHECK(p.at({1, 0}) == 0);  // a fully masked row gives zeros, never NaN
    CHECK(p.at({1, 2}) == 0);
  }
}

TEST_CASE("matmul: BLAS against gemm_ref, transposed views, batches, broadcasting, vectors") {
  manual_seed(5);
  auto naive = [](const Tensor& a, const Tensor& b) {  // (M,K) @ (K,N) by the definition
    int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    std::vector<double> out(M * N, 0.0);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++)
        for (int64_t k = 0; k < K; k++) out[i * N + j] += a.at({i, k}) * b.at({k, j});
    return from_vector(out, {M, N});
  };
  for (DType dt : {float32, float64}) {
    double tol = dt == float32 ? 1e-4 : 1e-12;
    for (auto [M, K, N] : {std::tuple{1, 1, 1}, {7, 17, 3}, {17, 1, 7}, {33, 65, 129}}) {
      Tensor a = randn({M, K}, dt), b = randn({K, N}, dt);
      CHECK(close(matmul(a, b), naive(a, b).to(dt), tol));
      Tensor at = randn({K, M}, dt), bt = randn({N, K}, dt);
      // transposed views: no copy, a transpose flag
      CHECK(close(matmul(at.mT(), bt.mT()), naive(at.mT(), bt.mT()).to(dt), tol));
      // a strided (sliced) matrix
      Tensor wide = randn({M, 2 * K}, dt);
      CHECK(close(matmul(wide.slice(1, 0, 2 * K, 2), b), naive(wide.slice(1, 0, 2 * K, 2), b).to(dt), tol));
    }
    // batched with broadcast batch dims
    Tensor a = randn({2, 1, 5, 4}, dt), b = randn({3, 4, 6}, dt);
    Tensor c = matmul(a, b);
    CHECK(c.shape() == Shape{2, 3, 5, 6});
    CHECK(close(c.select(0, 1).select(0, 2), naive(a.select(0, 1).select(0, 0), b.select(0, 2)).to(dt), tol));
    // (B,T,C) @ (C,N): the folded single-GEMM path
    Tensor x = randn({4, 5, 8}, dt), w = randn({8, 3}, dt);
    CHECK(close(matmul(x, w).select(0, 3), naive(x.select(0, 3), w).to(dt), tol));
    CHECK(close(matmul(x.transpose(0, 1), w).select(0, 2), naive(x.select(1, 2), w).to(dt), tol));
    // vectors
    Tensor v = randn({4}, dt);
    CHECK(matmul(v, v).dim() == 0);
    CHECK(matmul(v, v).item() == doctest::Approx(sum(v * v).item()).epsilon(tol));
    CHECK(matmul(randn({3, 4}, dt), v).shape() == Shape{3});
    CHECK(matmul(v, randn({2, 4, 6}, dt)).shape() == Shape{2, 6});
    CHECK(matmul(zeros({0, 3}, dt), zeros({3, 2}, dt)).shape() == Shape{0, 2});
    CHECK(matmul(zeros({2, 0}, dt), zeros({0, 2}, dt)).to_vector<double>() == std::vector<double>(4, 0.0));
  }
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({4, 5})),
                       doctest::Contains("matmul: (2,3) @ (4,5): inner dimensions 3 != 4"), Error);
  CHECK_THROWS_AS(matmul(zeros({2, 2, 3}), zeros({3, 3, 2})), Error);  // batch 2 vs 3
  CHECK_THROWS_AS(matmul(scalar_tensor(1), zeros({2})), Error);
  CHECK_THROWS_AS(linear(zeros({2, 785}), zeros({400, 784})), Error);
}

TEST_CASE("matmul with a bias: the GEMM that starts from the bias equals matmul then add, on every path") {
  manual_seed(6);
  for (DType dt : {float32, float64}) {
    const double tol = dt == float32 ? 1e-4 : 1e-12;
    Tensor bias = randn({6}, dt);
    // the folded (B*T, K) GEMM, with w transposed as nn.Linear has it; a plain 2-d one; a broadcast batch
    Tensor x = randn({4, 5, 7}, dt), w = randn({6, 7}, dt);
    CHECK(close(kernels::matmul(x, w.mT(), bias), matmul(x, w.mT()) + bias, tol));
    CHECK(close(kernels::matmul(x.select(0, 1), w.mT(), bias), matmul(x.select(0, 1), w.mT()) + bias, tol));
    Tensor a = randn({2, 1, 3, 7}, dt), b = randn({3, 7, 6}, dt);
    CHECK(close(kernels::matmul(a, b, bias), matmul(a, b) + bias, tol));
    // K = 0: an empty sum, so every row is the bias
    CHECK(close(kernels::matmul(zeros({3, 0}, dt), zeros({0, 6}, dt), bias), bias.expand({3, 6}), 0));
    // nn.Linear's op agrees with the composite it replaces, and its gradients with finite differences
    // (the gradcheck table's "linear" case); here the values of all three gradients against the composite.
    Tensor xl = x.detach().requires_grad_(), wl = w.detach().requires_grad_(), bl = bias.detach().requires_grad_();
    Tensor g = randn({4, 5, 6}, dt);
    std::vector<Tensor> fused = grad({linear(xl, wl, bl)}, {xl, wl, bl}, {g});
    std::vector<Tensor> comp = grad({matmul(xl, wl.mT()) + bl}, {xl, wl, bl}, {g});
    for (int i = 0; i < 3; i++) CHECK(close(fused[i], comp[i], tol));
    CHECK(fused[1].is_contiguous());  // dw in w's (N, K) layout
  }
  CHECK_THROWS_WITH_AS(kernels::matmul(zeros({2, 3}), zeros({3, 4}), zeros({5})), doctest::Contains("bias (5)"), Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({4, 3}), zeros({5})), doctest::Contains("linear: bias (5)"), Error);
}

TEST_CASE("matmul_grad_shared_a: one GEMM chain equals the plain rule sum over the batch of d @ b^T") {
  manual_seed(8);
  for (DType dt : {float32, float64}) {
    const double tol = dt == float32 ? 1e-4 : 1e-12;
    for (int64_t n : {2, 7, 17}) {
      // a (1, M, K) shared by the batch: b (n, 1, K, N) broadcast along dim 1, d (n, 3, M, N); odd M, K, N
      Tensor a = randn({1, 5, 7}, dt), b = randn({n, 1, 7, 9}, dt), d = randn({n, 3, 5, 9}, dt);
      REQUIRE(kernels::matmul_grad_shared_a_applies(a, b, d));
      Tensor plain = sum_to_size(matmul(d, b.mT()), a.shape());
      CHECK(close(kernels::matmul_grad_shared_a(d, b, false).reshape(a.shape()), plain, tol));
      // an `a` stored column-major: the result comes out in that layout
      Tensor ac = randn({7, 5}, dt).mT();
      Tensor col = kernels::matmul_grad_shared_a(d, b, true);
      CHECK(col.stride(0) == 1);
      CHECK(close(col, sum_to_size(matmul(d, b.mT()), ac.shape()), tol));
      // b's rows strided along N: BLAS cannot read them in place, so the op takes the plain rule
      CHECK_FALSE(kernels::matmul_grad_shared_a_applies(a, randn({n, 1, 9, 7}, dt).mT(), d));
    }
  }
  CHECK_FALSE(kernels::matmul_grad_shared_a_applies(zeros({2, 5, 7}), zeros({2, 7, 9}), zeros({2, 5, 9})));
}

TEST_CASE("im2col and col2im: the bounds-once fast path equals the per-element reference") {
  // Odd sizes, strides 1-3, padding wider than the kernel reach, dilation, and windows that leave whole
  // rows or columns of taps outside the image.
  std::vector<kernels::Window2d> wins = {
      {.kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1},
      {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1},
      {.kh = 4, .kw = 4, .sh = 2, .sw = 2, .ph = 1, .pw = 1},
      {.kh = 2, .kw = 5, .sh = 3, .sw = 1, .ph = 0, .pw = 3},
      {.kh = 3, .kw = 2, .sh = 1, .sw = 3, .ph = 2, .pw = 1, .dh = 2, .dw = 3},
      {.kh = 1, .kw = 1, .sh = 1, .sw = 1},
      {.kh = 5, .kw = 5, .sh = 2, .sw = 2, .ph = 2, .pw = 2},
  };
  for (DType dt : {float32, float64})
    for (const auto& w : wins)
      for (Shape s : {Shape{2, 3, 7, 9}, Shape{1, 1, 5, 5}, Shape{3, 2, 11, 6}}) {
        CAPTURE(shape_str(s));
        std::string geometry = "k" + std::to_string(w.kh) + "x" + std::to_string(w.kw) + " s" + std::to_string(w.sh) +
                               "x" + std::to_string(w.sw) + " p" + std::to_string(w.ph) + "x" + std::to_string(w.pw) +
                               " d" + std::to_string(w.dh) + "x" + std::to_string(w.dw);
        CAPTURE(geometry);
        Tensor x = randn(s, dt);
        auto [cols, cols_ref] = fast_and_ref([&] { return kernels::im2col(x, w); });
        CHECK(close(cols, cols_ref, 0));
        Tensor d = randn(cols.shape(), dt);
        auto [img, img_ref] = fast_and_ref([&] { return kernels::col2im(d, s[1], s[2], s[3], w); });
        CHECK(close(img, img_ref, 0));
        // Columns::Batched holds the same numbers as (K, N, L): PerImage's dims 0 and 1 swapped.
        const auto batched = kernels::Columns::Batched;
        auto [bcols, bcols_ref] = fast_and_ref([&] { return kernels::im2col(x, w, batched); });
        CHECK(close(bcols, bcols_ref, 0));
        CHECK(close(bcols, cols.permute({1, 0, 2}).contiguous(), 0));
        Tensor bd = d.permute({1, 0, 2}).contiguous();
        auto [bimg, bimg_ref] = fast_and_ref([&] { return kernels::col2im(bd, s[1], s[2], s[3], w, batched); });
        CHECK(close(bimg, bimg_ref, 0));
        CHECK(close(bimg, img, 0));
      }
  // Many images of one small channel: the fast path works on blocks of images (window_map_images).
  Tensor x = randn({300, 2, 5, 6}, float64);
  kernels::Window2d w{.kh = 3, .kw = 3, .sh = 2, .sw = 1, .ph = 1, .pw = 2};
  for (auto layout : {kernels::Columns::PerImage, kernels::Columns::Batched}) {
    auto [cols, cols_ref] = fast_and_ref([&] { return kernels::im2col(x, w, layout); });
    CHECK(close(cols, cols_ref, 0));
    auto [img, img_ref] = fast_and_ref([&] { return kernels::col2im(cols, 2, 5, 6, w, layout); });
    CHECK(close(img, img_ref, 0));
  }
  CHECK_THROWS_WITH_AS(kernels::col2im(zeros({3, 3, 12}), 1, 4, 5, {.kh = 2, .kw = 2}, kernels::Columns::Batched),
                       "col2im: expected (4,N,12) columns, got (3,3,12)", Error);
}

TEST_CASE("indexing and joining against naive loops, and their errors") {
  Tensor x = arange(0, 12, 1, float32).reshape({3, 4});
  Tensor idx = from_vector<int64_t>({2, 0, 2});
  Tensor s = index_select(x, 0, idx);
  CHECK(s.shape() == Shape{3, 4});
  CHECK(s.at({0, 1}) == 9);
  CHECK(index_select(x, 1, idx).at({1, 0}) == 6);
  Tensor added = index_add(zeros({3, 4}), 0, idx, ones({3, 4}));
  CHECK(added.at({2, 0}) == 2);  // index 2 appears twice
  CHECK(added.at({1, 0}) == 0);
  Tensor gi = from_vector<int64_t>({3, 0, 1, 1}, {2, 2});
  Tensor g = gather(x, 1, gi);
  CHECK(g.to_vector<float>() == std::vector<float>{3, 0, 5, 5});
  Tensor sa = scatter_add(zeros({2, 4}), 1, gi, ones({2, 2}));
  CHECK(sa.to_vector<float>() == std::vector<float>{1, 0, 0, 1, 0, 2, 0, 0});
  Tensor c = cat({x, x.slice(0, 0, 1)}, 0);
  CHECK(c.shape() == Shape{4, 4});
  CHECK(c.at({3, 3}) == 3);
  CHECK(cat({x, x}, 1).at({2, 7}) == 11);
  Tensor st = stack({x, x, x}, 1);
  CHECK(st.shape() == Shape{3, 3, 4});
  auto parts = split(x, 3, 1);
  CHECK(parts.size() == 2);
  CHECK(parts[1].shape() == Shape{3, 1});
  CHECK(chunk(x, 3, 0).size() == 3);
  CHECK_THROWS_WITH_AS(index_select(x, 0, from_vector<int64_t>({3})),
                       doctest::Contains("index_select: index 3 out of range"), Error);
  CHECK_THROWS_AS(index_select(x, 0, tensor({1})), Error);  // float index
  CHECK_THROWS_AS(gather(x, 1, from_vector<int64_t>({4}, {1, 1})), Error);
  CHECK_THROWS_AS(gather(x, 1, from_vector<int64_t>({0}, {1})), Error);
  CHECK_THROWS_AS(scatter_add(zeros({2, 4}), 1, from_vector<int64_t>({-1}, {1, 1}), ones({1, 1})), Error);
  CHECK_THROWS_AS(cat({x, zeros({3, 5})}, 0), Error);
  CHECK_THROWS_AS(cat({}, 0), Error);
  CHECK_THROWS_AS(stack({x, zeros({3, 5})}), Error);
  CHECK_THROWS_AS(split(x, 0, 0), Error);
}

TEST_CASE("results do not depend on the thread count") {
  manual_seed(6);
  Tensor x = randn({300, 1000}), w = randn({1000, 64});
  auto run = [&] {
    return std::vector<Tensor>{sum(x), sum(x, {0}), softmax(x, 1), exp(x) * x, randn({100000}), matmul(x, w)};
  };
  const int before = get_num_threads();
  const bool adaptive = adaptive_threads();
  set_adaptive_threads(false);  // 2 threads even on a busy machine
  set_num_threads(1);
  manual_seed(9);
  std::vector<Tensor> one = run();
  set_num_threads(2);
  manual_seed(9);
  std::vector<Tensor> two = run();
  set_num_threads(before);
  set_adaptive_threads(adaptive);
  for (size_t i = 0; i + 1 < one.size(); i++) CHECK(one[i].to_vector<float>() == two[i].to_vector<float>());
  // gemm's panels (blas.h, "Threads") may round some elements differently, so it agrees to rounding only.
  CHECK(close(one.back(), two.back(), 1e-4));
}
