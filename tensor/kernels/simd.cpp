// simd.cpp: elementwise and reduction row kernels, a scalar reference beside each xsimd version.
//
// Reading order:
//   1. the scalar reference: what every op means (unary_ref, binary_ref, sum_ref, ..., softmax_row_ref);
//   2. vector math: exp, erf/erfc, sigmoid and the two GELUs on whole batches;
//   3. the SIMD row loops that apply them (unary_simd, binary_simd);
//   4. SIMD reductions and the fused softmax.
//
// Why not just call xsimd's math functions? We measured xsimd 8.1 against std:: and kept what is
// accurate, replacing what is not. The last column is what tests/tensor/test_simd.cpp measures for
// heed's versions: the largest distance, in ulp, from std:: evaluated one type wider and rounded once,
// over 10^6 points per function that include +-0, subnormals, huge values, +-inf, NaN and the
// overflow/underflow edges. The test fails above 4 ulp.
//
//   function   xsimd 8.1                                     heed                                 ulp f32/f64
//   exp        0 below x = -87.3 (no subnormal results);     own: Cody-Waite reduction, Taylor    1 / 1
//              inf above 88.38, though exp(88.7) is finite   polynomial, two-step 2^n scaling
//   log        1 ulp; float64 garbage for subnormal inputs   xsimd::log, subnormals prescaled     1 / 1
//   tanh       1 ulp                                         xsimd::tanh                          1 / 1
//   erf        2 ulp in float32, 68 ulp in float64           own: Taylor near 0, erfc beyond      2 / 2
//   erfc       355000 ulp for large x: exp(-x*x) is taken    own: x^2 carried exactly into exp,   (in gelu)
//              of the rounded square                         times a fitted polynomial
//   sigmoid    (none)                                        e/(1+e), e = exp(-|x|)               2 / 2
//   silu       (none)                                        x * sigmoid(x)                       3 / 3
//   gelu_erf   (none)                                        0.5 x erfc(-x/sqrt2)                 3 / 3
//   gelu_tanh  (none)                                        x sigmoid(2u), 2u in hi + lo         3 / 3
//   softplus   (none)                                        xsimd::log1p(exp(x))                 1 / 1
//   elu        (none)                                        xsimd::expm1                         2 / 2
//   pow        14-30 ulp; pow(0, -1) is not inf              float32: exp(a log|x|) in double     1 / 1
//                                                            lanes; float64: std::pow
//
// Three more xsimd 8.1 surprises on AVX-512, each handled where it matters:
//   - fma(x, y, z) has no AVX-512 kernel; the generic x*y + z is fused only if the compiler contracts
//     it, and never when the product is reused. fma_exact() always fuses.
//   - unary minus is 0 - x, so -(+0) is +0. negate() flips the sign bit instead.
//   - x != y is an ordered compare, false when either side is NaN. NaN tests use xsimd::isnan.
//   (And rsqrt is _mm512_rsqrt23_ps, which exists only on Xeon Phi; heed does not call it.)
#include "tensor/kernels/simd.h"

// GCC 12.2 reports -Wuninitialized inside its own avx512fintrin.h whenever an AVX-512 intrinsic that
// starts from _mm512_undefined_*() is inlined (GCC bug 105593). The pragmas cover
// the intrinsic headers' lines only; heed's own code below keeps the warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

// Every switch over Unary or Binary below must handle every enumerator: a new op without its name, its
// reference or its SIMD loop does not compile, instead of silently returning x.
#pragma GCC diagnostic error "-Wswitch"

