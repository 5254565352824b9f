// test_simd.cpp: every SIMD row kernel against its scalar reference (tensor/kernels/simd.h), and the
// transcendental functions against std:: to the ulp on 10^6 points each.
#include "tensor/kernels/simd.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace heed::simd;

namespace {

template <class T> constexpr T kInf = std::numeric_limits<T>::infinity();
template <class T> constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

// ---- ulp distance ------------------------------------------------------------------------------------

// Maps a float's bits to an integer that is monotone in the float's value: consecutive floats map to
// consecutive integers, and -0 and +0 both map to 0. The ulp distance is then a subtraction.
template <class T>
int64_t ordered_bits(T v) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  I i;
  std::memcpy(&i, &v, sizeof v);
  return i < 0 ? -int64_t(i & std::numeric_limits<I>::max()) : int64_t(i);
}

// How many representable values lie between a and b. NaN matches only NaN; inf is one ulp above the
// largest finite value, so an overflow that std:: does not make counts as 1 ulp, not 0.
template <class T>
double ulp_distance(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : kInf<double>;
  const __int128 d = (__int128)ordered_bits(a) - ordered_bits(b);
  return double(d < 0 ? -d : d);
}

TEST_CASE("ulp_distance counts representable values") {
  CHECK(ulp_distance(1.0f, 1.0f) == 0);
  CHECK(ulp_distance(1.0f, std::nextafter(1.0f, 2.0f)) == 1);
  CHECK(ulp_distance(0.0f, -0.0f) == 0);
  CHECK(ulp_distance(std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()) == 2);
  CHECK(ulp_distance(std::numeric_limits<float>::max(), kInf<float>) == 1);
  CHECK(ulp_distance(kNaN<float>, kNaN<float>) == 0);
  CHECK(ulp_distance(kNaN<double>, 0.0) == kInf<double>);
  CHECK(ulp_distance(1.0, std::nextafter(1.0, 0.0)) == 1);
}

TEST_CASE("all_unary and all_binary list every enumerator once, in order") {
  // The sweeps below iterate these lists, so they must be complete. simd.cpp refuses to compile a switch
  // that misses an enumerator; here we check the walk itself: in order, named, and stopping at the end.
  const std::vector<Unary>& u = all_unary();
  REQUIRE(!u.empty());
  for (size_t i = 0; i < u.size(); ++i) CHECK(static_cast<size_t>(u[i]) == i);
  CHECK(u.front() == Unary::Neg);
  CHECK(std::string(unary_name(Unary(u.size()))) == "?");
  const std::vector<Binary>& b = all_binary();
  REQUIRE(!b.empty());
  for (size_t i = 0; i < b.size(); ++i) CHECK(static_cast<size_t>(b[i]) == i);
  CHECK(b.front() == Binary::Add);
  CHECK(std::string(binary_name(Binary(b.size()))) == "?");
}

// ---- inputs ------------------------------------------------------------------------------------------

const std::vector<int64_t> kSizes = {0, 1, 7, 17, 1023};

template <class T>
std::vector<T> random_row(int64_t n, T lo, T hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = T(dist(rng));
  return v;
}

// Values every elementwise test should see: signed zeros, subnormals, the ends of the range, inf, NaN.
template <class T>
std::vector<T> special_values() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {T(0), -T(0), L::denorm_min(), -L::denorm_min(), L::min(), -L::min(), L::max(), -L::max(),
                      kInf<T>, -kInf<T>, kNaN<T>, T(1), T(-1), T(0.5), T(-0.5), T(2), T(-2), T(20), T(20.5)};
  return v;
}

// 10^6 deterministic points for one function: the special values; a few ulps either side of the
// function's edges (where exp overflows, goes subnormal, underflows); an even grid over [lo, hi], where
// the function does its work; and magnitudes spread evenly in log2 from the smallest subnormal to the
// largest finite value, both signs.
template <class T>
std::vector<T> accuracy_points(T lo, T hi, std::vector<T> edges) {
  using L = std::numeric_limits<T>;
  constexpr int64_t kTotal = 1'000'000;
  std::vector<T> v = special_values<T>();
  for (T e : edges) {
    T up = e, down = e;
    for (int k = 0; k < 8; ++k) {
      v.push_back(up);
      v.push_back(down);
      up = std::nextafter(up, kInf<T>);
      down = std::nextafter(down, -kInf<T>);
    }
  }
  const int64_t grid = (kTotal - (int64_t)v.size()) * 3 / 4;
  for (int64_t i = 0; i < grid; ++i) v.push_back(T(lo + (hi - lo) * ((long double)i / (grid - 1))));
  const long double e_lo = std::log2((long double)L::denorm_min()), e_hi = std::log2((long double)L::max());
  const int64_t spread = kTotal - (int64_t)v.size();
  for (int64_t i = 0; i < spread; ++i) {
    const T m = T(std::exp2(e_lo + (e_hi - e_lo) * ((long double)(i / 2) / (spread / 2))));
    v.push_back(i % 2 ? -m : m);
  }
  return v;
}

