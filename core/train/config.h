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
  // The optimizer's rules: learning_rate > 0; lr_decay, lr_min, l1, l2 >= 0
  // and finite; l2 * max(learning_rate, lr_min) < 1 (the bounded L2 step is
  // monotone, hence sound, only then); momentum in [0, 1), dampening in
  // [0, 1]; dampening > 0 and nesterov need momentum > 0, nesterov needs
  // dampening 0 (the rules of PyTorch's SGD, which the reference uses); l1
  // only with plain SGD. Messages as TrainConfig::Validate's.
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
  // Rows of a batch whose factored per-sample bounds are held at once
  // (memory only: results are bit-identical for every value). 0 = the whole
  // batch (fastest); e.g. 256 holds 256 rows' factors instead of b's, for a
  // job whose passes would not fit otherwise (server admission).
  int factor_rows = 0;
  // Dataset rows removed in place (train/batches.h): every other row stays in
  // its batch, batch k training b_k = batch_size - (rows removed from it)
  // rows, and every aggregation of that step normalises by b_k (removal:
  // SEMin_{b_k-n}/(b_k-n); substitution and poisoning: /b_k). Empty (the
  // default): every batch is whole, bit for bit the plain run. The retraining
  // of an unlearning request (core/unlearn/unlearn.h).
  std::vector<int64_t> removed_rows;

  // The rules that need neither the model nor the data: batch_size, epochs,
  // the optimizer, clip_gamma, the perturbation model (against the loss) and
  // the budgets (against the batch size and the perturbation), removed_rows
  // (ids >= 0, none repeated). For a front
  // end that checks a configuration before it knows the dataset (the server,
  // on submission); Validate runs it too.
  absl::Status ValidateTraining() const;

  // ValidateTraining, plus the model and its consistency with a dataset of
  // `data_dim` features, `num_classes` classes and `num_rows` rows, and
  // removed_rows against the dataset: ids in [0, num_rows), at least one
  // trained row left, and every budget fitting every non-empty batch (removal
  // and substitution: n < b_k; poisoning: k <= b_k), since a budget counts
  // rows of the batch as it is trained. A front end that wants to keep only
  // the budgets that fit drops the others first (BatchPlan::SmallestBatch).
  //
  // Every error is InvalidArgument "FIELD: PROBLEM", where FIELD is the path of
  // the offending field spelled as in the `agt` config and the API
  // ("optimizer.l2", "budgets[2].n", "perturbation.labels.target_class") and
  // PROBLEM names the value and the limit; a front end whose fields sit under
  // a root (the API's "spec.") puts it in front.
  absl::Status Validate(Index data_dim, int num_classes, Index num_rows) const;
};

}  // namespace agt

#endif  // AGT_CORE_TRAIN_CONFIG_H_
