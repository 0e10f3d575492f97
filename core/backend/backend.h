// The compute backend: what one certified training step (Algorithm 1) asks of
// the hardware, behind one interface (ARCHITECTURE.md sections 3 and 6). The
// training loop (train/train.h) holds a ComputeBackend and knows nothing of
// threads, block sizes, scratch memory or devices.
//
// One step is three calls, in this order:
//   ComputeFactors  - per-sample gradient bounds of the batch in factored form:
//                     the nominal pass at theta_t and, for every budget n, the
//                     pass over the box Theta_t(n) (and, for bounded poisoning,
//                     over the perturbed inputs and labels);
//   Aggregate       - expand the factors block by block, clip, and fold them
//                     into the per-parameter streaming aggregation of every
//                     budget (Theorems 6, 8, 9) and the nominal mean;
//   UpdateParameters- theta_{t+1} and Theta_{t+1}(n) from the directions.
//
// Contract for every implementation (the CPU backend today, CUDA next):
// - Ownership: the caller owns the batch, the TrainState and the directions;
//   the backend owns its scratch (host or device memory), which lives from
//   Prepare until destruction and is reused across steps. The batch rows and
//   the state are read during the call only; nothing is retained by pointer.
// - Where buffers live: inputs and outputs of these calls are host Eigen
//   objects. A device backend copies the batch and the boxes in, and the
//   directions (or the updated state) out, within the call; it may keep
//   device mirrors of the state between calls as long as the host TrainState
//   is current when UpdateParameters returns.
// - Agreement: every backend computes the same bounds as the CPU backend up to
//   rounding (1e-12 relative in float64 on the goldens and random models);
//   results never depend on the thread count or launch configuration.
// - Soundness: the directions enclose the mean gradient of every perturbed
//   batch of the job's perturbation model (aggregate/aggregate.h), given the
//   per-sample bounds of bounds/ibp.h.
// Not thread-safe: one step at a time per backend object.
#ifndef AGT_CORE_BACKEND_BACKEND_H_
#define AGT_CORE_BACKEND_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/common/types.h"
#include "core/train/config.h"
#include "core/train/update.h"

namespace agt {

// The descent direction of one batch and, per budget, its bounds.
struct StepDirections {
  Vector nominal;              // mean clipped nominal gradient
  std::vector<Vector> lower;   // per budget: DeltaL
  std::vector<Vector> upper;   // per budget: DeltaU
  double nominal_loss = 0.0;   // mean loss of the batch at theta_t
};

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  virtual std::string name() const = 0;

  // Fixes the job (model, loss, batch size, perturbation, budgets, clipping,
  // bound options); called once before the first step. The config must be
  // valid (TrainConfig::Validate) and outlive the backend.
  virtual absl::Status Prepare(const TrainConfig& config) = 0;
  // x: the step's raw input rows, y: their labels; nominal and boxes: the
  // state before the step (boxes.size() == budgets.size()). x has batch_size
  // rows, or fewer (at least 1) when rows are removed in place
  // (TrainConfig::removed_rows): then Aggregate normalises every direction by
  // x.rows() (the mean over the rows the batch keeps, removal
  // SEMin_{b_k-n}/(b_k-n), substitution and poisoning /b_k), and the caller
  // guarantees that every budget fits x.rows() (TrainConfig::Validate).
  virtual void ComputeFactors(const Eigen::Ref<const Matrix>& x, const Vector& y,
                              const Vector& nominal, const std::vector<ParameterBox>& boxes) = 0;
  virtual void Aggregate(StepDirections* out) = 0;
  virtual void UpdateParameters(const OptimizerConfig& optimizer, int64_t step,
                                const StepDirections& directions, TrainState* state) = 0;
  // Not OK once a call failed on the device (a device backend's error, e.g.
  // a CUDA fault): the trainer checks it after Aggregate and fails the step
  // with it, leaving the state as it was. The CPU backend never fails.
  virtual absl::Status status() const { return absl::OkStatus(); }
};

// theta_{t+1} and every Theta_{t+1}(n) from a step's directions, on the host
// (ApplyBoxUpdate and ApplyNominalUpdate of train/update.h): what a backend's
// UpdateParameters does when the state lives on the host.
void ApplyDirections(const OptimizerConfig& optimizer, int64_t step,
                     const StepDirections& directions, TrainState* state);

// The CPU backend (Eigen, a persistent thread pool); threads <= 0 means the
// hardware concurrency. Always available.
std::unique_ptr<ComputeBackend> MakeCpuBackend(int threads);

}  // namespace agt

#endif  // AGT_CORE_BACKEND_BACKEND_H_
