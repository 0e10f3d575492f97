#include "core/cuda/backends.h"

#include "absl/strings/str_cat.h"
#include "core/cuda/device_backend.h"
#include "core/cuda/phase2.h"

namespace agt {

absl::StatusOr<BackendChoice> ParseBackendChoice(std::string_view text) {
  if (text == "auto") return BackendChoice::kAuto;
  if (text == "cpu") return BackendChoice::kCpu;
  if (text == "cuda") return BackendChoice::kCuda;
  if (text == "host-engine") return BackendChoice::kHostEngine;
  return absl::InvalidArgumentError(
      absl::StrCat("backend \"", std::string(text), "\" is not one of auto, cpu, cuda, host-engine"));
}

std::string BackendChoiceName(BackendChoice choice) {
  switch (choice) {
    case BackendChoice::kAuto:
      return "auto";
    case BackendChoice::kCpu:
      return "cpu";
    case BackendChoice::kCuda:
      return "cuda";
    case BackendChoice::kHostEngine:
      return "host-engine";
  }
  return "auto";
}

CudaAvailability ProbeCuda() {
  CudaAvailability a;
  a.compiled = cuda::CudaCompiled();
  std::string why;
  a.devices = cuda::CudaDeviceCount(&why);
  if (a.devices == 0) {
    a.description = absl::StrCat("cuda: unavailable (", why, ")");
  } else {
    a.description = absl::StrCat("cuda: ", a.devices, a.devices == 1 ? " device, " : " devices, ",
                                 cuda::CudaDeviceDescription(0));
  }
  return a;
}

absl::StatusOr<std::string> ResolveBackend(BackendChoice choice) {
  if (choice == BackendChoice::kCpu) return std::string("cpu");
  if (choice == BackendChoice::kHostEngine) return std::string("host-engine");
  const CudaAvailability a = ProbeCuda();
  if (a.devices > 0) return std::string("cuda");
  if (choice == BackendChoice::kAuto) return std::string("cpu");
  return absl::FailedPreconditionError(
      absl::StrCat("the CUDA backend was asked for, but ", a.description,
                   "; use backend cpu or auto"));
}

absl::StatusOr<std::unique_ptr<ComputeBackend>> MakeBackend(BackendChoice choice, int threads) {
  absl::StatusOr<std::string> name = ResolveBackend(choice);
  if (!name.ok()) return name.status();
  if (*name == "cpu") return MakeCpuBackend(threads);
  if (*name == "host-engine") {
    return MakeDeviceBackend(cuda::MakeHostPhase2(threads), "host-engine", threads);
  }
  std::string error;
  std::unique_ptr<cuda::Phase2Api> engine = cuda::MakeCudaPhase2(0, &error);
  if (engine == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("the CUDA backend cannot start: ", error));
  }
  return MakeDeviceBackend(std::move(engine), "cuda", threads);
}

}  // namespace agt