namespace heed::simd {

const char* unary_name(Unary op) {
  switch (op) {
    case Unary::Neg: return "neg";
    case Unary::Exp: return "exp";
    case Unary::Log: return "log";
    case Unary::Sqrt: return "sqrt";
    case Unary::Rsqrt: return "rsqrt";
    case Unary::Abs: return "abs";
    case Unary::Sign: return "sign";
    case Unary::Tanh: return "tanh";
    case Unary::Sigmoid: return "sigmoid";
    case Unary::Relu: return "relu";
    case Unary::LeakyRelu: return "leaky_relu";
    case Unary::Elu: return "elu";
    case Unary::GeluTanh: return "gelu_tanh";
    case Unary::GeluErf: return "gelu_erf";
    case Unary::Silu: return "silu";
    case Unary::Softplus: return "softplus";
    case Unary::Erf: return "erf";
    case Unary::Pow: return "pow";
    case Unary::Clamp: return "clamp";
    case Unary::Square: return "square";
    case Unary::Reciprocal: return "reciprocal";
  }
  return "?";
}

const char* binary_name(Binary op) {
  switch (op) {
    case Binary::Add: return "add";
    case Binary::Sub: return "sub";
    case Binary::Mul: return "mul";
    case Binary::Div: return "div";
    case Binary::Pow: return "pow";
    case Binary::Maximum: return "maximum";
    case Binary::Minimum: return "minimum";
  }
  return "?";
}

// The enumerators are 0, 1, 2, ... and the switches above name each one, so the first value with no
// name is one past the last enumerator.
template <class E>
static std::vector<E> walk_enum(const char* (*name)(E)) {
  std::vector<E> all;
  for (int i = 0; std::string_view(name(E(i))) != "?"; ++i) all.push_back(E(i));
  return all;
}
const std::vector<Unary>& all_unary() {
  static const std::vector<Unary> all = walk_enum<Unary>(unary_name);
  return all;
}
const std::vector<Binary>& all_binary() {
  static const std::vector<Binary> all = walk_enum<Binary>(binary_name);
  return all;
}

namespace {

template <class T> using Batch = xsimd::batch<T>;

// The reference evaluates transcendental functions one type wider and rounds once at the end. Then its
// only error is that final rounding (plus the wide library's own, ~2^-11 of an ulp), which makes it a
// yardstick the vector code can be measured against to the ulp.
template <class T> struct WideOf;
template <> struct WideOf<float> { using type = double; };
template <> struct WideOf<double> { using type = long double; };
template <class T> using Wide = typename WideOf<T>::type;

// Mathematical constants to long double precision; each use rounds them to the type it needs.
constexpr long double kSqrt2 = 1.414213562373095048801688724209698079L;
constexpr long double kSqrt2OverPi = 0.797884560802865355879892119868763737L;  // sqrt(2/pi), in gelu_tanh
constexpr long double kGeluCubic = 0.044715L;                                   // the cubic term of gelu_tanh
constexpr long double kTwoOverSqrtPi = 1.128379167095512573896158903121545172L; // erf'(0)

// softplus returns x itself above this, like torch.nn.Softplus(threshold=20): log1p(exp(20)) - 20 is 2e-9.
constexpr double kSoftplusThreshold = 20;

// =====================================================================================================
// 1. The scalar reference
// =====================================================================================================

// One element of a unary op. Exact IEEE operations (neg, sqrt, 1/x, x*x, comparisons) are done in T,
// where they round once; doing them in W and rounding again could round twice. Everything else is
// computed in W = Wide<T>.
template <class T>
T unary_one(Unary op, T x, UnaryArgs args) {
  using W = Wide<T>;
  const W w = x;
  switch (op) {
    case Unary::Neg: return -x;
    case Unary::Abs: return std::abs(x);
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Rsqrt: return T(1) / std::sqrt(x);
    case Unary::Square: return x * x;
    case Unary::Reciprocal: return T(1) / x;
    // Sign keeps +-0 as it is and returns NaN for NaN (NumPy's choice; torch.sign(nan) is 0).
    case Unary::Sign: return x > 0 ? T(1) : x < 0 ? T(-1) : x;
    // NaN < 0 is false, so NaN passes through relu, leaky_relu and clamp unchanged, as in PyTorch.
    case Unary::Relu: return x < 0 ? T(0) : x;
    case Unary::LeakyRelu: return x > 0 ? x : x * T(args.a);
    case Unary::Clamp: {
      // torch.clamp(x, min, max) = min(max(x, lo), hi), so hi wins when lo > hi.
      const T r = x < T(args.a) ? T(args.a) : x;
      return r > T(args.b) ? T(args.b) : r;
    }
    case Unary::Exp: return T(std::exp(w));
    case Unary::Log: return T(std::log(w));
    case Unary::Tanh: return T(std::tanh(w));
    case Unary::Erf: return T(std::erf(w));
    case Unary::Sigmoid: return T(1 / (1 + std::exp(-w)));
    case Unary::Silu: return T(w / (1 + std::exp(-w)));
    case Unary::Softplus: return x > T(kSoftplusThreshold) ? x : T(std::log1p(std::exp(w)));
    case Unary::Elu: return x > 0 ? x : T(W(args.a) * std::expm1(w));
    // 0.5 x (1 + erf(x/sqrt2)), written with erfc: 1 + erf(t) = erfc(-t) does not cancel for x << 0.
    case Unary::GeluErf: return T(W(0.5) * w * std::erfc(-w / W(kSqrt2)));
    // 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)): the same function without 1 + tanh(u) cancelling for x << 0.
    case Unary::GeluTanh: {
      const W u = W(kSqrt2OverPi) * (w + W(kGeluCubic) * w * w * w);
      return T(w / (1 + std::exp(-2 * u)));
    }
    // pow(x, 2) is x*x exactly (one rounding), as in PyTorch; any other exponent follows std::pow.
    case Unary::Pow: return args.a == 2 ? x * x : T(std::pow(w, W(args.a)));
  }
  return x;
}

template <class T>
T binary_one(Binary op, T a, T b) {
  switch (op) {
    case Binary::Add: return a + b;
    case Binary::Sub: return a - b;
    case Binary::Mul: return a * b;
    case Binary::Div: return a / b;
    // torch.maximum propagates NaN: if a is NaN take a; if b is NaN, a > b is false and we take b.
    case Binary::Maximum: return (a > b || a != a) ? a : b;
    case Binary::Minimum: return (a < b || a != a) ? a : b;
    case Binary::Pow: return b == 2 ? a * a : T(std::pow(Wide<T>(a), Wide<T>(b)));
  }
  return a;
}

}  // namespace

template <class T>
void unary_ref(Unary op, const T* x, int64_t sx, T* y, int64_t sy, int64_t n, UnaryArgs args) {
  for (int64_t i = 0; i < n; ++i) y[i * sy] = unary_one(op, x[i * sx], args);
}

template <class T>
void binary_ref(Binary op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t sy, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i * sy] = binary_one(op, a[i * sa], b[i * sb]);
}

// ---- sum: a fixed order ------------------------------------------------------------------------------
//
// Floating-point addition is not associative, so "the sum" of a row depends on the order of the adds.
// heed fixes that order as a function of n alone:
//   - a row is cut into blocks of kSumBlock elements;
//   - inside a block, element i is added to partial sum p[i % 64], in order; then the 64 partials are
//     added as a binary tree: p[j] += p[j + 32] for j < 32, then p[j] += p[j + 16], ... down to p[0];
//   - the block sums are added as a balanced binary tree over the blocks.
// 64 partials are exactly what the SIMD loop keeps in registers (4 batches of 16 floats with AVX-512, or
// 8 of 8 doubles), so sum_simd gives the same bits as sum_ref on every machine. The error bound grows
// like (64 + log2(n)) ulp instead of n ulp for a plain running sum.
namespace {
constexpr int64_t kPartials = 64;
constexpr int64_t kSumBlock = 4096;

// The partial-sum tree, on `count` partials (a power of two): p[j] += p[j + h] for h = count/2, ..., 1.
template <class T>
T add_tree(T* p, int64_t count) {
  for (int64_t h = count / 2; h >= 1; h /= 2)
    for (int64_t j = 0; j < h; ++j) p[j] += p[j + h];
  return p[0];
}

template <class T>
T sum_block_ref(const T* x, int64_t sx, int64_t n) {
  T p[kPartials] = {};
  for (int64_t i = 0; i < n; ++i) p[i % kPartials] += x[i * sx];
  return add_tree(p, kPartials);
}

// Splits at the block boundary nearest the middle, so the tree depends on n only.
template <class T, class BlockSum>
T sum_blocks(const T* x, int64_t sx, int64_t n, BlockSum block_sum) {
  if (n <= kSumBlock) return block_sum(x, sx, n);
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  const int64_t left = blocks / 2 * kSumBlock;
  return sum_blocks(x, sx, left, block_sum) + sum_blocks(x + left * sx, sx, n - left, block_sum);
}
}  // namespace

template <class T>
T sum_ref(const T* x, int64_t sx, int64_t n) {
  return sum_blocks(x, sx, n, [](const T* p, int64_t s, int64_t m) { return sum_block_ref(p, s, m); });
}

template <class T>
T max_ref(const T* x, int64_t sx, int64_t n) {
  assert(n > 0 && "max of an empty row");
  T m = x[0];
  for (int64_t i = 1; i < n; ++i) {
    const T v = x[i * sx];
    if (v > m || v != v) m = v;  // once m is NaN nothing is > m, and it stays NaN
  }
  return m;
}

template <class T>
void accumulate_ref(T* acc, const T* x, int64_t sx, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += x[j * sx];
}

// Softmax in W: subtract the max so exp never overflows, then normalise. A fully masked row (every entry
// -inf) has no finite max; mathematically it is 0/0. PyTorch returns NaN there. heed returns zeros (and
// -inf = log 0 for log-softmax), so that an attention row that may attend to nothing contributes nothing.
template <class T>
void softmax_row_ref(const T* x, T* y, int64_t n, bool log) {
  using W = Wide<T>;
  if (n == 0) return;
  const T m = max_ref(x, 1, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    std::fill(y, y + n, log ? m : T(0));
    return;
  }
  W s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(W(x[i]) - W(m));
  if (log) {
    const W log_s = std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = T(W(x[i]) - W(m) - log_s);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = T(std::exp(W(x[i]) - W(m)) / s);
  }
}