bool is_exact(Unary op) {
  switch (op) {
    case Unary::Neg: case Unary::Abs: case Unary::Sqrt: case Unary::Rsqrt: case Unary::Sign: case Unary::Relu:
    case Unary::LeakyRelu: case Unary::Clamp: case Unary::Square: case Unary::Reciprocal:
      return true;
    default:
      return false;
  }
}

UnaryArgs args_for(Unary op) {
  switch (op) {
    case Unary::Pow: return {1.5, 0};
    case Unary::Clamp: return {-0.5, 0.75};
    case Unary::LeakyRelu: return {0.01, 0};
    case Unary::Elu: return {1.0, 0};
    default: return {};
  }
}

// Largest ulp distance between two rows, with the index where it occurs (for the failure message).
template <class T>
std::pair<double, int64_t> max_ulp(const std::vector<T>& a, const std::vector<T>& b) {
  std::pair<double, int64_t> worst{0, -1};
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = ulp_distance(a[i], b[i]);
    if (d > worst.first) worst = {d, (int64_t)i};
  }
  return worst;
}

}  // namespace

// =====================================================================================================
// Elementwise: SIMD against the reference
// =====================================================================================================

TEST_CASE_TEMPLATE("unary_simd matches unary_ref for every op, size and the strided path", T, float, double) {
  for (Unary op : all_unary()) {  // every enumerator: a new op is swept here with no row to add
    const UnaryArgs args = args_for(op);
    for (int64_t n : kSizes) {
      const std::string name = unary_name(op);
      CAPTURE(name);
      CAPTURE(n);
      std::vector<T> x = random_row<T>(n, T(-6), T(6), 7 + (uint32_t)n);
      const auto specials = special_values<T>();
      for (size_t i = 0; i < specials.size() && i < x.size(); ++i) x[(i * 37) % n] = specials[i];

      std::vector<T> y_ref(n), y_simd(n);
      unary_ref(op, x.data(), 1, y_ref.data(), 1, n, args);
      unary_simd(op, x.data(), y_simd.data(), n, args);
      const auto [ulp, at] = max_ulp(y_simd, y_ref);
      const T x_at = at >= 0 ? x[at] : T(0), simd_at = at >= 0 ? y_simd[at] : T(0), ref_at = at >= 0 ? y_ref[at] : T(0);
      CAPTURE(x_at);
      CAPTURE(simd_at);
      CAPTURE(ref_at);
      if (is_exact(op)) CHECK(ulp == 0);
      else CHECK(ulp <= 4);

      // The strided reference (x every other element, y every third) computes the same values.
      std::vector<T> x2(2 * n), y3(3 * n + 1, T(-7));
      for (int64_t i = 0; i < n; ++i) x2[2 * i] = x[i];
      unary_ref(op, x2.data(), 2, y3.data(), 3, n, args);
      for (int64_t i = 0; i < n; ++i) CHECK(ulp_distance(y3[3 * i], y_ref[i]) == 0);

      // In place (y == x) gives the same bits as out of place.
      std::vector<T> inplace = x;
      unary_simd(op, inplace.data(), inplace.data(), n, args);
      CHECK(max_ulp(inplace, y_simd).first == 0);
    }
  }
}

TEST_CASE_TEMPLATE("unary_simd: an element's result does not depend on its position in the row", T, float, double) {
  // The tail of a row goes through the same vector code as the body, so cutting a tensor into rows
  // differently never changes a bit.
  const std::vector<T> x = random_row<T>(1023, T(-9), T(9), 3);
  for (Unary op : {Unary::Exp, Unary::GeluErf, Unary::GeluTanh, Unary::Tanh, Unary::Erf, Unary::Pow}) {
    const std::string name = unary_name(op);
    CAPTURE(name);
    std::vector<T> whole(1023), part(17);
    unary_simd(op, x.data(), whole.data(), 1023, args_for(op));
    unary_simd(op, x.data() + 1000, part.data(), 17, args_for(op));
    for (int i = 0; i < 17; ++i) CHECK(ulp_distance(part[i], whole[1000 + i]) == 0);
  }
}

