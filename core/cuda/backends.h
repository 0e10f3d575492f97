// Choosing the compute backend of a job (ARCHITECTURE.md section 6): the CPU
// backend (always built) or the CUDA backend (built when CMake found nvcc,
// usable when a device is visible). `auto` takes CUDA when it can, the CPU
// otherwise; `cuda` without a usable device is FAILED_PRECONDITION naming
// why, never a crash. Thread-safe.
#ifndef AGT_CORE_CUDA_BACKENDS_H_
#define AGT_CORE_CUDA_BACKENDS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/backend/backend.h"

namespace agt {

// kHostEngine: the CUDA backend's device code run on the host engine (the
// same per-parameter arithmetic, on the CPU): for checking, on a machine
// without a GPU, what the GPU would compute; slower than kCpu.
enum class BackendChoice { kAuto, kCpu, kCuda, kHostEngine };

// "auto", "cpu", "cuda" or "host-engine"; anything else is INVALID_ARGUMENT
// naming the value.
absl::StatusOr<BackendChoice> ParseBackendChoice(std::string_view text);
std::string BackendChoiceName(BackendChoice choice);

// What this process can run: whether the CUDA backend was built, how many
// devices it sees, and a line for logs and `--help` ("cuda: 1 device: NVIDIA
// H200 ..." or why not).
struct CudaAvailability {
  bool compiled = false;
  int devices = 0;
  std::string description;
};
CudaAvailability ProbeCuda();

// The backend a choice resolves to now ("cpu", "cuda" or "host-engine"), or
// FAILED_PRECONDITION when it asks for CUDA and none is usable.
absl::StatusOr<std::string> ResolveBackend(BackendChoice choice);

// The backend itself (threads: the CPU backend's, and phase 1's on the host
// for CUDA; <= 0 means the hardware concurrency). CUDA runs on device 0.
absl::StatusOr<std::unique_ptr<ComputeBackend>> MakeBackend(BackendChoice choice, int threads);

}  // namespace agt

#endif  // AGT_CORE_CUDA_BACKENDS_H_