// =====================================================================================================
// 2. Vector math on whole batches
// =====================================================================================================
namespace {

// ---- exact arithmetic building blocks --------------------------------------------------------------

// x*y + z with a single rounding. xsimd 8.1 has no AVX-512 fma kernel: its generic one is `x*y + z`,
// which the compiler fuses only when it decides to contract, and not at all when the product is reused
// (as it is in product_error below). The compensated tricks in this file need a guaranteed fused operation.
template <class T>
[[gnu::always_inline]] inline Batch<T> fma_exact(const Batch<T>& x, const Batch<T>& y, const Batch<T>& z) {
  constexpr size_t bytes = sizeof(T) * Batch<T>::size;
#if defined(__AVX512F__)
  if constexpr (bytes == 64) {
    if constexpr (std::is_same_v<T, float>) return _mm512_fmadd_ps(x, y, z);
    else return _mm512_fmadd_pd(x, y, z);
  }
#endif
#if defined(__FMA__)
  if constexpr (bytes == 32) {
    if constexpr (std::is_same_v<T, float>) return _mm256_fmadd_ps(x, y, z);
    else return _mm256_fmadd_pd(x, y, z);
  }
  if constexpr (bytes == 16) {
    if constexpr (std::is_same_v<T, float>) return _mm_fmadd_ps(x, y, z);
    else return _mm_fmadd_pd(x, y, z);
  }
#endif
  // No fused instruction on this target: std::fma lane by lane is slow but still exact.
  alignas(64) T a[Batch<T>::size], b[Batch<T>::size], c[Batch<T>::size];
  x.store_unaligned(a);
  y.store_unaligned(b);
  z.store_unaligned(c);
  for (size_t k = 0; k < Batch<T>::size; ++k) a[k] = std::fma(a[k], b[k], c[k]);
  return Batch<T>::load_unaligned(a);
}

// -x by flipping the sign bit. xsimd 8.1's unary minus on AVX-512 is 0 - x, which turns -(+0) into +0
// and so loses the sign of zero (pow(-0, 3) must be -0, neg(0) must be -0).
template <class T>
[[gnu::always_inline]] inline Batch<T> negate(const Batch<T>& x) {
  return x ^ Batch<T>(T(-0.0));
}

// The rounding error of a product: x*y = p + err exactly, where p = fl(x*y).
template <class T>
[[gnu::always_inline]] inline Batch<T> product_error(const Batch<T>& x, const Batch<T>& y, const Batch<T>& p) {
  return fma_exact(x, y, negate(p));
}

// The rounding error of a sum: a + b = s + err exactly, where s = fl(a + b) (Knuth's TwoSum).
template <class T>
[[gnu::always_inline]] inline Batch<T> sum_error(const Batch<T>& a, const Batch<T>& b, const Batch<T>& s) {
  const Batch<T> bb = s - a;
  return (a - (s - bb)) + (b - bb);
}

// c[0] + c[1] x + c[2] x^2 + ... by Horner's rule, unrolled at compile time (a loop would keep the
// coefficients in memory and the chain of fmas opaque to the scheduler).
template <class T, size_t N, size_t... K>
[[gnu::always_inline]] inline Batch<T> horner(const Batch<T>& x, const std::array<T, N>& c,
                                              std::index_sequence<K...>) {
  Batch<T> p(c[N - 1]);
  ((p = fma_exact(p, x, Batch<T>(c[N - 2 - K]))), ...);
  return p;
}
template <class T, size_t N>
[[gnu::always_inline]] inline Batch<T> polynomial(const Batch<T>& x, const std::array<T, N>& c) {
  return horner(x, c, std::make_index_sequence<N - 1>{});
}

// c[1], c[2], ...: the coefficients of (p(x) - c[0]) / x.
template <class T, size_t N>
constexpr std::array<T, N - 1> tail_of(const std::array<T, N>& c) {
  std::array<T, N - 1> t{};
  for (size_t k = 1; k < N; ++k) t[k - 1] = c[k];
  return t;
}

// A constant as hi + lo, lo carrying the bits that do not fit in hi.
template <class T> struct Split { T hi, lo; };

// A batch of values carried to about twice the working precision: hi + lo, |lo| at most half an ulp of hi.
template <class T> struct Pair { Batch<T> hi, lo; };

// (a.hi + a.lo) * (b.hi + b.lo), dropping only the lo*lo term.
template <class T>
[[gnu::always_inline]] inline Pair<T> mul(const Pair<T>& a, const Pair<T>& b) {
  const Batch<T> hi = a.hi * b.hi;
  return {hi, product_error(a.hi, b.hi, hi) + fma_exact(a.hi, b.lo, a.lo * b.hi)};
}

// ---- per-type constants ----------------------------------------------------------------------------

// Taylor coefficients 1/k! for exp, and 2/sqrt(pi) (-1)^k / (k! (2k+1)) for erf(t)/t in powers of t^2,
// computed at compile time in long double.
template <class T, size_t N>
constexpr std::array<T, N> exp_taylor() {
  std::array<T, N> c{};
  long double f = 1;
  for (size_t k = 0; k < N; ++k) {
    c[k] = T(1 / f);
    f *= (long double)(k + 1);
  }
  return c;
}
template <class T, size_t N>
constexpr std::array<T, N> erf_taylor() {
  std::array<T, N> c{};
  long double f = 1;
  for (size_t k = 0; k < N; ++k) {
    c[k] = T((k % 2 ? -1 : 1) * kTwoOverSqrtPi / (f * (2 * k + 1)));
    f *= (long double)(k + 1);
  }
  return c;
}

template <class T> struct Consts;

template <> struct Consts<float> {
  using Int = int32_t;
  static constexpr int mantissa_bits = 23, exponent_bias = 127;
  // exp: ln 2 as hi + lo, so that with fused multiply-adds r = x - n hi - n lo keeps every bit that
  // matters; log2(e) only picks n and need not be exact.
  static constexpr Split<float> ln2{0x1.62e43p-1f, -0x1.05c61p-29f};
  static constexpr float log2e = 0x1.715476p+0f;
  // exp(-104) is below half the smallest subnormal (rounds to 0) and exp(89) above FLT_MAX (inf).
  static constexpr float exp_lo = -104.0f, exp_hi = 89.0f;
  // |r| <= ln2/2 after reduction; the first omitted Taylor term, r^8/8!, is 5e-9 < 0.1 ulp.
  static constexpr auto exp_poly = exp_taylor<float, 8>();
  // erf(t) = t P(t^2) for |t| < 0.5; the first omitted term, 2/sqrt(pi) t^17/(8! 17), is below 1e-11.
  static constexpr auto erf_poly = erf_taylor<float, 8>();
  // erfc(a) for a >= 0.5, see erfc_tail below. Fitted on a in [0.5, 10.5]: erfc(10.5) is below the
  // smallest subnormal float, so nothing further out matters.
  static constexpr float erfc_a_max = 10.5f;
  static constexpr std::array<float, 11> erfcx_fit{
      0.497270523259717771232f,   0.212794643437308940968f,   0.0562988610587057006508f,
      0.00521357736412378707821f, -0.00168967353079155902851f, -0.000386069563648063662649f,
      9.70472654191420417566e-05f, 2.31042294891665022458e-05f, -8.82571378853761417429e-06f,
      -9.77042483596991932682e-07f, 7.19549369779501094231e-07f};
  // -1/sqrt(2) (gelu_erf), 2 sqrt(2/pi) and 2 sqrt(2/pi) 0.044715 (gelu_tanh), each as hi + lo.
  static constexpr Split<float> minus_inv_sqrt2{-0x1.6a09e6p-1f, -0x1.9fcef4p-27f};
  static constexpr Split<float> gelu_c1{0x1.988454p+0f, -0x1.857936p-25f};
  static constexpr Split<float> gelu_c3{0x1.2444f2p-4f, 0x1.49b16ap-29f};
  // Tiny tails are carried times 2^64 until their last multiply (see exp_core): exp(-110) * 2^64 is
  // still a normal float, and nothing below exp(-110) survives that multiply.
  static constexpr int tail_scale = 64;
  static constexpr float tail_unscale = 0x1p-64f;
};

template <> struct Consts<double> {
  using Int = int64_t;
  static constexpr int mantissa_bits = 52, exponent_bias = 1023;
  static constexpr Split<double> ln2{0x1.62e42fefa39efp-1, 0x1.abc9e3b39803fp-56};
  static constexpr double log2e = 0x1.71547652b82fep+0;
  static constexpr double exp_lo = -746.0, exp_hi = 710.0;
  // r^14/14! < 5e-18: 0.04 ulp.
  static constexpr auto exp_poly = exp_taylor<double, 14>();
  // The first omitted term, 2/sqrt(pi) t^27/(13! 27), is below 1e-19 at t = 0.5.
  static constexpr auto erf_poly = erf_taylor<double, 13>();
  static constexpr double erfc_a_max = 27.5;  // erfc(27.5) < 5e-324
  static constexpr std::array<double, 23> erfcx_fit{
      0.46776588777532349933,     0.225286298783529877397,    0.0704801940418661099143,
      0.00913710554631518883938,  -0.00237114079945742807509, -0.000898691318960324451662,
      0.000154690094704424691855, 8.3171919280423009642e-05,  -2.0639040577689817887e-05,
      -7.36967708444441905144e-06, 3.51298681507173650028e-06, 3.45918692165542887236e-07,
      -5.4989264204909614898e-07, 7.98603373213633089879e-08, 6.12660503440665138442e-08,
      -3.03813645931837606398e-08, -4.84347460689318525242e-10, 5.53250730252740219805e-09,
      -1.7461593523772416632e-09, -5.38638274080134895337e-10, 4.2171730841721949651e-10,
      1.44298872367906606878e-11, -4.11799676484129715538e-11};
  static constexpr Split<double> minus_inv_sqrt2{-0x1.6a09e667f3bcdp-1, 0x1.bdd3413b26456p-55};
  static constexpr Split<double> gelu_c1{0x1.9884533d43651p+0, -0x1.cbc0d30ebfd15p-54};
  static constexpr Split<double> gelu_c3{0x1.2444f2a4d8b4bp-4, -0x1.6c843a29d1c70p-61};
  static constexpr int tail_scale = 128;  // exp(-750) * 2^128 is a normal double
  static constexpr double tail_unscale = 0x1p-128;
};

// ---- exp ---------------------------------------------------------------------------------------------

// exp(h + l) * 2^Scale, where l is a correction far below the ulp of h (callers that carry an argument
// to twice the working precision pass its low part; plain exp passes none).
//
// Write h + l = n ln2 + r with n an integer and |r| <= ln2/2. Then exp(h + l) = 2^n exp(r):
// exp(r) is a short Taylor polynomial, and 2^n is built directly from its exponent bits. The reduction
// uses ln2 = hi + lo so that r is accurate even for n ~ 1000.
//
// 2^n is applied as 2^(n/2) * 2^(n - n/2): near the underflow edge n reaches -150 (float), and 2^-150
// is not a float, but two factors of 2^-75 are. The last multiply then rounds once, straight into
// the subnormal range, which is exactly what std::exp returns there and what xsimd's exp gets wrong.
//
// The result comes as a Pair: hi is exp rounded as usual (within 1 ulp), lo holds the rounding error of
// the polynomial's last step, for callers that multiply exp by other factors and round only once.
//
// Scale > 0 returns the result multiplied by 2^Scale. Callers that go on to multiply a tiny exp by
// something else (x * sigmoid(x) at x = -100, say) use it to keep the product out of the subnormal
// range, where each rounding would cost many ulps, and scale down once at the very end.
template <class T, bool WithLow = true, int Scale = 0>
[[gnu::always_inline]] inline Pair<T> exp_core(const Batch<T>& h, Batch<T> l = Batch<T>(T(0))) {
  using C = Consts<T>;
  using V = Batch<T>;
  using I = xsimd::batch<typename C::Int>;
  // Beyond [lo, exp_hi] the answer is 0 or inf whatever l is; clamping keeps n small enough for the
  // exponent-bit trick. A scaled result stays representable further down, by Scale ln2.
  // (xsimd's min/max turn NaN into the bound; NaN is restored at the end.)
  constexpr T lo = T(C::exp_lo - Scale * 0.6931471805599453);
  const V hc = xsimd::min(xsimd::max(h, V(lo)), V(C::exp_hi));
  const V n = xsimd::nearbyint(hc * V(C::log2e));
  V r = fma_exact(negate(n), V(C::ln2.hi), hc);
  r = fma_exact(negate(n), V(C::ln2.lo), r);
  if constexpr (WithLow) {
    // l only matters where h is in range. Outside it, the clamp decides, and l may be anything: NaN
    // when the caller's high part overflowed, or larger than r when h is huge.
    r += xsimd::select((h > V(lo)) & (h < V(C::exp_hi)), l, V(T(0)));
  }
  // exp(r) = 1 + r q(r), with the last step's rounding error kept: 1 - p is exact since p is near 1.
  static constexpr auto exp_tail = tail_of(C::exp_poly);
  const V q = polynomial(r, exp_tail);
  const V p = fma_exact(r, q, V(T(1)));
  const V p_low = fma_exact(r, q, V(T(1)) - p);
  const I ni = xsimd::to_int(n) + I(Scale);
  const I n1 = ni >> 1;
  const I n2 = ni - n1;
  const V s1 = xsimd::bitwise_cast<V>((n1 + I(C::exponent_bias)) << C::mantissa_bits);
  const V s2 = xsimd::bitwise_cast<V>((n2 + I(C::exponent_bias)) << C::mantissa_bits);
  V result = p * s1 * s2;
  // With a scale, the clamped exp(lo) * 2^Scale is not 0 by itself.
  if constexpr (Scale != 0) result = xsimd::select(h < V(lo), V(T(0)), result);
  return {xsimd::select(xsimd::isnan(h), h, result), p_low * s1 * s2};
}

template <class T>
[[gnu::always_inline]] inline Batch<T> exp_vec(const Batch<T>& x) {
  return exp_core<T, false>(x).hi;
}

// ---- log ---------------------------------------------------------------------------------------------

// xsimd::log is accurate to 1 ulp, except that its float64 version returns garbage for subnormal
// inputs. Those are scaled up by 2^54 first (exactly) and log(2^54) is subtracted afterwards.
template <class T>
[[gnu::always_inline]] inline Batch<T> log_vec(const Batch<T>& x) {
  using C = Consts<T>;
  using V = Batch<T>;
  constexpr int k = C::mantissa_bits + 2;
  const auto subnormal = xsimd::abs(x) < V(std::numeric_limits<T>::min());
  const V scaled = xsimd::select(subnormal, x * V(T(1ull << k)), x);
  const V r = xsimd::log(scaled);
  // r - k ln2, with ln2 = hi + lo so that the subtraction adds no error of its own.
  const V fixed = fma_exact(V(T(-k)), V(C::ln2.hi), r) + V(T(-k) * C::ln2.lo);
  return xsimd::select(subnormal & (x != V(T(0))), fixed, r);
}

// ---- erf and erfc ------------------------------------------------------------------------------------

// erfc(a) * 2^Scale for a >= 0.5, with a = ah + al carried to twice the working precision; the result
// is a Pair so that callers can multiply it by something else and round once.
//
// For large a, erfc(a) ~ exp(-a^2) / (a sqrt(pi)) is tiny and falls steeply: a relative error d in a^2
// becomes a relative error a^2 d in erfc. xsimd computes exp(-x*x) on the rounded square, which at
// a = 9 costs 80 ulp (and far more on the subnormal tail). Here a^2 is carried exactly as hi + lo
// (product_error) and handed to exp_core. What is left, erfcx(a) = exp(a^2) erfc(a), is smooth and slowly
// varying, so a polynomial fits it well:
//
//   erfc(a) = exp(-a^2) * u * G(u),   u = 1 / (1 + a/2),   G(u) = erfcx(a) / u,
//
// with G a polynomial in v = (u - mid) / half_width, which maps the fitted range of u onto [-1, 1]. The
// coefficients are the Chebyshev interpolant of G at degree+1 Chebyshev nodes (near-minimax), computed in
// long double from erfcl and expl and converted to powers of v: degree 10 on a in [0.5, 10.5] for float,
// degree 22 on [0.5, 27.5] for double; the fits are good to 1e-10 and 3e-16.
//
// Three factors, each rounded, would cost up to ~5 ulp together, so each keeps its rounding error:
// exp as a Pair; u with the residual of its division, 1 - u d, and the rounding of d = 1 + a/2; and G
// with the rounding of its last Horner step (c0 - G is exact because G stays within [c0/2, 2 c0]).
template <class T, int Scale = 0>
[[gnu::always_inline]] inline Pair<T> erfc_tail(const Batch<T>& ah, const Batch<T>& al) {
  using C = Consts<T>;
  using V = Batch<T>;
  // The fitted interval in u, from a in [0.5, erfc_a_max].
  constexpr long double u_lo = 1 / (1 + (long double)C::erfc_a_max / 2), u_hi = 1 / (1 + 0.5L / 2);
  constexpr T mid = T((u_lo + u_hi) / 2), inv_half = T(2 / (u_hi - u_lo));
  static constexpr auto tail = tail_of(C::erfcx_fit);
  // Outside [0.5, a_max], G is clamped to its end values: below, the caller does not use this branch;
  // above, exp(-a^2) is 0.
  const V a = xsimd::min(xsimd::max(ah, V(T(0.5))), V(C::erfc_a_max));
  const V half_a = a * V(T(0.5));
  const V d = V(T(1)) + half_a;
  const V d_low = sum_error(V(T(1)), half_a, d);
  const V u = V(T(1)) / d;
  const V u_low = u * (fma_exact(negate(u), d, V(T(1))) - d_low * u);  // 1/(d + d_low) = u + u_low
  const V v = (u - V(mid)) * V(inv_half);
  const V q = polynomial(v, tail);  // G = c0 + v q
  const V vq = v * q;
  const V g = vq + V(C::erfcx_fit[0]);
  const V g_low = sum_error(V(C::erfcx_fit[0]), vq, g) + product_error(v, q, vq);
  const Pair<T> gu = mul(Pair<T>{g, g_low}, Pair<T>{u, u_low});
  // a^2 = sq + sq_low exactly; the low part of a adds 2 ah al.
  const V sq = ah * ah;
  const V sq_low = product_error(ah, ah, sq) + V(T(2)) * ah * al;
  return mul(exp_core<T, true, Scale>(negate(sq), negate(sq_low)), gu);
}

// erf(x). Near 0, erf(x) = x P(x^2) is a fast-converging Taylor series with no cancellation. From
// |x| = 0.5 on, erf(x) = sign(x) (1 - erfc|x|), with erfc|x| <= 0.48, so the subtraction costs nothing.
template <class T>
[[gnu::always_inline]] inline Batch<T> erf_vec(const Batch<T>& x) {
  using C = Consts<T>;
  using V = Batch<T>;
  const V a = xsimd::abs(x);
  const auto near_zero = a < V(T(0.5));  // false for NaN, which then flows through the tail branch
  V near(T(0)), far(T(0));
  if (xsimd::any(near_zero)) near = x * polynomial(x * x, C::erf_poly);
  if (!xsimd::all(near_zero)) {
    const Pair<T> ec = erfc_tail(a, V(T(0)));
    const V one_minus = V(T(1)) - ec.hi;
    const V r = one_minus + (sum_error(V(T(1)), negate(ec.hi), one_minus) - ec.lo);
    far = xsimd::select(x < V(T(0)), negate(r), r);
  }
  return xsimd::select(near_zero, near, far);
}

// ---- sigmoid and the activations built on it ----------------------------------------------------------

// m * sigmoid(z) for z = zh + zl. With e = exp(-|z|) <= 1 nothing overflows: sigmoid(z) = 1/(1+e) for
// z >= 0 and e/(1+e) for z < 0. The second form keeps full relative accuracy far into the negative tail,
// where 1 - 1/(1+e) would be all cancellation. There, e is carried times 2^tail_scale (see exp_core), so
// that m * e / (1 + e) rounds into the subnormal range once, at the end, rather than once per factor.
template <class T>
[[gnu::always_inline]] inline Batch<T> sigmoid_times(const Batch<T>& m, const Batch<T>& zh, const Batch<T>& zl) {
  using C = Consts<T>;
  using V = Batch<T>;
  const auto negative = zh < V(T(0));
  const V es = exp_core<T, true, C::tail_scale>(xsimd::select(negative, zh, negate(zh)),
                                               xsimd::select(negative, zl, negate(zl))).hi;
  const V one_plus_e = fma_exact(es, V(C::tail_unscale), V(T(1)));
  return xsimd::select(negative, (m * es / one_plus_e) * V(C::tail_unscale), m / one_plus_e);
}

// gelu_erf(x) = 0.5 x (1 + erf(x/sqrt2)) = 0.5 x erfc(t),  t = -x/sqrt2.
// For x << 0, 1 + erf(...) cancels almost completely; erfc does not. t is carried as hi + lo because
// erfc's steep tail would amplify the rounding of x/sqrt2 (by 2t^2, ~170x at x = -13). Near t = 0,
// erfc(t) = 1 - t P(t^2) (see erf_vec); further out, erfc(t) = erfc|t| for t > 0 (kept times 2^tail_scale
// until the final multiply, as in sigmoid_times) and 2 - erfc|t| for t < 0.
template <class T>
[[gnu::always_inline]] inline Batch<T> gelu_erf_vec(const Batch<T>& x) {
  using C = Consts<T>;
  using V = Batch<T>;
  const V half_x = x * V(T(0.5));
  const V th = x * V(C::minus_inv_sqrt2.hi);
  const V tl = fma_exact(x, V(C::minus_inv_sqrt2.hi), negate(th)) + x * V(C::minus_inv_sqrt2.lo);
  const V a = xsimd::abs(th);
  const auto near_zero = a < V(T(0.5));
  V near(T(0)), far(T(0));
  if (xsimd::any(near_zero)) {
    const V p = polynomial(th * th, C::erf_poly);
    near = half_x * (V(T(1)) - fma_exact(th, p, tl * p));  // erf(th + tl) ~ (th + tl) P(th^2)
  }
  if (!xsimd::all(near_zero)) {
    const auto t_positive = th > V(T(0));
    const Pair<T> ec = erfc_tail<T, C::tail_scale>(a, xsimd::select(t_positive, tl, negate(tl)));
    const V small = fma_exact(half_x, ec.hi, half_x * ec.lo) * V(C::tail_unscale);  // x < 0
    const V large = half_x * (V(T(2)) - (ec.hi + ec.lo) * V(C::tail_unscale));      // x > 0
    far = xsimd::select(t_positive, small, large);
  }
  return xsimd::select(near_zero, near, far);
}

// gelu_tanh(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// Since 0.5 (1 + tanh(u)) = sigmoid(2u), this is x sigmoid(z) with z = c1 x + c3 x^3. For x << 0,
// sigmoid(z) ~ exp(z) turns an absolute error d in z into a relative error d in the result, and z
// reaches -104 before the result underflows: z must be accurate to far better than its own ulp. So z
// is computed as hi + lo throughout (the error of every product and of the final sum is kept), with the
// constants split likewise.
template <class T>
[[gnu::always_inline]] inline Batch<T> gelu_tanh_vec(const Batch<T>& x) {
  using C = Consts<T>;
  using V = Batch<T>;
  const V x2 = x * x;
  const V x2_low = product_error(x, x, x2);
  const V x3 = x2 * x;
  const V x3_low = product_error(x2, x, x3) + x2_low * x;
  const V t1 = V(C::gelu_c1.hi) * x;
  const V t1_low = product_error(V(C::gelu_c1.hi), x, t1) + V(C::gelu_c1.lo) * x;
  const V t3 = V(C::gelu_c3.hi) * x3;
  const V t3_low = product_error(V(C::gelu_c3.hi), x3, t3) + (V(C::gelu_c3.hi) * x3_low + V(C::gelu_c3.lo) * x3);
  const V z = t1 + t3;
  const V z_low = sum_error(t1, t3, z) + (t1_low + t3_low);
  return sigmoid_times(x, z, z_low);
}

// ---- pow ---------------------------------------------------------------------------------------------

// pow(a, e) for double lanes, following std::pow on every special case. The core is exp(e log|a|);
// the rest repairs what that formula gets wrong: negative bases (the sign for odd integer e, NaN for
// non-integer e), pow(1, anything) = pow(anything, 0) = 1 even for NaN, and pow(-1, +-inf) = 1.
//
// Used for float rows: wherever the float result is neither 0 nor inf, |e log|a|| < 104, and in double
// the result then carries about 1e-14 relative error, so rounding it to float is correct except when
// the exact value lies within 1e-14 of a tie. For float64 rows a vector pow as accurate as
// std::pow would need log in double-double, so float64 rows call std::pow (see pow_row).
Batch<double> pow_vec(const Batch<double>& a, const Batch<double>& e) {
  using V = Batch<double>;
  V r = exp_vec(e * log_vec(xsimd::abs(a)));
  const auto is_int = xsimd::floor(e) == e;  // true for +-inf, which is fine: they are "even"
  const auto is_odd = is_int & (xsimd::floor(e * V(0.5)) != e * V(0.5));
  const auto sign_bit = xsimd::copysign(V(1.0), a) < V(0.0);  // true for -0 too: pow(-0, 3) = -0
  r = xsimd::select(sign_bit & is_odd, negate(r), r);
  r = xsimd::select((a < V(0.0)) & xsimd::isfinite(a) & !is_int, V(std::numeric_limits<double>::quiet_NaN()), r);
  r = xsimd::select((a == V(-1.0)) & xsimd::isinf(e), V(1.0), r);
  return xsimd::select((a == V(1.0)) | (e == V(0.0)), V(1.0), r);
}

// =====================================================================================================
// 3. The SIMD row loops
// =====================================================================================================

// y[i] = f(x[i]) batch by batch. The last n % L elements go through the same f on a zero-padded copy,
// not through scalar code: an element's result then never depends on where it sits in the row, so a
// tensor gives the same bits however the caller cuts it into rows.
//
// [[gnu::flatten]] inlines f and everything it calls into the loop. Without it GCC calls each op's
// lambda once per batch, passing the 64-byte batch through memory, which halves the speed of exp.
template <class T, class F>
[[gnu::flatten]] void map_unary(const T* x, T* y, int64_t n, F f) {
  constexpr int64_t L = Batch<T>::size;
  int64_t i = 0;
  for (; i + L <= n; i += L) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) {
    T buf[L] = {};
    std::copy(x + i, x + n, buf);
    f(Batch<T>::load_unaligned(buf)).store_unaligned(buf);
    std::copy(buf, buf + (n - i), y + i);
  }
}

