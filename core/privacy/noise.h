// Noise for private prediction (ARCHITECTURE.md section 3, "Private
// prediction"): uniform draws from the operating system's cryptographic
// generator and the Cauchy / Laplace samplers built on them by inversion.
//
// The randomness of a release must be neither chosen nor replayable by a
// client, so SecureNoise has no seed and no state that can be set from
// outside. UniformSource is the narrow seam for tests, which implement it
// deterministically to check the samplers and mechanisms exactly.
#ifndef AGT_CORE_PRIVACY_NOISE_H_
#define AGT_CORE_PRIVACY_NOISE_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace agt {

// A source of uniform doubles strictly inside (0, 1). The samplers are
// inverse CDFs, so a source that is uniform gives exactly distributed noise.
// Implementations need not be thread-safe.
class UniformSource {
 public:
  virtual ~UniformSource() = default;

  // A draw from U(0, 1), never exactly 0 or 1.
  virtual double Uniform() = 0;

  // A draw from Cauchy(0, scale): scale * tan(pi * (u - 1/2)). Finite for
  // every u in (0, 1). Precondition: scale >= 0 and finite (scale 0 gives 0).
  double Cauchy(double scale);

  // A draw from Laplace(0, scale): -scale * sgn(u - 1/2) * ln(1 - 2|u - 1/2|).
  // Precondition: scale >= 0 and finite.
  double Laplace(double scale);
};

// Uniform doubles with 53 random bits from getrandom(2), falling back to
// /dev/urandom where the system call does not exist. Each draw is k * 2^-53
// for k uniform on {1, ..., 2^53 - 1} (k = 0 is redrawn), so it lies in
// (0, 1) and the distribution is symmetric about 1/2. Not seedable. If the
// OS generator fails after construction, the process aborts rather than
// release a prediction with weak or no noise. Not thread-safe: use one
// instance per thread or guard it.
class SecureNoise final : public UniformSource {
 public:
  // Probes the OS generator; Unavailable if neither getrandom(2) nor
  // /dev/urandom yields bytes.
  static absl::StatusOr<std::unique_ptr<SecureNoise>> Create();

  double Uniform() override;

 private:
  SecureNoise() = default;
  // Refills buffer_ from the OS; an error if no bytes can be read.
  bool Refill();

  static constexpr size_t kWords = 64;
  uint64_t buffer_[kWords] = {};
  size_t next_ = kWords;  // index of the next unused word; kWords = empty
};

}  // namespace agt

#endif  // AGT_CORE_PRIVACY_NOISE_H_