TEST_CASE_TEMPLATE("unary: NaN, inf and zero follow std:: and PyTorch", T, float, double) {
  auto f = [](Unary op, T x, UnaryArgs args = {}) {
    T ref, vec;
    unary_ref(op, &x, 1, &ref, 1, 1, args);
    unary_simd(op, &x, &vec, 1, args);
    CHECK(ulp_distance(ref, vec) == 0);
    return vec;
  };
  CHECK(std::isnan(f(Unary::Relu, kNaN<T>)));
  CHECK(std::isnan(f(Unary::Sign, kNaN<T>)));  // NumPy's answer; torch.sign(nan) is 0
  CHECK(f(Unary::Sign, T(0)) == 0);
  CHECK(f(Unary::Sign, T(-3)) == -1);
  CHECK(std::isnan(f(Unary::Clamp, kNaN<T>, {0, 1})));
  CHECK(f(Unary::Clamp, T(5), {2, 1}) == 1);  // min > max: max wins, like torch.clamp
  CHECK(f(Unary::Exp, -kInf<T>) == 0);
  CHECK(f(Unary::Exp, kInf<T>) == kInf<T>);
  CHECK(f(Unary::Log, T(0)) == -kInf<T>);
  CHECK(std::isnan(f(Unary::Log, T(-1))));
  CHECK(f(Unary::Sigmoid, -kInf<T>) == 0);
  CHECK(f(Unary::Sigmoid, kInf<T>) == 1);
  CHECK(f(Unary::Tanh, -kInf<T>) == -1);
  CHECK(f(Unary::Erf, kInf<T>) == 1);
  CHECK(f(Unary::Softplus, T(1000)) == 1000);
  CHECK(f(Unary::Softplus, -kInf<T>) == 0);
  CHECK(f(Unary::GeluErf, kInf<T>) == kInf<T>);
  CHECK(f(Unary::GeluTanh, kInf<T>) == kInf<T>);
  CHECK(std::isnan(f(Unary::GeluErf, -kInf<T>)));  // 0.5 * -inf * 0, as the formula (and torch) give
  CHECK(f(Unary::Elu, -kInf<T>, {2.0, 0}) == -2);
  CHECK(f(Unary::Rsqrt, T(0)) == kInf<T>);
  CHECK(f(Unary::Pow, T(3), {2, 0}) == 9);
  CHECK(f(Unary::Pow, T(-2), {3, 0}) == -8);
  CHECK(f(Unary::Pow, T(0), {-1, 0}) == kInf<T>);
  CHECK(std::signbit(f(Unary::Pow, -T(0), {3, 0})));
}

TEST_CASE_TEMPLATE("pow follows std::pow on every special case", T, float, double) {
  const std::vector<T> bases = {T(0), -T(0), T(1), T(-1), T(2), T(-2), T(0.5), T(-0.5), T(3.7), kInf<T>, -kInf<T>,
                                kNaN<T>, std::numeric_limits<T>::denorm_min(), T(1e-30)};
  const std::vector<T> exps = {T(0), -T(0), T(1), T(-1), T(2), T(3), T(-3), T(0.5), T(-0.5), T(1.5), T(1e10),
                               kInf<T>, -kInf<T>, kNaN<T>};
  for (T b : bases) {
    for (T e : exps) {
      CAPTURE(b);
      CAPTURE(e);
      T ref, vec, un;
      binary_ref(Binary::Pow, &b, 1, &e, 1, &ref, 1, 1);
      binary_simd(Binary::Pow, &b, 1, &e, 1, &vec, 1);
      unary_simd(Unary::Pow, &b, &un, 1, {double(e), 0});
      CHECK(ulp_distance(vec, ref) <= 1);
      CHECK(ulp_distance(un, ref) <= 1);
      if (!std::isnan(ref)) CHECK(std::signbit(vec) == std::signbit(ref));
    }
  }
}

