// random.cpp: the Generator, Box–Muller, and the buffer fills behind rand and randn.
// The stream and the exact bits-to-numbers recipe are documented in random.h.
#include "tensor/random.h"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <type_traits>

#include "tensor/parallel.h"
#include "tensor/shape.h"

namespace heed {

// ---- Generator ----------------------------------------------------------------------------------------

Generator& Generator::operator=(const Generator& other) {
  seed_ = other.seed_;
  offset_.store(other.offset_.load());
  return *this;
}

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  offset_.store(0);
}

uint32_t Generator::next_u32() { return philox_u32(seed_, reserve(1)); }

double Generator::next_double() {
  uint64_t start = reserve(2);
  return uniform_double(philox_u32(seed_, start), philox_u32(seed_, start + 1));
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

// ---- Box–Muller -----------------------------------------------------------------------------------------

namespace {

// (u1, u2) -> two independent N(0,1): with u1, u2 uniform, r = sqrt(-2 log u1) has the distribution of
// the radius of a 2-d standard normal and theta = 2 pi u2 its angle. u1 must not be 0; callers pass
// 1 - uniform, which lies in (0, 1].
std::array<double, 2> box_muller(double u1, double u2) {
  double r = std::sqrt(-2.0 * std::log(u1));
  double theta = 2.0 * std::numbers::pi * u2;
  return {r * std::cos(theta), r * std::sin(theta)};
}

}  // namespace

std::array<float, 2> box_muller_float(uint32_t bits1, uint32_t bits2) {
  // 1 - k*2^-24 is exact in float and in double, so u1 is one of 2^24 values in [2^-24, 1]: the largest
  // |z| it can give is sqrt(-2 log 2^-24) ~ 5.77.
  double u1 = 1.0 - (double)uniform_float(bits1);
  double u2 = (double)uniform_float(bits2);
  std::array<double, 2> z = box_muller(u1, u2);
  return {(float)z[0], (float)z[1]};
}

std::array<double, 2> box_muller_double(uint32_t u1_hi, uint32_t u1_lo, uint32_t u2_hi, uint32_t u2_lo) {
  return box_muller(1.0 - uniform_double(u1_hi, u1_lo), uniform_double(u2_hi, u2_lo));
}

// ---- filling buffers --------------------------------------------------------------------------------------

namespace {

// Reads draws of one stream, computing each Philox block once: consecutive draws share a block of four,
// so a loop that walks the stream in order pays one block function per four draws, not per draw.
struct StreamReader {
  uint64_t seed;
  uint64_t block = UINT64_MAX;  // index/4 never reaches this, so the first read always computes
  std::array<uint32_t, 4> lanes{};

  uint32_t operator()(uint64_t index) {
    if (index / 4 != block) {
      block = index / 4;
      lanes = philox4x32_10({(uint32_t)block, (uint32_t)(block >> 32), 0, 0},
                            {(uint32_t)seed, (uint32_t)(seed >> 32)});
    }
    return lanes[index % 4];
  }
};

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

void check_count(const char* op, int64_t n) {
  if (n < 0) throw Error(std::string(op) + ": negative element count " + std::to_string(n));
}

}  // namespace

template <class T>
uint64_t uniform_draws(int64_t n) {
  return std::is_same_v<T, float> ? (uint64_t)n : 2 * (uint64_t)n;
}

template <class T>
uint64_t normal_draws(int64_t n) {
  uint64_t pairs = ((uint64_t)n + 1) / 2;
  return std::is_same_v<T, float> ? 2 * pairs : 4 * pairs;
}

// Every element is a function of its index alone, so each thread takes a contiguous chunk with its own
// reader and the output is the same for any thread count.
template <class T>
void fill_uniform(T* out, int64_t n, uint64_t seed, uint64_t start) {
  check_count("fill_uniform", n);
#pragma omp parallel if (n >= kParallelMin) num_threads(parallel_threads())
  {
    StreamReader draw{seed};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, float>)
        out[i] = uniform_float(draw(start + i));
      else
        out[i] = uniform_double(draw(start + 2 * i), draw(start + 2 * i + 1));
    }
  }
}

template <class T>
void fill_normal(T* out, int64_t n, uint64_t seed, uint64_t start) {
  check_count("fill_normal", n);
  const int64_t pairs = (n + 1) / 2;
#pragma omp parallel if (n >= kParallelMin) num_threads(parallel_threads())
  {
    StreamReader draw{seed};
#pragma omp for schedule(static)
    for (int64_t p = 0; p < pairs; ++p) {
      std::array<T, 2> z;
      if constexpr (std::is_same_v<T, float>) {
        uint64_t d = start + 2 * p;
        z = box_muller_float(draw(d), draw(d + 1));
      } else {
        uint64_t d = start + 4 * p;
        z = box_muller_double(draw(d), draw(d + 1), draw(d + 2), draw(d + 3));
      }
      out[2 * p] = z[0];
      if (2 * p + 1 < n) out[2 * p + 1] = z[1];  // an odd n drops the last pair's second value
    }
  }
}

template <class T>
void fill_uniform(T* out, int64_t n, Generator& gen) {
  check_count("fill_uniform", n);  // before reserving: a negative n would advance the offset by ~2^64
  uint64_t start = gen.reserve(uniform_draws<T>(n));
  fill_uniform(out, n, gen.seed(), start);
}

template <class T>
void fill_normal(T* out, int64_t n, Generator& gen) {
  check_count("fill_normal", n);
  uint64_t start = gen.reserve(normal_draws<T>(n));
  fill_normal(out, n, gen.seed(), start);
}

template uint64_t uniform_draws<float>(int64_t);
template uint64_t uniform_draws<double>(int64_t);
template uint64_t normal_draws<float>(int64_t);
template uint64_t normal_draws<double>(int64_t);
template void fill_uniform<float>(float*, int64_t, uint64_t, uint64_t);
template void fill_uniform<double>(double*, int64_t, uint64_t, uint64_t);
template void fill_normal<float>(float*, int64_t, uint64_t, uint64_t);
template void fill_normal<double>(double*, int64_t, uint64_t, uint64_t);
template void fill_uniform<float>(float*, int64_t, Generator&);
template void fill_uniform<double>(double*, int64_t, Generator&);
template void fill_normal<float>(float*, int64_t, Generator&);
template void fill_normal<double>(double*, int64_t, Generator&);

}  // namespace heed
