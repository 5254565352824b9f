// Tests for tensor/random.h: Philox known answers, the stream layout, the Generator's (seed, offset)
// state, and the uniform and normal recipes.
#include "tensor/random.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/shape.h"

using namespace heed;

TEST_CASE("philox4x32_10 reproduces Random123's known-answer vectors") {
  // From Random123's kat_vectors ("philox4x32 10 <counter> <key> <expected>").
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) ==
        std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  // A fourth, with a single set bit in counter and key, from the longer kat_vectors table as copied in
  // github.com/girving/random123-manual (examples/kat_vectors).
  CHECK(philox4x32_10({1, 0, 0, 0}, {1, 0}) == std::array<uint32_t, 4>{0xac08141b, 0xdfc5ccbe, 0x79c07a47, 0xa7f66093});
}

TEST_CASE("philox_u32: draw i is lane i%4 of block i/4, with 64-bit seed and block") {
  const uint64_t seed = (uint64_t(1) << 40) + 7;  // both key words non-zero
  for (uint64_t block : {uint64_t(0), uint64_t(1), uint64_t(12345), (uint64_t(1) << 32) + 1}) {
    std::array<uint32_t, 4> r = philox4x32_10({(uint32_t)block, (uint32_t)(block >> 32), 0, 0},
                                              {(uint32_t)seed, (uint32_t)(seed >> 32)});
    for (uint64_t lane = 0; lane < 4; ++lane) CHECK(philox_u32(seed, 4 * block + lane) == r[lane]);
  }
  // Pinned from an independent Python implementation of the recipe in random.h.
  CHECK(philox_u32(seed, (uint64_t(1) << 34) + 5) == 0xbcd2cef9);
  CHECK(philox_u32(42, 0) == 0x9ceaf053);
  CHECK(philox_u32(42, 5) == 0x53ba6cfd);
}

