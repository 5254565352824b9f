// Tests for tensor/kernels/blas.h: OpenBLAS gemm against the reference loop, the auto-selected kernel, syevd, threads.
#include "tensor/kernels/blas.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tensor/shape.h"

using namespace heed;

namespace {

template <class T>
std::vector<T> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = (T)dist(rng);
  return v;
}

// A row-major (rows, cols) matrix stored inside a bigger buffer: `pad` extra columns per row (so the
// leading dimension is cols + pad) and `skip` elements before the first one, like a sub-matrix view.
// The slack is filled with a sentinel so a test can see that nothing outside the view was written.
template <class T>
struct View {
  int64_t rows, cols, ld, skip;
  std::vector<T> buf;
  View(int64_t rows, int64_t cols, int64_t pad, int64_t skip, uint32_t seed)
      : rows(rows), cols(cols), ld(cols + pad), skip(skip), buf(skip + rows * (cols + pad), T(777)) {
    std::vector<T> v = random_values<T>(rows * cols, seed);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) at(i, j) = v[i * cols + j];
  }
  T* data() { return buf.data() + skip; }
  T& at(int64_t i, int64_t j) { return buf[skip + i * ld + j]; }
  bool slack_untouched() const {
    for (int64_t k = 0; k < (int64_t)buf.size(); ++k) {
      int64_t rel = k - skip;
      bool inside = rel >= 0 && rel % ld < cols && rel / ld < rows;
      if (!inside && buf[k] != T(777)) return false;
    }
    return true;
  }
};

// Runs gemm and gemm_ref on the same views and checks every element against a rounding-error bound:
// |fast - ref| <= c * (K+2) * eps * (|alpha| * (|op(A)| @ |op(B)|)[i][j] + |beta| * |C0[i][j]|),
// the standard bound for a dot product of length K, for both results, with margin c = 2.
template <class T>
void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, T beta, int64_t pad) {
  CAPTURE(ta);
  CAPTURE(tb);
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(K);
  CAPTURE(pad);
  View<T> A(ta ? K : M, ta ? M : K, pad, 3, 1), B(tb ? N : K, tb ? K : N, pad, 5, 2);
  View<T> C(M, N, pad, 7, 3);
  View<T> C_ref = C, C0 = C;
  blas::gemm<T>(ta, tb, M, N, K, alpha, A.data(), A.ld, B.data(), B.ld, beta, C.data(), C.ld);
  blas::gemm_ref<T>(ta, tb, M, N, K, alpha, A.data(), A.ld, B.data(), B.ld, beta, C_ref.data(), C_ref.ld);

  // |A| and |B| through the same views, to size the bound.
  View<T> absA = A, absB = B;
  for (T& x : absA.buf) x = std::abs(x);
  for (T& x : absB.buf) x = std::abs(x);
  std::vector<T> mag(M * N, T(0));
  blas::gemm_ref<T>(ta, tb, M, N, K, T(1), absA.data(), absA.ld, absB.data(), absB.ld, T(0), mag.data(), N);

  const double eps = std::numeric_limits<T>::epsilon();
  int64_t bad = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double bound = 2.0 * (K + 2) * eps * (std::abs(alpha) * mag[i * N + j] + std::abs(beta) * std::abs(C0.at(i, j)));
      if (std::abs((double)C.at(i, j) - (double)C_ref.at(i, j)) > bound + std::numeric_limits<T>::min()) ++bad;
    }
  CHECK(bad == 0);
  CHECK(C.slack_untouched());
  CHECK(C_ref.slack_untouched());
}

}  // namespace

TEST_CASE_TEMPLATE("gemm matches gemm_ref: all transposes, odd sizes, views, alpha and beta", T, float, double) {
  struct Case {
    int64_t M, N, K;
  };
  // One dim at a time runs through 1, 7, 17, 129, 1023; the last ones cross OpenBLAS's 64^3 threading
  // threshold, so the multi-threaded path is compared too.
  const Case cases[] = {{1, 1, 1},    {7, 1, 17},    {1, 17, 7},   {17, 7, 1},     {129, 17, 7},
                        {7, 129, 17}, {17, 7, 129},  {1023, 7, 17}, {7, 1023, 17}, {17, 7, 1023},
                        {129, 129, 129}, {1023, 17, 129}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Case& c : cases) {
        check_gemm<T>(ta, tb, c.M, c.N, c.K, T(1), T(0), /*pad=*/0);
        check_gemm<T>(ta, tb, c.M, c.N, c.K, T(-0.5), T(2), /*pad=*/3);
      }
}

