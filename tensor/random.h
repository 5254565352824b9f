// random.h: heed's random numbers: Philox4x32-10, a counter-based generator.
//
// heed wants the same numbers on every run, on every machine and with any number of threads, and a fused
// attention kernel will regenerate its dropout mask from (seed, offset) instead of storing it. A
// counter-based generator (Salmon, Moraes, Dror and Shaw 2011, "Parallel random numbers: as easy as 1, 2,
// 3") gives all of that: there is no hidden state to advance, each block of four 32-bit numbers is a pure
// function, a keyed bijection of a 128-bit counter. So draw i can be computed by any thread, in any order.
//
// THE STREAM. A seed s names an endless stream of 32-bit draws. Draw i is
//     philox4x32_10(counter = {lo32(i/4), hi32(i/4), 0, 0}, key = {lo32(s), hi32(s)})[i % 4]
// i.e. block i/4, lane i%4. This is philox_u32(s, i).
//
// THE GENERATOR is just (seed, offset): offset counts the draws handed out so far, and those two numbers
// are the whole state a checkpoint saves. An op that needs n draws calls reserve(n) once and gets `start`;
// it then uses draws start, start+1, ..., start+n-1, computing each wherever it likes. The next op
// starts where this one ended, so results depend only on the order of ops, never on threads.
//
// FROM BITS TO NUMBERS (the exact recipe; reproducibility depends on it):
//   uniform float   u = (bits >> 8) * 2^-24                    one draw, 24 bits, u in [0, 1 - 2^-24]
//   uniform double  u = (((hi << 32) | lo) >> 11) * 2^-53      two draws (hi first), u in [0, 1 - 2^-53]
//   normal          Box–Muller on pairs (box_muller_float / box_muller_double below):
//                     u1 = 1 - uniform  (in (0, 1], never 0, so log(u1) is finite)
//                     u2 = uniform      (in [0, 1))
//                     r = sqrt(-2 log u1),  theta = 2 pi u2
//                     z0 = r cos(theta),  z1 = r sin(theta)
//                   computed in double (and rounded once to float for float output).
//                   Counting draws from the fill's start:
//                   float: element pair p = (2p, 2p+1) uses draws 2p (u1) and 2p+1 (u2).
//                   double: pair p uses draws 4p, 4p+1 (u1: hi, lo) and 4p+2, 4p+3 (u2: hi, lo).
//                   For an odd count the last pair's z1 is dropped, but its draws are still used up.
//   The 32-bit draws and the uniforms are bit-identical everywhere. Normals go through log, sqrt, cos and
//   sin, so they are bit-identical given the same C math library; another libm may differ in the last bit.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

namespace heed {

/// A seeded stream of draws with a position: the state of heed's randomness.
/// reserve() is safe to call from several threads (the offset is atomic), but then the order in which
/// threads reserve decides who gets which numbers; reproducible code reserves from one thread.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  Generator(const Generator& other) : seed_(other.seed_), offset_(other.offset_.load()) {}
  Generator& operator=(const Generator& other);

  /// Starts the stream of `seed` from its beginning (offset 0).
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  /// Draws handed out so far.
  uint64_t offset() const { return offset_.load(); }
  /// Restores a saved position (with seed(), the whole state).
  void set_offset(uint64_t offset) { offset_.store(offset); }

  /// Hands out n draws: returns the first one's index and advances the offset by n.
  /// Draw i of the reservation is then philox_u32(seed(), start + i).
  uint64_t reserve(uint64_t n) { return offset_.fetch_add(n); }

  /// One draw, sequentially (convenience; ops reserve and compute in bulk).
  uint32_t next_u32();
  /// Uniform on [0,1) from two draws, as uniform_double.
  double next_double();

 private:
  uint64_t seed_ = 0;
  std::atomic<uint64_t> offset_{0};
};

