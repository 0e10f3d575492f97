// The configuration of an AGT training run (paper Algorithm 1): model, loss,
// batch size, epochs, optimizer, clipping, perturbation model and budget set,
// and the one validation of it that every front end (the `agt` tool, the
// server) uses, so that the rules cannot drift apart.
#ifndef AGT_CORE_TRAIN_CONFIG_H_
#define AGT_CORE_TRAIN_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/types.h"
#include "core/bounds/bound_method.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"

namespace agt {

struct OptimizerConfig {
  double learning_rate = 0.1;  // alpha
  double lr_decay = 0.0;       // eta: lr_t = max(alpha / (1 + eta t), lr_min)
  double lr_min = 0.0;
  double l1 = 0.0;                // SGD only; applied before the gradient step
  double l2 = 0.0;                // adds l2 * theta to the gradient
  bool momentum_enabled = false;  // SGDM (reference rule on bounds)
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;

  double LearningRate(int64_t step) const;
  absl::Status Validate() const;
};

enum class PerturbationKind {
  kRemoval,           // up to n rows per batch removed (unlearning), Theorem 6
  kSubstitution,      // up to n rows per batch replaced (privacy), Theorem 8; needs clipping
  kBoundedPoisoning,  // up to n rows per batch with features/labels moved, Theorem 9
};

absl::StatusOr<PerturbationKind> ParsePerturbationKind(const std::string& name);
std::string PerturbationKindName(PerturbationKind kind);

struct PerturbationModel {
  PerturbationKind kind = PerturbationKind::kRemoval;
  // Bounded poisoning: l-infinity radius of feature changes, and what label
  // changes are allowed. The perturbed per-sample bounds cover both at once.
  double epsilon = 0.0;
  LabelPerturbation label;
  // True: the feature and label budgets hit the same rows (k = max), false:
  // different rows (k = sum).
  bool paired = false;
};

// One budget of the set. Removal/substitution use `n`; bounded poisoning uses
// `n` feature-poisoned rows and `label_n` label-poisoned rows per batch.
struct Budget {
  int n = 0;
  int label_n = 0;

  // The number of rows per batch the aggregation must allow for.
  int EffectiveK(const PerturbationModel& perturbation) const;
  std::string Describe(const PerturbationModel& perturbation) const;
};

struct TrainConfig {
  ModelSpec model;
  LossKind loss = LossKind::kBinaryCrossEntropy;
  int batch_size = 100;
  int epochs = 1;
  OptimizerConfig optimizer;
  // Clamp every per-sample gradient (nominal and bounds) to [-gamma, gamma].
  std::optional<double> clip_gamma;
  PerturbationModel perturbation;
  std::vector<Budget> budgets;
  // The bound algorithm and its interval arithmetic (product, rounding).
  BoundOptions bounds;
  // Rows per fragment of a batch (memory/speed only); 0 = automatic.
  int fragment_size = 0;
  // Worker threads; 0 = hardware concurrency. Does not change results.
  int threads = 0;

  // Checks every field and its consistency with a dataset of `data_dim`
  // features, `num_classes` classes and `num_rows` rows; messages name the
  // field, the value and the limit.
  absl::Status Validate(Index data_dim, int num_classes, Index num_rows) const;
};

}  // namespace agt

#endif  // AGT_CORE_TRAIN_CONFIG_H_