TEST_CASE_TEMPLATE("binary_simd matches binary_ref for row/scalar strides and aliasing", T, float, double) {
  const std::vector<Binary>& ops = all_binary();  // every enumerator
  for (Binary op : ops) {
    for (int64_t n : kSizes) {
      std::vector<T> a = random_row<T>(n, T(0.1), T(4), 11 + (uint32_t)n);
      std::vector<T> b = random_row<T>(n, T(-3), T(3), 13 + (uint32_t)n);
      if (n >= 7) {  // NaN on either side, and signed zeros, for maximum/minimum
        a[1] = kNaN<T>;
        b[2] = kNaN<T>;
        a[3] = T(0);
        b[3] = -T(0);
      }
      for (int64_t sa : {0, 1}) {
        for (int64_t sb : {0, 1}) {
          CAPTURE((int)op);
          CAPTURE(n);
          CAPTURE(sa);
          CAPTURE(sb);
          std::vector<T> y_ref(n), y_simd(n);
          binary_ref(op, a.data(), sa, b.data(), sb, y_ref.data(), 1, n);
          binary_simd(op, a.data(), sa, b.data(), sb, y_simd.data(), n);
          CHECK(max_ulp(y_simd, y_ref).first <= (op == Binary::Pow ? 1 : 0));
          // In place on either operand.
          if (n > 0 && sa == 1) {
            std::vector<T> inplace = a;
            binary_simd(op, inplace.data(), 1, b.data(), sb, inplace.data(), n);
            CHECK(max_ulp(inplace, y_simd).first == 0);
          }
          if (n > 0 && sb == 1) {
            std::vector<T> inplace = b;
            binary_simd(op, a.data(), sa, inplace.data(), 1, inplace.data(), n);
            CHECK(max_ulp(inplace, y_simd).first == 0);
          }
        }
      }
      // Strided reference: a every other element.
      std::vector<T> a2(2 * n), y_strided(n), y_simd(n);
      for (int64_t i = 0; i < n; ++i) a2[2 * i] = a[i];
      binary_ref(op, a2.data(), 2, b.data(), 1, y_strided.data(), 1, n);
      binary_simd(op, a.data(), 1, b.data(), 1, y_simd.data(), n);
      CHECK(max_ulp(y_simd, y_strided).first <= (op == Binary::Pow ? 1 : 0));
    }
  }
}

TEST_CASE_TEMPLATE("maximum and minimum propagate NaN from either side", T, float, double) {
  const T a[2] = {kNaN<T>, T(1)}, b[2] = {T(1), kNaN<T>};
  T y[2];
  binary_simd(Binary::Maximum, a, 1, b, 1, y, 2);
  CHECK(std::isnan(y[0]));
  CHECK(std::isnan(y[1]));
  binary_simd(Binary::Minimum, a, 1, b, 1, y, 2);
  CHECK(std::isnan(y[0]));
  CHECK(std::isnan(y[1]));
}

// =====================================================================================================
// Accuracy: the vector math against std:: on 10^6 points
// =====================================================================================================
//
// The reference evaluates std::exp, std::erfc, ... one type wider (float in double, double in long
// double) and rounds once, so it is within about half an ulp of the exact answer; for gelu it is the
// formula itself computed that way (written with erfc, resp. as x*sigmoid(2u), which are the same
// functions without the cancellation 1 + erf(t) and 1 + tanh(u) suffer in the negative tail).
// Every function must stay within 4 ulp of it everywhere, including subnormals, overflow and
// underflow edges, +-inf and NaN. The max ulp seen is printed for the record.

namespace {
template <class T>
struct Accuracy {
  Unary op;
  T lo, hi;              // where the even grid goes
  std::vector<T> edges;  // where a few ulps either side are probed
  UnaryArgs args{};
};

template <class T>
std::vector<Accuracy<T>> accuracy_table() {
  // exp's edges: overflow (ln of the largest finite value), the last normal result, and the point below
  // which even the smallest subnormal rounds to 0.
  const bool f32 = sizeof(T) == 4;
  const T ovf = f32 ? T(88.72283935546875) : T(709.782712893384);
  const T sub = f32 ? T(-87.33654475) : T(-708.3964185322641);
  const T unf = f32 ? T(-103.972077083991796) : T(-745.1332191019411);
  return {
      {Unary::Exp, unf - 2, ovf + 2, {ovf, sub, unf, T(0)}},
      {Unary::Log, T(0), T(4), {T(1), std::numeric_limits<T>::min()}},
      {Unary::Tanh, T(-12), T(12), {T(0.5), T(-0.5), T(0.55), T(9), T(19.1)}},
      {Unary::Sigmoid, unf - 2, T(40), {-ovf, -sub, unf, T(0)}},
      {Unary::Erf, T(-7), T(7), {T(0.5), T(-0.5), T(1e-30)}},
      {Unary::GeluErf, f32 ? T(-15) : T(-40), T(8), {T(-0.7071), T(0.7071), f32 ? T(-14.2) : T(-38.5)}},
      {Unary::GeluTanh, f32 ? T(-12) : T(-28), T(8), {f32 ? T(-10.42) : T(-27.2)}},
      {Unary::Silu, unf - 2, T(40), {-ovf, unf}},
      {Unary::Softplus, unf - 2, T(40), {T(20), unf}},
      {Unary::Elu, T(-20), T(5), {T(0)}, {1.0, 0}},
      {Unary::Pow, T(0), T(100), {T(1)}, {1.5, 0}},
      {Unary::Pow, T(-50), T(50), {T(-1)}, {-3, 0}},
  };
}
}  // namespace

