// A small, portable, seedable pseudo-random generator (xoshiro256** seeded by
// SplitMix64) with uniform and normal draws. Unlike <random>'s distributions,
// its outputs are identical on every platform and standard library, which the
// "deterministic results" promise of training and dataset generation needs.
// Not cryptographic: never use it for privacy noise.
#ifndef AGT_CORE_COMMON_RNG_H_
#define AGT_CORE_COMMON_RNG_H_

#include <cmath>
#include <cstdint>

namespace agt {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : s_) s = SplitMix64(x);
  }

  uint64_t NextU64() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n).
  uint64_t UniformInt(uint64_t n) { return n == 0 ? 0 : NextU64() % n; }
  // Standard normal by Box-Muller (one draw per call; the pair's second half is dropped
  // so the stream does not depend on call history).
  double Normal() {
    double u1 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double Normal(double mean, double stddev) { return mean + stddev * Normal(); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

}  // namespace agt

#endif  // AGT_CORE_COMMON_RNG_H_