// y[i] = f(a[i*sa], b[i*sb]) with each stride 0 (one value broadcast) or 1, as template flags so that the
// loop has no branch in it. The broadcast values are read once up front, which keeps y == a correct.
template <bool RowA, bool RowB, class T, class F>
[[gnu::flatten]] void map_binary_loop(const T* a, const T* b, T* y, int64_t n, F f) {
  using V = Batch<T>;
  constexpr int64_t L = V::size;
  const T a0 = a[0], b0 = b[0];
  const V va0(a0), vb0(b0);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V va = RowA ? V::load_unaligned(a + i) : va0;
    const V vb = RowB ? V::load_unaligned(b + i) : vb0;
    f(va, vb).store_unaligned(y + i);
  }
  if (i < n) {
    T ba[L] = {}, bb[L] = {};
    for (int64_t k = 0; k < n - i; ++k) {
      ba[k] = RowA ? a[i + k] : a0;
      bb[k] = RowB ? b[i + k] : b0;
    }
    f(V::load_unaligned(ba), V::load_unaligned(bb)).store_unaligned(ba);
    std::copy(ba, ba + (n - i), y + i);
  }
}

template <class T, class F>
void map_binary(const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n, F f) {
  assert((sa == 0 || sa == 1) && (sb == 0 || sb == 1));
  if (n == 0) return;
  if (sa == 1 && sb == 1) map_binary_loop<true, true>(a, b, y, n, f);
  else if (sa == 1) map_binary_loop<true, false>(a, b, y, n, f);
  else if (sb == 1) map_binary_loop<false, true>(a, b, y, n, f);
  else map_binary_loop<false, false>(a, b, y, n, f);
}