TEST_CASE("every Unary is exact (is_exact) or has a row in the accuracy table") {
  // A new transcendental op must be measured against std:: on 10^6 points, not only against its
  // reference on a few random rows: add its row to accuracy_table, or to is_exact if it rounds once.
  const auto table = accuracy_table<double>();
  for (Unary op : all_unary()) {
    const std::string name = unary_name(op);
    CAPTURE(name);
    const bool measured = std::any_of(table.begin(), table.end(), [&](const auto& c) { return c.op == op; });
    CHECK((is_exact(op) || measured));
  }
}

TEST_CASE_TEMPLATE("vector math is within 4 ulp of std:: on 10^6 points", T, float, double) {
  for (const auto& c : accuracy_table<T>()) {
    const std::vector<T> x = accuracy_points<T>(c.lo, c.hi, c.edges);
    const int64_t n = (int64_t)x.size();
    std::vector<T> y_ref(n), y_simd(n);
    unary_ref(c.op, x.data(), 1, y_ref.data(), 1, n, c.args);
    unary_simd(c.op, x.data(), y_simd.data(), n, c.args);
    const auto [ulp, at] = max_ulp(y_simd, y_ref);
    const std::string name = std::string(unary_name(c.op)) + (c.op == Unary::Pow ? "^" + std::to_string(c.args.a) : "");
    MESSAGE(name << " " << (sizeof(T) == 4 ? "float32" : "float64") << ": max " << ulp << " ulp over " << n
                 << " points" << (at >= 0 ? " (at x = " + std::to_string(double(x[at])) + ")" : ""));
    CAPTURE(name);
    if (at >= 0) {
      CAPTURE(x[at]);
      CAPTURE(y_simd[at]);
      CAPTURE(y_ref[at]);
      CHECK(ulp <= 4);
    }
  }
}

// =====================================================================================================
// Reductions
// =====================================================================================================

TEST_CASE_TEMPLATE("sum: SIMD and reference agree bit for bit, and are close to the exact sum", T, float, double) {
  for (int64_t n : {0, 1, 7, 17, 63, 64, 65, 1023, 4096, 4097, 12289, 100000}) {
    CAPTURE(n);
    const std::vector<T> x = random_row<T>(n, T(-1), T(1), 5 + (uint32_t)n);
    const T s_simd = sum_simd(x.data(), n);
    const T s_ref = sum_ref(x.data(), 1, n);
    CHECK(ulp_distance(s_simd, s_ref) == 0);

    // The order depends on n only, so a strided row sums to the same bits as its contiguous copy.
    std::vector<T> x3(3 * n);
    for (int64_t i = 0; i < n; ++i) x3[3 * i] = x[i];
    CHECK(ulp_distance(sum_ref(x3.data(), 3, n), s_simd) == 0);

    long double exact = 0, mag = 0;
    for (T v : x) {
      exact += v;
      mag += std::fabs((long double)v);
    }
    // 64 partials of n/64 terms each, then log2 levels of tree: the error bound is (n/64 + 70) eps sum|x|.
    const long double eps = std::numeric_limits<T>::epsilon();
    CHECK(std::fabs((long double)s_simd - exact) <= (n / 64 + 70) * eps * mag);
  }
  CHECK(sum_simd<float>(nullptr, 0) == 0);
  CHECK(sum_ref<double>(nullptr, 1, 0) == 0);
}