TEST_CASE_TEMPLATE("gemm edge cases: empty sizes, beta = 0 ignores C, alpha = 0 ignores A and B", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  SUBCASE("M == 0 or N == 0 writes nothing") {
    std::vector<T> C(4, T(5));
    blas::gemm<T>(false, false, 0, 2, 3, T(1), nullptr, 3, nullptr, 2, T(0), C.data(), 2);
    blas::gemm<T>(false, false, 2, 0, 3, T(1), nullptr, 3, nullptr, 1, T(0), C.data(), 1);
    CHECK(C == std::vector<T>(4, T(5)));
  }
  SUBCASE("K == 0 gives C = beta * C") {
    std::vector<T> C = {1, 2, 3, 4}, C_ref = C;
    blas::gemm<T>(false, false, 2, 2, 0, T(1), nullptr, 1, nullptr, 2, T(3), C.data(), 2);
    blas::gemm_ref<T>(false, false, 2, 2, 0, T(1), nullptr, 1, nullptr, 2, T(3), C_ref.data(), 2);
    CHECK(C == std::vector<T>{3, 6, 9, 12});
    CHECK(C_ref == C);
  }
  SUBCASE("beta == 0: NaN already in C does not survive") {
    std::vector<T> A = {1, 2, 3, 4}, B = {1, 0, 0, 1}, C(4, nan), C_ref(4, nan);
    blas::gemm<T>(false, false, 2, 2, 2, T(1), A.data(), 2, B.data(), 2, T(0), C.data(), 2);
    blas::gemm_ref<T>(false, false, 2, 2, 2, T(1), A.data(), 2, B.data(), 2, T(0), C_ref.data(), 2);
    CHECK(C == A);
    CHECK(C_ref == A);
  }
  SUBCASE("alpha == 0: A and B are not read") {
    std::vector<T> A(4, nan), B(4, nan), C = {1, 2, 3, 4};
    blas::gemm<T>(false, false, 2, 2, 2, T(0), A.data(), 2, B.data(), 2, T(1), C.data(), 2);
    CHECK(C == std::vector<T>{1, 2, 3, 4});
  }
  SUBCASE("a hand-computed product with both transposes") {
    // A^T with A = [[1,2],[3,4]] is [[1,3],[2,4]]; B^T with B = [[5,6],[7,8]] is [[5,7],[6,8]].
    // [[1,3],[2,4]] @ [[5,7],[6,8]] = [[23,31],[34,46]]
    std::vector<T> A = {1, 2, 3, 4}, B = {5, 6, 7, 8}, C(4);
    blas::gemm<T>(true, true, 2, 2, 2, T(1), A.data(), 2, B.data(), 2, T(0), C.data(), 2);
    CHECK(C == std::vector<T>{23, 31, 34, 46});
  }
}

TEST_CASE("gemm rejects bad sizes and leading dimensions") {
  // Separate buffers for A, B and C (BLAS does not allow C to alias its inputs).
  std::vector<float> X(64), Y(64), Z(64);
  float *a = X.data(), *b = Y.data(), *c = Z.data();
  CHECK_THROWS_AS(blas::gemm<float>(false, false, -1, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2), Error);
  // A is (2,3), so lda must be at least 3; transposed it is stored (3,2), so at least 2.
  CHECK_THROWS_AS(blas::gemm<float>(false, false, 2, 2, 3, 1.f, a, 2, b, 2, 0.f, c, 2), Error);
  CHECK_NOTHROW(blas::gemm<float>(true, false, 2, 2, 3, 1.f, a, 2, b, 2, 0.f, c, 2));
  CHECK_THROWS_AS(blas::gemm<float>(false, true, 2, 2, 3, 1.f, a, 3, b, 2, 0.f, c, 2), Error);  // B^T is (2,3)
  CHECK_THROWS_AS(blas::gemm<float>(false, false, 2, 4, 3, 1.f, a, 3, b, 4, 0.f, c, 3), Error);  // ldc < N
  CHECK_THROWS_AS(blas::gemm_ref<float>(false, false, 2, 2, 3, 1.f, a, 2, b, 2, 0.f, c, 2), Error);
  // 2^31 rows do not fit OpenBLAS's int; the check comes before any memory is touched.
  CHECK_THROWS_AS(blas::gemm<float>(false, false, int64_t(1) << 31, 1, 1, 1.f, a, 1, b, 1, 0.f, c, 1), Error);
  bool threw = false;
  try {
    blas::gemm<float>(false, false, 2, 2, 3, 1.f, a, 2, b, 2, 0.f, c, 2);
  } catch (const Error& e) {
    threw = true;
    CHECK(std::string(e.what()).rfind("gemm: lda=2", 0) == 0);
  }
  CHECK(threw);
}