// pow over a row, y[i] = pow(x[i*sx], e[i*se]) with strides 0 or 1; E is float (a tensor exponent) or
// double (Pow's scalar argument). Float rows widen to double lanes for pow_vec, 8 at a time with AVX-512.
template <class E>
void pow_row(const float* x, int64_t sx, const E* e, int64_t se, float* y, int64_t n) {
  using D = Batch<double>;
  constexpr int64_t L = D::size;
  if (n == 0) return;
  const float x0 = x[0];
  const E e0 = e[0];
  if (sx == 0) x = &x0;  // read broadcast values once, so y == x stays correct
  if (se == 0) e = &e0;
  for (int64_t i = 0; i < n; i += L) {
    const int64_t m = std::min(L, n - i);
    double xb[L] = {}, eb[L] = {};
    for (int64_t k = 0; k < m; ++k) {
      xb[k] = x[(i + k) * sx];
      eb[k] = e[(i + k) * se];
    }
    pow_vec(D::load_unaligned(xb), D::load_unaligned(eb)).store_unaligned(xb);
    // pow(x, 2) stays x*x rounded once in float, as in the reference.
    for (int64_t k = 0; k < m; ++k) {
      const float xv = x[(i + k) * sx];
      y[i + k] = eb[k] == 2 ? xv * xv : float(xb[k]);
    }
  }
}