/// The process-wide generator that ops use when not given one. Its default seed is 0.
Generator& default_generator();
/// Seeds the default generator (like torch.manual_seed).
void manual_seed(uint64_t seed);

/// The Philox4x32-10 block function: 10 rounds over a 128-bit counter with a 64-bit key.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);
/// Draw `index` of the stream of `seed` (block index/4, lane index%4).
uint32_t philox_u32(uint64_t seed, uint64_t index);

/// [0,1) from the top 24 bits of a draw.
float uniform_float(uint32_t bits);
/// [0,1) from 53 bits: the top 32 of `hi` then the top 21 of `lo`.
double uniform_double(uint32_t hi, uint32_t lo);

/// Two independent standard normals from two draws (the float recipe above).
std::array<float, 2> box_muller_float(uint32_t bits1, uint32_t bits2);
/// Two independent standard normals from four draws (the double recipe above).
std::array<double, 2> box_muller_double(uint32_t u1_hi, uint32_t u1_lo, uint32_t u2_hi, uint32_t u2_lo);

// ---- filling buffers: what rand and randn call (T is float or double) -------------------------------

/// Draws that n uniform elements of T use: n for float, 2n for double.
template <class T> uint64_t uniform_draws(int64_t n);
/// Draws that n normal elements of T use: 2 per pair for float, 4 per pair for double, pairs = ceil(n/2).
template <class T> uint64_t normal_draws(int64_t n);

/// out[0..n) uniform on [0,1), from draws start... of seed's stream. Runs on OpenMP threads for large n;
/// the result does not depend on how many.
template <class T> void fill_uniform(T* out, int64_t n, uint64_t seed, uint64_t start);
/// out[0..n) standard normal, by Box–Muller, from draws start... of seed's stream.
template <class T> void fill_normal(T* out, int64_t n, uint64_t seed, uint64_t start);
/// Reserves uniform_draws<T>(n) from `gen` and fills.
template <class T> void fill_uniform(T* out, int64_t n, Generator& gen);
/// Reserves normal_draws<T>(n) from `gen` and fills.
template <class T> void fill_normal(T* out, int64_t n, Generator& gen);

// ---- definitions: the hot functions are inline, so that kernels in other files inline them -----------

inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  // The multipliers and the Weyl increments for the key schedule (golden ratio and sqrt(3)-1, in 32
  // bits) are the ones from the paper; Random123's known-answer vectors test them.
  constexpr uint32_t M0 = 0xD2511F53, M1 = 0xCD9E8D57;
  constexpr uint32_t W0 = 0x9E3779B9, W1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += W0;
      key[1] += W1;
    }
    // One round: two 32x32 -> 64-bit multiplies; the high halves are mixed with the other two words
    // and the key, the low halves move across (a Feistel-like shuffle).
    uint64_t p0 = (uint64_t)M0 * ctr[0];
    uint64_t p1 = (uint64_t)M1 * ctr[2];
    ctr = {(uint32_t)(p1 >> 32) ^ ctr[1] ^ key[0], (uint32_t)p1, (uint32_t)(p0 >> 32) ^ ctr[3] ^ key[1],
           (uint32_t)p0};
  }
  return ctr;
}

inline uint32_t philox_u32(uint64_t seed, uint64_t index) {
  uint64_t block = index / 4;
  std::array<uint32_t, 4> r = philox4x32_10({(uint32_t)block, (uint32_t)(block >> 32), 0, 0},
                                            {(uint32_t)seed, (uint32_t)(seed >> 32)});
  return r[index % 4];
}

inline float uniform_float(uint32_t bits) {
  // 24 bits is a float's full significand, so every value k * 2^-24 is exact.
  return (float)(bits >> 8) * 0x1.0p-24f;
}

inline double uniform_double(uint32_t hi, uint32_t lo) {
  uint64_t bits = ((uint64_t)hi << 32) | lo;
  return (double)(bits >> 11) * 0x1.0p-53;
}

}  // namespace heed
