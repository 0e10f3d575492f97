// The CUDA entry points of phase2.h in a build without nvcc (AGT_CUDA=OFF, or
// no CUDA compiler found): every request for a device says why there is none.

#include "core/cuda/phase2.h"

namespace agt::cuda {
namespace {
constexpr char kNotBuilt[] =
    "this build has no CUDA backend (configured without a CUDA compiler: rebuild with nvcc on "
    "the PATH, or -DAGT_CUDA=ON)";
}  // namespace

std::unique_ptr<Phase2Api> MakeCudaPhase2(int /*device*/, std::string* error) {
  *error = kNotBuilt;
  return nullptr;
}

int CudaDeviceCount(std::string* error) {
  if (error) *error = kNotBuilt;
  return 0;
}

std::string CudaDeviceDescription(int device) { return "cuda device " + std::to_string(device); }

bool CudaCompiled() { return false; }

}  // namespace agt::cuda