// float64: std::pow per element (see pow_vec for why), with the same x*x for an exponent of 2.
template <class E>
void pow_row(const double* x, int64_t sx, const E* e, int64_t se, double* y, int64_t n) {
  if (n == 0) return;
  const double x0 = x[0];
  const E e0 = e[0];
  if (sx == 0) x = &x0;
  if (se == 0) e = &e0;
  for (int64_t i = 0; i < n; ++i) {
    const double xv = x[i * sx], ev = e[i * se];
    y[i] = ev == 2 ? xv * xv : std::pow(xv, ev);
  }
}

}  // namespace

template <class T>
void unary_simd(Unary op, const T* x, T* y, int64_t n, UnaryArgs args) {
  using V = Batch<T>;
  const V zero(T(0)), one(T(1));
  switch (op) {
    case Unary::Neg: return map_unary(x, y, n, [](V v) { return negate(v); });
    case Unary::Exp: return map_unary(x, y, n, [](V v) { return exp_vec(v); });
    case Unary::Log: return map_unary(x, y, n, [](V v) { return log_vec(v); });
    case Unary::Sqrt: return map_unary(x, y, n, [](V v) { return xsimd::sqrt(v); });
    // Not xsimd::rsqrt: on AVX-512 it is _mm512_rsqrt23_ps, an approximation that exists only on
    // Xeon Phi (AVX-512ER). Rsqrt is defined as 1/sqrt, two correctly rounded steps.
    case Unary::Rsqrt: return map_unary(x, y, n, [=](V v) { return one / xsimd::sqrt(v); });
    case Unary::Abs: return map_unary(x, y, n, [](V v) { return xsimd::abs(v); });
    case Unary::Sign:
      return map_unary(x, y, n, [=](V v) {
        return xsimd::select(v > zero, one, xsimd::select(v < zero, negate(one), v));
      });
    case Unary::Tanh: return map_unary(x, y, n, [](V v) { return xsimd::tanh(v); });
    case Unary::Sigmoid: return map_unary(x, y, n, [=](V v) { return sigmoid_times(one, v, zero); });
    case Unary::Relu: return map_unary(x, y, n, [=](V v) { return xsimd::select(v < zero, zero, v); });
    case Unary::LeakyRelu: {
      const V slope(T(args.a));
      return map_unary(x, y, n, [=](V v) { return xsimd::select(v > zero, v, v * slope); });
    }
    case Unary::Elu: {
      const V alpha(T(args.a));
      return map_unary(x, y, n, [=](V v) { return xsimd::select(v > zero, v, alpha * xsimd::expm1(v)); });
    }
    case Unary::GeluTanh: return map_unary(x, y, n, [](V v) { return gelu_tanh_vec(v); });
    case Unary::GeluErf: return map_unary(x, y, n, [](V v) { return gelu_erf_vec(v); });
    case Unary::Silu: return map_unary(x, y, n, [=](V v) { return sigmoid_times(v, v, zero); });
    case Unary::Softplus: {
      const V threshold = V(T(kSoftplusThreshold));
      return map_unary(x, y, n, [=](V v) { return xsimd::select(v > threshold, v, xsimd::log1p(exp_vec(v))); });
    }
    case Unary::Erf: return map_unary(x, y, n, [](V v) { return erf_vec(v); });
    case Unary::Pow:
      if (args.a == 2) return map_unary(x, y, n, [](V v) { return v * v; });
      return pow_row(x, 1, &args.a, 0, y, n);
    case Unary::Clamp: {
      const V lo(T(args.a)), hi(T(args.b));
      return map_unary(x, y, n, [=](V v) {
        const V r = xsimd::select(v < lo, lo, v);
        return xsimd::select(r > hi, hi, r);
      });
    }
    case Unary::Square: return map_unary(x, y, n, [](V v) { return v * v; });
    case Unary::Reciprocal: return map_unary(x, y, n, [=](V v) { return one / v; });
  }
}