TEST_CASE_TEMPLATE("max: SIMD matches reference and propagates NaN from any position", T, float, double) {
  for (int64_t n : {1, 7, 17, 64, 65, 1023}) {
    CAPTURE(n);
    std::vector<T> x = random_row<T>(n, T(-100), T(100), 9 + (uint32_t)n);
    CHECK(max_simd(x.data(), n) == max_ref(x.data(), 1, n));
    std::vector<T> x2(2 * n);
    for (int64_t i = 0; i < n; ++i) x2[2 * i] = x[i];
    CHECK(max_ref(x2.data(), 2, n) == max_simd(x.data(), n));
    for (int64_t pos : {int64_t(0), n / 2, n - 1}) {
      std::vector<T> y = x;
      y[pos] = kNaN<T>;
      CHECK(std::isnan(max_simd(y.data(), n)));
      CHECK(std::isnan(max_ref(y.data(), 1, n)));
    }
    std::vector<T> masked(n, -kInf<T>);
    CHECK(max_simd(masked.data(), n) == -kInf<T>);
  }
}

TEST_CASE_TEMPLATE("accumulate adds a row into column sums", T, float, double) {
  for (int64_t n : kSizes) {
    const std::vector<T> x = random_row<T>(n, T(-1), T(1), 21 + (uint32_t)n);
    std::vector<T> acc_simd = random_row<T>(n, T(-1), T(1), 23 + (uint32_t)n), acc_ref = acc_simd;
    accumulate_simd(acc_simd.data(), x.data(), n);
    std::vector<T> x2(2 * n);
    for (int64_t i = 0; i < n; ++i) x2[2 * i] = x[i];
    accumulate_ref(acc_ref.data(), x2.data(), 2, n);
    CHECK(max_ulp(acc_simd, acc_ref).first == 0);
  }
}

// =====================================================================================================
// Softmax
// =====================================================================================================

TEST_CASE_TEMPLATE("softmax rows sum to 1 and match the reference", T, float, double) {
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  for (int64_t n : {1, 7, 17, 1023}) {
    for (bool log : {false, true}) {
      CAPTURE(n);
      CAPTURE(log);
      const std::vector<T> x = random_row<T>(n, T(-30), T(30), 31 + (uint32_t)n);
      std::vector<T> y_ref(n), y_simd(n);
      softmax_row_ref(x.data(), y_ref.data(), n, log);
      softmax_row_simd(x.data(), y_simd.data(), n, log);
      long double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        const T p = log ? std::exp(y_simd[i]) : y_simd[i];
        total += p;
        if (log) CHECK(std::fabs(y_simd[i] - y_ref[i]) <= tol * (1 + std::fabs(y_ref[i])));
        else CHECK(std::fabs(y_simd[i] - y_ref[i]) <= tol * y_ref[i] + std::numeric_limits<T>::denorm_min());
      }
      CHECK(std::fabs(double(total) - 1) <= tol);
      // In place gives the same bits.
      std::vector<T> inplace = x;
      softmax_row_simd(inplace.data(), inplace.data(), n, log);
      CHECK(max_ulp(inplace, y_simd).first == 0);
    }
  }
}

TEST_CASE_TEMPLATE("softmax of masked rows: -inf entries get 0, a fully masked row is all 0", T, float, double) {
  for (auto softmax : {softmax_row_ref<T>, softmax_row_simd<T>}) {
    // Partly masked: the masked entries get probability 0 (log: -inf), the others renormalise.
    std::vector<T> x = {T(1), -kInf<T>, T(2), -kInf<T>, T(3), T(0), -kInf<T>, T(-1), T(0.5)};
    const int64_t n = (int64_t)x.size();
    std::vector<T> y(n), logy(n);
    softmax(x.data(), y.data(), n, false);
    softmax(x.data(), logy.data(), n, true);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (x[i] == -kInf<T>) {
        CHECK(y[i] == 0);
        CHECK(logy[i] == -kInf<T>);
      }
      total += y[i];
    }
    CHECK(total == doctest::Approx(1).epsilon(1e-6));

    // Fully masked (an attention row with nothing to attend to): zeros, not PyTorch's NaN, so that the
    // row contributes nothing downstream; log-softmax gives log 0 = -inf, consistent with it.
    for (int64_t m : {1, 7, 17, 100}) {
      std::vector<T> all(m, -kInf<T>), out(m, T(5));
      softmax(all.data(), out.data(), m, false);
      for (T v : out) CHECK(v == 0);
      softmax(all.data(), out.data(), m, true);
      for (T v : out) CHECK(v == -kInf<T>);
    }

    // NaN anywhere poisons the row, as in PyTorch.
    std::vector<T> bad = {T(1), kNaN<T>, T(2)}, out(3);
    softmax(bad.data(), out.data(), 3, false);
    for (T v : out) CHECK(std::isnan(v));
  }
}