TEST_CASE("Generator: same seed, same stream; state is (seed, offset)") {
  Generator a(42), b(42), c(43);
  std::vector<uint32_t> sa, sb, sc;
  for (int i = 0; i < 10; ++i) {
    sa.push_back(a.next_u32());
    sb.push_back(b.next_u32());
    sc.push_back(c.next_u32());
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
  CHECK(sa[0] == philox_u32(42, 0));
  CHECK(a.offset() == 10);

  SUBCASE("manual_seed restarts the stream") {
    a.manual_seed(42);
    CHECK(a.offset() == 0);
    CHECK(a.next_u32() == sa[0]);
  }
  SUBCASE("saving and restoring (seed, offset) resumes exactly") {
    Generator saved = a;
    uint32_t x = a.next_u32();
    Generator restored(saved.seed());
    restored.set_offset(saved.offset());
    CHECK(restored.next_u32() == x);
    CHECK(saved.next_u32() == x);  // the copy is independent of the original
  }
  SUBCASE("reserve hands out consecutive ranges") {
    Generator g(7);
    CHECK(g.reserve(5) == 0);
    CHECK(g.reserve(3) == 5);
    CHECK(g.offset() == 8);
    CHECK(g.next_u32() == philox_u32(7, 8));
    CHECK(g.reserve(0) == 9);
    double d = g.next_double();  // two draws: hi then lo
    CHECK(d == uniform_double(philox_u32(7, 9), philox_u32(7, 10)));
    CHECK(g.offset() == 11);
  }
  SUBCASE("the default generator") {
    manual_seed(123);
    CHECK(default_generator().seed() == 123);
    CHECK(default_generator().offset() == 0);
    CHECK(default_generator().next_u32() == philox_u32(123, 0));
  }
}

TEST_CASE("uniform_float and uniform_double: [0,1), exact ends") {
  CHECK(uniform_float(0) == 0.0f);
  CHECK(uniform_float(0xffffffff) == 1.0f - 0x1.0p-24f);
  CHECK(uniform_float(0xff) == 0.0f);  // the low 8 bits are not used
  CHECK(uniform_double(0, 0) == 0.0);
  CHECK(uniform_double(0xffffffff, 0xffffffff) == 1.0 - 0x1.0p-53);
  CHECK(uniform_double(0x80000000, 0) == 0.5);
}

TEST_CASE_TEMPLATE("fill_uniform: in [0,1), mean 1/2, variance 1/12", T, float, double) {
  const int64_t n = 100000;
  std::vector<T> u(n);
  Generator g(2024);
  fill_uniform(u.data(), n, g);
  CHECK(g.offset() == uniform_draws<T>(n));
  double sum = 0, sum2 = 0;
  bool in_range = true;
  for (T x : u) {
    in_range = in_range && x >= T(0) && x < T(1);
    sum += x;
    sum2 += (double)x * x;
  }
  double mean = sum / n, var = sum2 / n - mean * mean;
  CHECK(in_range);
  // The standard error of the mean is sqrt(1/12/n) ~ 0.0009; 0.005 is over 5 of them.
  CHECK(std::abs(mean - 0.5) < 0.005);
  CHECK(std::abs(var - 1.0 / 12) < 0.003);
}

TEST_CASE_TEMPLATE("fill_normal: mean 0, variance 1, finite", T, float, double) {
  const int64_t n = 100000;
  std::vector<T> z(n);
  Generator g(99);
  fill_normal(z.data(), n, g);
  CHECK(g.offset() == normal_draws<T>(n));
  double sum = 0, sum2 = 0;
  bool finite = true;
  for (T x : z) {
    finite = finite && std::isfinite(x);
    sum += x;
    sum2 += (double)x * x;
  }
  double mean = sum / n, var = sum2 / n - mean * mean;
  CHECK(finite);
  // Standard errors: sqrt(1/n) ~ 0.003 for the mean and sqrt(2/n) ~ 0.0045 for the variance.
  CHECK(std::abs(mean) < 0.02);
  CHECK(std::abs(var - 1.0) < 0.03);
}

TEST_CASE("the recipe is pinned: values from an independent implementation of random.h's description") {
  // Computed in Python from the text of random.h alone (Philox, then the uniform and Box–Muller recipes).
  // If this fails, the numbers every heed program draws have changed.
  std::vector<float> uf(3), nf(3);
  std::vector<double> ud(2), nd(3);
  fill_uniform(uf.data(), 3, 42, 0);
  fill_uniform(ud.data(), 2, 42, 0);
  fill_normal(nf.data(), 3, 42, 0);
  fill_normal(nd.data(), 3, 42, 0);
  CHECK(uf[0] == doctest::Approx(0.612959862).epsilon(1e-8));
  CHECK(uf[1] == doctest::Approx(0.468586504).epsilon(1e-8));
  CHECK(uf[2] == doctest::Approx(0.0732316971).epsilon(1e-8));
  CHECK(ud[0] == doctest::Approx(0.6129598811894158).epsilon(1e-15));
  CHECK(ud[1] == doctest::Approx(0.073231737441583844).epsilon(1e-15));
  CHECK(nf[0] == doctest::Approx(-1.3510921).epsilon(1e-6));
  CHECK(nf[1] == doctest::Approx(0.270192087).epsilon(1e-6));
  CHECK(nf[2] == doctest::Approx(-0.210754141).epsilon(1e-6));
  CHECK(nd[0] == doctest::Approx(1.234541820550271).epsilon(1e-14));
  CHECK(nd[1] == doctest::Approx(0.61184993553045863).epsilon(1e-14));
  CHECK(nd[2] == doctest::Approx(-2.9550533475152116).epsilon(1e-14));
}

TEST_CASE("Box-Muller keeps u1 away from 0") {
  // All-ones bits give the largest uniform, so u1 = 1 - uniform is at its smallest (2^-24 or 2^-53):
  // the result is large but finite.
  std::array<float, 2> zf = box_muller_float(0xffffffff, 0);
  CHECK(std::isfinite(zf[0]));
  CHECK(zf[0] == doctest::Approx(std::sqrt(-2 * std::log(0x1.0p-24))).epsilon(1e-6));
  std::array<double, 2> zd = box_muller_double(0xffffffff, 0xffffffff, 0, 0);
  CHECK(std::isfinite(zd[0]));
  CHECK(zd[0] == doctest::Approx(std::sqrt(-2 * std::log(0x1.0p-53))).epsilon(1e-12));
  // All-zero bits give u1 = 1, radius 0.
  CHECK(box_muller_float(0, 12345)[0] == 0.0f);
}

TEST_CASE_TEMPLATE("fills are independent of the thread count and of how the work is split", T, float, double) {
  // Large enough to run in parallel (the threshold is 2^15 elements), odd to exercise the last pair.
  const int64_t n = 100001;
  const int before = get_num_threads();
  const bool adaptive = adaptive_threads();
  set_adaptive_threads(false);  // 2 threads even on a busy machine
  std::vector<T> u1(n), u2(n), z1(n), z2(n);
  set_num_threads(1);
  fill_uniform(u1.data(), n, 5, 1000);
  fill_normal(z1.data(), n, 5, 1000);
  set_num_threads(2);
  fill_uniform(u2.data(), n, 5, 1000);
  fill_normal(z2.data(), n, 5, 1000);
  set_num_threads(before);
  set_adaptive_threads(adaptive);
  CHECK(std::memcmp(u1.data(), u2.data(), n * sizeof(T)) == 0);
  CHECK(std::memcmp(z1.data(), z2.data(), n * sizeof(T)) == 0);

  // Element i only depends on its index: a fill that starts at the draw where element 10 begins gives
  // elements 10.. of the big fill. (For normals, pairs must line up, so start at an even element.)
  std::vector<T> tail(6);
  fill_uniform(tail.data(), 6, 5, 1000 + uniform_draws<T>(10));
  for (int i = 0; i < 6; ++i) CHECK(tail[i] == u1[10 + i]);
  fill_normal(tail.data(), 6, 5, 1000 + normal_draws<T>(10));
  for (int i = 0; i < 6; ++i) CHECK(tail[i] == z1[10 + i]);

  // An odd count drops the last pair's second value but uses up its draws.
  CHECK(normal_draws<T>(3) == normal_draws<T>(4));
  std::vector<T> three(3), four(4);
  fill_normal(three.data(), 3, 5, 0);
  fill_normal(four.data(), 4, 5, 0);
  for (int i = 0; i < 3; ++i) CHECK(three[i] == four[i]);
}

TEST_CASE("fills reject a negative count") {
  float x = 0;
  Generator g(1);
  CHECK_THROWS_AS(fill_uniform(&x, -1, g), Error);
  CHECK_THROWS_AS(fill_normal(&x, -1, g), Error);
  CHECK(g.offset() == 0);
  CHECK_THROWS_AS(fill_normal(&x, -1, 1, 0), Error);
}