template <class T>
void binary_simd(Binary op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n) {
  using V = Batch<T>;
  switch (op) {
    case Binary::Add: return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return p + q; });
    case Binary::Sub: return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return p - q; });
    case Binary::Mul: return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return p * q; });
    case Binary::Div: return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return p / q; });
    // NaN is detected with isnan, not p != p: xsimd 8.1's != on AVX-512 is an *ordered* compare
    // (_CMP_NEQ_OQ), false when either side is NaN.
    case Binary::Maximum:
      return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return xsimd::select((p > q) | xsimd::isnan(p), p, q); });
    case Binary::Minimum:
      return map_binary(a, sa, b, sb, y, n, [](V p, V q) { return xsimd::select((p < q) | xsimd::isnan(p), p, q); });
    case Binary::Pow: return pow_row(a, sa, b, sb, y, n);
  }
}

// =====================================================================================================
// 4. SIMD reductions and the fused softmax
// =====================================================================================================
namespace {

// One block of sum_ref's order (see "sum: a fixed order"): partial p[j] is lane j % L of accumulator
// j / L. K = 64 / L accumulators also give the adder K independent chains to work on.
template <class T>
T sum_block_simd(const T* x, int64_t n) {
  using V = Batch<T>;
  constexpr int64_t L = V::size, K = kPartials / L;
  static_assert(kPartials % L == 0, "the fixed summation order needs the batch width to divide 64");
  V acc[K];
  for (auto& a : acc) a = V(T(0));
  int64_t i = 0;
  for (; i + kPartials <= n; i += kPartials)
    for (int64_t k = 0; k < K; ++k) acc[k] += V::load_unaligned(x + i + k * L);
  if (i < n) {
    // The last partial chunk, zero-padded: adding +0 leaves a partial unchanged (a partial that starts
    // at +0 can never become -0), so this matches the reference, which simply skips those adds.
    T buf[kPartials] = {};
    std::copy(x + i, x + n, buf);
    for (int64_t k = 0; k < K; ++k) acc[k] += V::load_unaligned(buf + k * L);
  }
  // The first levels of the tree (h = 32, 16, ... while h >= L) pair whole accumulators...
  for (int64_t h = K / 2; h >= 1; h /= 2)
    for (int64_t k = 0; k < h; ++k) acc[k] += acc[k + h];
  // ...and the last log2(L) levels run inside accumulator 0.
  T lanes[L];
  acc[0].store_unaligned(lanes);
  return add_tree(lanes, L);
}

}  // namespace

