// Tests for tensor/kernels/loss.cpp: the binary cross-entropy and cross-entropy loops against plain
// per-element definitions, on both kernel levels (kernels::set_use_simd), at odd sizes. (The ops against
// the composite losses and PyTorch's numbers: tests/nn/test_loss.cpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "heed.h"
#include "tensor/kernels/kernels.h"
#include "tensor/kernels/loss.h"

using namespace heed;

TEST_CASE("kernels loss: binary cross-entropy against its definition (sizes 1, 7, 17, 1023, 70001; both levels)") {
  for (DType dt : {float32, float64})
    for (int64_t n : {1, 7, 17, 1023, 70001})  // 70001: chunks over threads, and a short last chunk
      for (bool simd : {true, false}) {
        CAPTURE(n);
        CAPTURE(simd);
        Generator g(n);
        std::vector<double> p = rand({n}, float64, &g).to_vector<double>(),
                            y = rand({n}, float64, &g).to_vector<double>();
        p[0] = n > 1 ? 0.0 : 1.0;  // log 0 is clamped at -100
        Tensor pt = from_vector(p).to(dt), yt = from_vector(y).to(dt), d = ones({n}, dt);
        kernels::set_use_simd(simd);
        std::vector<double> loss = kernels::binary_cross_entropy_forward(pt, yt).to_vector<double>();
        std::vector<double> dp = kernels::binary_cross_entropy_backward(d, pt, yt).to_vector<double>();
        kernels::set_use_simd(true);
        std::vector<double> pr = pt.to_vector<double>(), yr = yt.to_vector<double>();
        const double tol = dt == float32 ? 1e-5 : 1e-13;
        for (int64_t i = 0; i < n; i++) {
          const double lp = std::max(std::log(pr[i]), -100.0), lq = std::max(std::log(1 - pr[i]), -100.0);
          const double want = -(yr[i] * lp + (1 - yr[i]) * lq);
          CHECK(std::fabs(loss[i] - want) <= tol * (1 + std::fabs(want)));
          const double inv_p = pr[i] > std::exp(-100.0) ? 1 / pr[i] : 0,
                       inv_q = 1 - pr[i] > std::exp(-100.0) ? 1 / (1 - pr[i]) : 0;
          const double dwant = (1 - yr[i]) * inv_q - yr[i] * inv_p;
          CHECK(std::fabs(dp[i] - dwant) <= tol * (1 + std::fabs(dwant)));
        }
      }
  CHECK_THROWS_WITH_AS(kernels::binary_cross_entropy_forward(tensor({0.5, 1.5}), tensor({0.0, 1.0})),
                       doctest::Contains("input value 1.500000 at index 1"), Error);
}

TEST_CASE("kernels loss: cross-entropy rows against log-softmax by hand (C = 1, 7, 17, 1023; both levels)") {
  for (DType dt : {float32, float64})
    for (int64_t C : {1, 7, 17, 1023})
      for (bool simd : {true, false}) {
        CAPTURE(C);
        CAPTURE(simd);
        const int64_t N = 5;
        Generator g(C);
        Tensor x = randn({N, C}, dt, &g) * 3.0, t = randint(0, C, {N}, &g), w = rand({C}, dt, &g) + 0.5;
        std::vector<int64_t> tv = t.to_vector<int64_t>();
        tv[2] = -100;  // ignored
        const double eps = 0.1;
        kernels::CrossEntropyRows r = kernels::cross_entropy_row_constants(from_vector(tv), w, C, -100, eps);
        Tensor dout = randn({N}, dt, &g);
        kernels::set_use_simd(simd);
        std::vector<double> loss = kernels::cross_entropy_forward(x, r).to_vector<double>();
        std::vector<double> dx = kernels::cross_entropy_backward(dout, x, r).to_vector<double>();
        kernels::set_use_simd(true);
        std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), dv = dout.to_vector<double>();
        const double tol = dt == float32 ? 1e-4 : 1e-11;
        double W = 0, weight_sum = 0;
        for (double v : wv) W += v;
        for (int64_t i = 0; i < N; i++) {
          CAPTURE(i);
          if (tv[i] == -100) {
            CHECK(loss[i] == 0);
            for (int64_t c = 0; c < C; c++) CHECK(dx[i * C + c] == 0);
            continue;
          }
          weight_sum += wv[tv[i]];
          double m = -INFINITY, s = 0;
          for (int64_t c = 0; c < C; c++) m = std::max(m, xv[i * C + c]);
          for (int64_t c = 0; c < C; c++) s += std::exp(xv[i * C + c] - m);
          const double lse = m + std::log(s);
          double want = (1 - eps) * wv[tv[i]] * (lse - xv[i * C + tv[i]]);
          for (int64_t c = 0; c < C; c++) want += eps / C * wv[c] * (lse - xv[i * C + c]);
          CHECK(std::fabs(loss[i] - want) <= tol * (1 + std::fabs(want)));
          const double a = (1 - eps) * wv[tv[i]] + eps * W / C;
          for (int64_t c = 0; c < C; c++) {
            const double b = (c == tv[i] ? (1 - eps) * wv[tv[i]] : 0) + eps * wv[c] / C;
            const double dwant = dv[i] * (std::exp(xv[i * C + c] - lse) * a - b);
            CHECK(std::fabs(dx[i * C + c] - dwant) <= tol * (1 + std::fabs(dwant)));
          }
        }
        CHECK(r.weight_sum == doctest::Approx(weight_sum));
      }
  CHECK_THROWS_WITH_AS(kernels::cross_entropy_row_constants(tensor({0, 3}, int64), Tensor(), 3, -100, 0),
                       doctest::Contains("target 3 at index 1 is out of range for 3 classes"), Error);
}