TEST_CASE("blas_info: heed's kernel for this CPU runs unless the user chose one") {
  BlasInfo info = blas_info();
  const CoreChoice choice = coretype_for(this_cpu());
  INFO(blas_summary());
  CHECK(info.library.find("openblas") != std::string::npos);
  CHECK(info.config.rfind("OpenBLAS", 0) == 0);
  CHECK(info.threads >= 1);
  CHECK(!info.core.empty());
  // heed only picks the coretype when the variable was unset; then OpenBLAS must run heed's choice (on an
  // AVX-512 CPU its own detection may give Prescott, 5x slower), and the summary says why.
  if (!info.core_from_user && !choice.core.empty()) {
    CHECK(info.core == choice.core);
    CHECK(blas_summary().find("(auto-selected: " + choice.reason + ")") != std::string::npos);
  }
  // A user's choice stands; when it differs from heed's, the summary names heed's.
  if (info.core_from_user) {
    CHECK(std::getenv("OPENBLAS_CORETYPE") != nullptr);
    CHECK(blas_summary().find("set by the user") != std::string::npos);
    if (!choice.core.empty() && choice.core != info.core)
      CHECK(blas_summary().find("heed would pick " + choice.core) != std::string::npos);
  }
  CHECK(blas_summary().find("core=" + info.core) != std::string::npos);
}

TEST_CASE("coretype_for: the table bench/README.md justifies, one row per CPU seen") {
  // Intel Sapphire Rapids and Cascade Lake (family 6, AVX-512): SkylakeX.
  CHECK(coretype_for({"GenuineIntel", 6, true, true}).core == "SkylakeX");
  // AMD Zen 4 (family 0x19, AVX-512 on 256-bit units): Zen.
  CHECK(coretype_for({"AuthenticAMD", 0x19, true, true}).core == "Zen");
  CHECK(coretype_for({"AuthenticAMD", 0x19, true, true}).reason.find("AMD family 0x19") != std::string::npos);
  // AMD Zen 5 (family 0x1a, full 512-bit units): SkylakeX.
  CHECK(coretype_for({"AuthenticAMD", 0x1a, true, true}).core == "SkylakeX");
  // Not seen, by extension: AVX2 only gives Haswell (Zen 3 included), nothing gives OpenBLAS's own detection.
  CHECK(coretype_for({"AuthenticAMD", 0x19, false, true}).core == "Haswell");
  CHECK(coretype_for({"GenuineIntel", 6, false, true}).core == "Haswell");
  CHECK(coretype_for({"GenuineIntel", 6, false, false}).core.empty());
  // this_cpu reads cpuid: the CPUs heed meets are x86-64 with a vendor string and a family.
  const CpuId cpu = this_cpu();
  CHECK(!cpu.vendor.empty());
  CHECK(cpu.family > 0);
  CHECK(cpu.avx512f == (bool)__builtin_cpu_supports("avx512f"));
}

TEST_CASE("set_num_threads") {
  const int before = get_num_threads();
  CHECK_THROWS_AS(set_num_threads(0), Error);
  CHECK_THROWS_AS(set_num_threads(-3), Error);
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  CHECK(blas_info().threads == 1);
  set_num_threads(before);
  CHECK(get_num_threads() == before);
}