template <class T>
T sum_simd(const T* x, int64_t n) {
  return sum_blocks(x, 1, n, [](const T* p, int64_t, int64_t m) { return sum_block_simd(p, m); });
}

template <class T>
T max_simd(const T* x, int64_t n) {
  assert(n > 0 && "max of an empty row");
  using V = Batch<T>;
  constexpr int64_t L = V::size, K = 4;
  // vmaxps returns its second operand when either is NaN, so a NaN can be lost as easily as kept;
  // NaN is therefore tracked separately and decides at the end.
  V m[K];
  for (auto& v : m) v = V(x[0]);
  auto nan = xsimd::isnan(m[0]);
  int64_t i = 0;
  for (; i + K * L <= n; i += K * L) {
    for (int64_t k = 0; k < K; ++k) {
      const V v = V::load_unaligned(x + i + k * L);
      m[k] = xsimd::max(m[k], v);
      nan = nan | xsimd::isnan(v);
    }
  }
  for (; i + L <= n; i += L) {
    const V v = V::load_unaligned(x + i);
    m[0] = xsimd::max(m[0], v);
    nan = nan | xsimd::isnan(v);
  }
  if (xsimd::any(nan)) return std::numeric_limits<T>::quiet_NaN();
  for (int64_t k = 1; k < K; ++k) m[0] = xsimd::max(m[0], m[k]);
  T lanes[L];
  m[0].store_unaligned(lanes);
  T best = lanes[0];
  for (int64_t k = 1; k < L; ++k) best = std::max(best, lanes[k]);
  for (; i < n; ++i) {
    if (x[i] != x[i]) return x[i];
    best = std::max(best, x[i]);
  }
  return best;
}

template <class T>
void accumulate_simd(T* acc, const T* x, int64_t n) {
  using V = Batch<T>;
  constexpr int64_t L = V::size;
  int64_t j = 0;
  for (; j + L <= n; j += L) (V::load_unaligned(acc + j) + V::load_unaligned(x + j)).store_unaligned(acc + j);
  for (; j < n; ++j) acc[j] += x[j];
}

// Three passes over the row: the max; exp(x - max) and its sum; then scale (softmax) or shift
// (log-softmax). Softmax writes exp(x - max) into y in the second pass and rescales it in place, so it
// reads x only twice. The sum is accumulated in batches in a fixed order: the result depends on n only.
template <class T>
void softmax_row_simd(const T* x, T* y, int64_t n, bool log) {
  using V = Batch<T>;
  constexpr int64_t L = V::size;
  constexpr T inf = std::numeric_limits<T>::infinity();
  if (n == 0) return;
  const T m = max_simd(x, n);
  if (m == -inf) {  // fully masked row: zeros (log: -inf), see softmax_row_ref
    std::fill(y, y + n, log ? -inf : T(0));
    return;
  }
  const V vm(m);
  V s(T(0));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V e = exp_vec(V::load_unaligned(x + i) - vm);
    if (!log) e.store_unaligned(y + i);
    s += e;
  }
  if (i < n) {
    T buf[L];
    std::fill(buf, buf + L, -inf);  // padding with -inf adds exp(-inf) = 0 to the sum
    std::copy(x + i, x + n, buf);
    const V e = exp_vec(V::load_unaligned(buf) - vm);
    e.store_unaligned(buf);
    if (!log) std::copy(buf, buf + (n - i), y + i);
    s += e;
  }
  const T total = xsimd::hadd(s);
  if (log) {
    const V log_total(std::log(total));
    map_unary(x, y, n, [=](V v) { return (v - vm) - log_total; });
  } else {
    const V inv_total(T(1) / total);
    map_unary(static_cast<const T*>(y), y, n, [=](V v) { return v * inv_total; });
  }
}

// ---- explicit instantiations for the two floating dtypes -----------------------------------------------
#define HEED_SIMD_INSTANTIATE(T)                                                                        \
  template void unary_ref<T>(Unary, const T*, int64_t, T*, int64_t, int64_t, UnaryArgs);                \
  template void unary_simd<T>(Unary, const T*, T*, int64_t, UnaryArgs);                                 \
  template void binary_ref<T>(Binary, const T*, int64_t, const T*, int64_t, T*, int64_t, int64_t);      \
  template void binary_simd<T>(Binary, const T*, int64_t, const T*, int64_t, T*, int64_t);              \
  template T sum_ref<T>(const T*, int64_t, int64_t);                                                    \
  template T sum_simd<T>(const T*, int64_t);                                                            \
  template T max_ref<T>(const T*, int64_t, int64_t);                                                    \
  template T max_simd<T>(const T*, int64_t);                                                            \
  template void accumulate_ref<T>(T*, const T*, int64_t, int64_t);                                      \
  template void accumulate_simd<T>(T*, const T*, int64_t);                                              \
  template void softmax_row_ref<T>(const T*, T*, int64_t, bool);                                        \
  template void softmax_row_simd<T>(const T*, T*, int64_t, bool);
HEED_SIMD_INSTANTIATE(float)
HEED_SIMD_INSTANTIATE(double)
#undef HEED_SIMD_INSTANTIATE

}  // namespace heed::simd
