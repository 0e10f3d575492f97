// The AGT training loop (paper Algorithm 1, ARCHITECTURE.md section 3): one
// nominal SGD trajectory and, for every budget in the set, a parameter box
// that contains every parameter vector reachable by training on a dataset
// perturbed within that budget.
//
// Assumptions under which the boxes are sound (paper section 5.2): fixed data
// order, fixed initialisation, fixed hyper-parameters; budgets count per batch
// (a dataset-wide claim holds for up to n perturbed points in total). Momentum
// on bounds follows the reference's rule and is not established as sound.
//
// Determinism: results depend only on the config, the data and the initial
// parameters, not on the number of threads.
//
// Rows removed in place (TrainConfig::removed_rows, train/batches.h): batch k
// trains its own rows minus the removed ones, every aggregation of the step
// normalises by that batch's size, and a batch left empty is a step without
// update (the step counter and the learning-rate schedule still advance; its
// progress event reports nominal_loss 0). With no removed rows, or removed
// rows in the dropped tail only, the run is bit for bit the plain one.
#ifndef AGT_CORE_TRAIN_TRAIN_H_
#define AGT_CORE_TRAIN_TRAIN_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/types.h"
#include "core/data/dataset.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/backend/backend.h"
#include "core/train/batches.h"
#include "core/train/config.h"
#include "core/train/update.h"

namespace agt {

struct ProgressEvent {
  int64_t iteration = 0;  // steps done so far (1-based after a step)
  int64_t total_iterations = 0;
  int epoch = 0;              // 0-based epoch of the last step
  double nominal_loss = 0.0;  // mean loss of the last batch at the nominal parameters
  double learning_rate = 0.0;
  std::vector<double> total_width;  // per budget: sum of upper - lower
};

struct TrainResult {
  TrainState state;
  int64_t iterations = 0;
  int64_t batches_per_epoch = 0;
  int64_t dropped_rows_per_epoch = 0;  // the incomplete last batch
};

struct TrainCallbacks {
  // Called after every step.
  std::function<void(const ProgressEvent&)> progress;
  // Polled before every step; training stops with CancelledError when set.
  const std::atomic<bool>* cancel = nullptr;
};

// Runs AGT. Owns nothing it is given; the dataset must outlive the call.
class Trainer {
 public:
  // The step's heavy work runs on `backend` (backend/backend.h); null means
  // the CPU backend with config.threads threads.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainConfig& config, const Dataset& data, const Vector& init,
      std::unique_ptr<ComputeBackend> backend = nullptr);
  ~Trainer();

  int64_t total_steps() const { return total_steps_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t dropped_rows_per_epoch() const { return dropped_rows_; }
  // The batches as trained (rows removed in place, if any).
  const BatchPlan& batches() const { return plan_; }
  bool done() const { return state_.step >= total_steps_; }
  const TrainState& state() const { return state_; }
  const TrainConfig& config() const { return config_; }
  // Replaces the state (e.g. from a checkpoint); shapes are checked.
  absl::Status Restore(const TrainState& state);

  // One AGT iteration on the next batch; returns its progress event.
  absl::StatusOr<ProgressEvent> Step();
  // Steps until done or cancelled.
  absl::StatusOr<TrainResult> Run(const TrainCallbacks& callbacks = {});

 private:
  Trainer(const TrainConfig& config, const Dataset& data, BatchPlan plan,
          std::unique_ptr<ComputeBackend> backend);
  ProgressEvent SkipEmptyBatch();

  TrainConfig config_;
  const Dataset& data_;
  BatchPlan plan_;
  // A batch with rows removed, gathered (reused across steps).
  Matrix batch_x_;
  Vector batch_y_;
  int64_t batches_per_epoch_ = 0;
  int64_t dropped_rows_ = 0;
  int64_t total_steps_ = 0;
  TrainState state_;
  std::unique_ptr<ComputeBackend> backend_;
};

// Convenience: create and run.
absl::StatusOr<TrainResult> Train(const TrainConfig& config, const Dataset& data,
                                  const Vector& init, const TrainCallbacks& callbacks = {});

}  // namespace agt

#endif  // AGT_CORE_TRAIN_TRAIN_H_
