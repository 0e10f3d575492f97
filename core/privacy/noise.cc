#include "core/privacy/noise.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>

#include "absl/status/status.h"

namespace agt {
namespace {

// Reads exactly `size` bytes into `out` from /dev/urandom.
bool ReadUrandom(void* out, size_t size) {
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  auto* bytes = static_cast<unsigned char*>(out);
  size_t done = 0;
  while (done < size) {
    const ssize_t got = read(fd, bytes + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  close(fd);
  return done == size;
}

// Fills `out` from getrandom(2) (blocking only until the pool is first
// initialised), or from /dev/urandom if the kernel lacks the call.
bool ReadOsRandom(void* out, size_t size) {
  auto* bytes = static_cast<unsigned char*>(out);
  size_t done = 0;
  while (done < size) {
    const ssize_t got = getrandom(bytes + done, size - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS) return ReadUrandom(bytes + done, size - done);
      return false;
    }
    done += static_cast<size_t>(got);
  }
  return true;
}

}  // namespace

double UniformSource::Cauchy(double scale) {
  return scale * std::tan(std::numbers::pi * (Uniform() - 0.5));
}

double UniformSource::Laplace(double scale) {
  const double centred = Uniform() - 0.5;  // exact: u is a multiple of 2^-53
  const double magnitude = -scale * std::log1p(-2.0 * std::fabs(centred));
  return centred < 0.0 ? -magnitude : magnitude;
}

absl::StatusOr<std::unique_ptr<SecureNoise>> SecureNoise::Create() {
  std::unique_ptr<SecureNoise> noise(new SecureNoise());
  if (!noise->Refill()) {
    return absl::UnavailableError(
        "the OS random generator (getrandom(2) and /dev/urandom) returned no bytes");
  }
  return noise;
}

bool SecureNoise::Refill() {
  if (!ReadOsRandom(buffer_, sizeof(buffer_))) return false;
  next_ = 0;
  return true;
}

double SecureNoise::Uniform() {
  constexpr double kTwoToMinus53 = 0x1p-53;
  while (true) {
    if (next_ == kWords && !Refill()) {
      std::fputs("agt: SecureNoise: OS random generator failed; aborting\n", stderr);
      std::abort();
    }
    const uint64_t k = buffer_[next_++] >> 11;  // 53 random bits
    if (k != 0) return static_cast<double>(k) * kTwoToMinus53;
  }
}

}  // namespace agt