TEST_CASE_TEMPLATE("gemm with 1 and 2 threads: deterministic per thread count, equal to rounding across", T, float,
                   double) {
  // What we observed with OpenBLAS 0.3.21 (SkylakeX kernels) on this machine: for a fixed thread count,
  // repeated calls are bitwise identical. Across thread counts they are NOT always: 1000^3 sgemm differs in
  // about 75% of the elements (max 1.7e-5), and some odd-sized dgemms (129x131x137, 1023x17x129) in a few
  // percent; most shapes, e.g. 512^3, happen to agree bitwise. The threaded driver blocks the work
  // differently, so the sums are rounded in a different order. heed now cuts C into panels itself (blas.h,
  // "Threads"), and OpenBLAS's edge kernels round some elements differently. So across thread counts we
  // check a rounding tolerance, and within one thread count bitwise equality.
  const int before = get_num_threads();
  const bool adaptive = adaptive_threads();
  set_adaptive_threads(false);  // 2 threads even on a busy machine
  const int64_t M = 1000, N = 1000, K = 1000;
  std::vector<T> A = random_values<T>(M * K, 11), B = random_values<T>(K * N, 12);
  std::vector<T> C1(M * N), C1_again(M * N), C2(M * N), C2_again(M * N);
  auto run = [&](std::vector<T>& C) {
    blas::gemm<T>(false, false, M, N, K, T(1), A.data(), K, B.data(), N, T(0), C.data(), N);
  };
  set_num_threads(1);
  run(C1);
  run(C1_again);
  set_num_threads(2);
  run(C2);
  run(C2_again);
  set_num_threads(before);
  set_adaptive_threads(adaptive);

  CHECK(std::memcmp(C1.data(), C1_again.data(), C1.size() * sizeof(T)) == 0);
  CHECK(std::memcmp(C2.data(), C2_again.data(), C2.size() * sizeof(T)) == 0);
  // Entries are sums of K products of numbers in [-1,1]: |C| is about sqrt(K/9) ~ 10, and the error of
  // either order is bounded by K * eps * sum |a||b| <= K * eps * K/4.
  const double tol = (double)K * std::numeric_limits<T>::epsilon() * (double)K / 4;
  double max_diff = 0;
  for (int64_t i = 0; i < M * N; ++i) max_diff = std::max(max_diff, std::abs((double)C1[i] - (double)C2[i]));
  CHECK(max_diff <= tol);
}

TEST_CASE_TEMPLATE("syevd: eigenvectors as rows, eigenvalues ascending", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  SUBCASE("a known 3x3: [[2,1,0],[1,2,1],[0,1,2]] has eigenvalues 2-sqrt2, 2, 2+sqrt2") {
    // The lower triangle holds NaN: syevd reads only the upper one, as documented.
    const T nan = std::numeric_limits<T>::quiet_NaN();
    std::vector<T> a = {2, 1, 0, nan, 2, 1, nan, nan, 2}, w(3);
    blas::syevd<T>(3, a.data(), w.data());
    CHECK(w[0] == doctest::Approx(2 - std::sqrt(2.0)).epsilon(tol));
    CHECK(w[1] == doctest::Approx(2.0).epsilon(tol));
    CHECK(w[2] == doctest::Approx(2 + std::sqrt(2.0)).epsilon(tol));
    // The eigenvector for 2 is (1,0,-1)/sqrt2, up to sign.
    CHECK(std::abs((double)a[3 + 0]) == doctest::Approx(std::sqrt(0.5)).epsilon(tol));
    CHECK(std::abs((double)a[3 + 1]) < tol);
    CHECK((double)a[3 + 0] * (double)a[3 + 2] == doctest::Approx(-0.5).epsilon(tol));
  }
  SUBCASE("a random symmetric 17x17: A v = lambda v, orthonormal rows, ascending") {
    const int64_t n = 17;
    std::vector<T> r = random_values<T>(n * n, 5), A(n * n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) A[i * n + j] = r[i * n + j] + r[j * n + i];
    std::vector<T> V = A, w(n);
    blas::syevd<T>(n, V.data(), w.data());
    for (int64_t k = 0; k + 1 < n; ++k) CHECK(w[k] <= w[k + 1]);
    for (int64_t k = 0; k < n; ++k) {
      const T* v = &V[k * n];  // row k
      for (int64_t i = 0; i < n; ++i) {
        double Av = 0;
        for (int64_t j = 0; j < n; ++j) Av += (double)A[i * n + j] * v[j];
        CHECK(Av == doctest::Approx((double)w[k] * v[i]).epsilon(tol).scale(10));
      }
      for (int64_t l = 0; l < n; ++l) {
        double dot = 0;
        for (int64_t j = 0; j < n; ++j) dot += (double)v[j] * V[l * n + j];
        CHECK(dot == doctest::Approx(k == l ? 1.0 : 0.0).epsilon(tol).scale(1));
      }
    }
  }
  SUBCASE("errors") {
    T x = 0;
    CHECK_THROWS_AS(blas::syevd<T>(-1, &x, &x), Error);
    CHECK_THROWS_AS(blas::syevd<T>(40000, &x, &x), Error);
    CHECK_NOTHROW(blas::syevd<T>(0, nullptr, nullptr));
  }
}

TEST_CASE("OpenBLAS's idle workers sleep soon by default, unless the user says otherwise") {
  // tensor/kernels/blas.cpp sets OPENBLAS_THREAD_TIMEOUT before it loads OpenBLAS, without overriding a user's value.
  blas_info();  // loads OpenBLAS
  CHECK(std::getenv("OPENBLAS_THREAD_TIMEOUT") != nullptr);
}
