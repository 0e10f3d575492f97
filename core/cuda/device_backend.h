// The device backend (ARCHITECTURE.md section 6): phase 1 of a step (the
// factored passes, FactorPasses) on the host, phase 2 (every budget's
// per-parameter sums and selections, the nominal sum, the direction bounds)
// on a Phase2 engine: the GPU (cuda_phase2.cu) or, for tests on machines
// without one, the host engine running the same per-parameter code.
//
// Dense layers under Rump's rule (and nominal dense factors) send their
// factor matrices to the engine, which expands every per-sample bound where
// it is used; other layers (conv2d, exact or Nguyen products) and every bias
// are expanded and clipped on the host, a tile at a time, and sent as
// bounds. Either way every parameter sees the batch's rows in order, so the
// directions equal the CPU backend's bit for bit (tests/core/device_backend_test.cc).
//
// The box update runs on the host (ApplyBoxUpdate: O(P) per budget).
// An engine failure (a CUDA error) is kept in status(); the step that hit it
// fails with that status and nothing of it is applied.
#ifndef AGT_CORE_CUDA_DEVICE_BACKEND_H_
#define AGT_CORE_CUDA_DEVICE_BACKEND_H_

#include <memory>

#include "core/backend/backend.h"
#include "core/cuda/phase2.h"

namespace agt {

// A backend over `engine`; `name` is what jobs record ("cuda", or "host-engine"
// for tests); threads as MakeCpuBackend's, for phase 1 and the host's tiles.
std::unique_ptr<ComputeBackend> MakeDeviceBackend(std::unique_ptr<cuda::Phase2Api> engine,
                                                  std::string name, int threads);

}  // namespace agt

#endif  // AGT_CORE_CUDA_DEVICE_BACKEND_H_
