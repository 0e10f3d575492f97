// A test harness that trains for real on a perturbed dataset ("perturbed SGD"),
// to try to break the parameter boxes of agt::Trainer.
//
// TrainPerturbed re-implements plain training with the nominal semantics of
// the trainer (goldens README, "Semantics to match"): batches of
// config.batch_size rows in data order, the same order every epoch, the
// incomplete last batch dropped; the descent direction is the mean of the
// per-sample gradients of agt::PerSampleGradients, each clamped to
// [-gamma, gamma] when clipping is configured; the update (L1, L2, learning
// rate schedule, step t counted from 0 over all epochs) is agt::ApplyNominalUpdate
// itself, so the optimizer semantics cannot drift from the trainer's.
//
// Before every step an adversary callback may change that step's batch; the
// harness then checks that the change lies within the threat model (one
// perturbation model and one budget, paper section 4.2, budgets per batch)
// and records a violation instead of training on it, so a faulty adversary
// can never produce a false alarm about the bounds.
#ifndef AGT_TESTS_CORE_PERTURBED_SGD_H_
#define AGT_TESTS_CORE_PERTURBED_SGD_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/bounds/ibp.h"
#include "core/common/types.h"
#include "core/data/dataset.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"

namespace agt_test {

using agt::Index;
using agt::Matrix;
using agt::Vector;

// What one perturbed training may do at every step: the trainer's
// perturbation model and ONE budget of its set.
struct Threat {
  agt::PerturbationModel model;
  agt::Budget budget;
  int num_classes = 0;  // of the dataset: 0 = regression, 2 = binary, C = classes
};

inline Threat MakeThreat(const agt::TrainConfig& config, const agt::Budget& budget,
                         int num_classes) {
  return Threat{config.perturbation, budget, num_classes};
}

// A batch as the adversary leaves it. Removal clears entries of `keep`;
// substitution and poisoning edit rows of x and y in place (same size).
struct EditableBatch {
  Matrix x;
  Vector y;
  std::vector<bool> keep;
};

// What an adversary knows at a step: everything, including the parameters of
// the run it is perturbing (an online adversary, the strongest kind).
struct AttackContext {
  const agt::TrainConfig* config = nullptr;
  const Threat* threat = nullptr;
  int64_t step = 0;               // 0-based over all epochs
  int64_t batch_index = 0;        // 0-based within the epoch
  const Vector* theta = nullptr;  // parameters before this step
  const Matrix* x = nullptr;      // the unperturbed batch
  const Vector* y = nullptr;
};

using Adversary = std::function<void(const AttackContext&, EditableBatch*)>;

// Per-sample gradients exactly as a training step uses them (clamped when the
// config clips).
inline Matrix StepGradients(const agt::TrainConfig& config, const Vector& theta, const Matrix& x,
                            const Vector& y, Vector* losses = nullptr) {
  Matrix grads;
  agt::PerSampleGradients(config.model, theta, x, y, config.loss, &grads, losses);
  if (config.clip_gamma.has_value()) agt::ClampInPlace(&grads, *config.clip_gamma);
  return grads;
}

// True iff `label` is a value the dataset allows (any finite target for
// regression, a class index otherwise).
inline bool IsValidLabel(int num_classes, double label) {
  if (!std::isfinite(label)) return false;
  if (num_classes == 0) return true;
  return label == std::floor(label) && label >= 0 && label < num_classes;
}

// True iff a poisoned label `to` may replace `from` under `perturbation`.
inline bool IsAllowedLabelChange(const agt::LabelPerturbation& perturbation, int num_classes,
                                 double from, double to) {
  if (!perturbation.enabled) return false;
  if (num_classes == 0) {
    // The same floating-point interval the bounds use: [y - nu, y + nu].
    return std::isfinite(to) && to >= from - perturbation.nu && to <= from + perturbation.nu;
  }
  if (!IsValidLabel(num_classes, to)) return false;
  if (perturbation.target_class >= 0) return to == perturbation.target_class;
  return true;
}

// Empty iff `batch` is a perturbation of (x, y) within `threat`; otherwise says
// which rule it breaks.
inline std::string ThreatViolation(const Threat& threat, const Matrix& x, const Vector& y,
                                   const EditableBatch& batch) {
  const Index b = x.rows();
  if (batch.x.rows() != b || batch.x.cols() != x.cols() || batch.y.size() != b ||
      static_cast<Index>(batch.keep.size()) != b) {
    return "the adversary changed the shape of the batch";
  }
  const int n = threat.budget.n;
  int dropped = 0;
  int changed = 0;  // rows whose features or label differ
  int feature_rows = 0;
  int label_rows = 0;
  int touched_rows = 0;
  for (Index i = 0; i < b; ++i) {
    const bool features_differ = (batch.x.row(i).array() != x.row(i).array()).any();
    const bool label_differs = batch.y(i) != y(i);
    if (!batch.keep[i]) ++dropped;
    if (features_differ || label_differs) ++changed;
    if (features_differ) ++feature_rows;
    if (label_differs) ++label_rows;
    if (features_differ || label_differs) ++touched_rows;
    if (threat.model.kind == agt::PerturbationKind::kSubstitution) {
      if (!(batch.x.row(i).array().isFinite().all())) return "substituted features not finite";
      if (!IsValidLabel(threat.num_classes, batch.y(i))) return "substituted label invalid";
    }
    if (threat.model.kind == agt::PerturbationKind::kBoundedPoisoning) {
      const double eps = threat.model.epsilon;
      for (Index j = 0; j < x.cols(); ++j) {
        const double v = batch.x(i, j);
        if (!(v >= x(i, j) - eps && v <= x(i, j) + eps)) {
          return "row " + std::to_string(i) + " feature " + std::to_string(j) +
                 " moved outside the epsilon ball";
        }
      }
      if (label_differs &&
          !IsAllowedLabelChange(threat.model.label, threat.num_classes, y(i), batch.y(i))) {
        return "row " + std::to_string(i) + " label change not allowed";
      }
    }
  }
  switch (threat.model.kind) {
    case agt::PerturbationKind::kRemoval:
      if (changed > 0) return "removal may not edit rows";
      if (dropped > n) {
        return std::to_string(dropped) + " rows dropped, budget " + std::to_string(n);
      }
      return "";
    case agt::PerturbationKind::kSubstitution:
      if (dropped > 0) return "substitution may not drop rows";
      if (changed > n) {
        return std::to_string(changed) + " rows substituted, budget " + std::to_string(n);
      }
      return "";
    case agt::PerturbationKind::kBoundedPoisoning: {
      if (dropped > 0) return "poisoning may not drop rows";
      const int label_n = threat.budget.label_n;
      if (feature_rows > n) {
        return std::to_string(feature_rows) + " feature rows, budget " + std::to_string(n);
      }
      if (label_rows > label_n) {
        return std::to_string(label_rows) + " label rows, budget " + std::to_string(label_n);
      }
      if (threat.model.paired && touched_rows > std::max(n, label_n)) {
        return std::to_string(touched_rows) + " rows touched with paired budgets";
      }
      return "";
    }
  }
  return "unknown perturbation kind";
}

struct PerturbedTraining {
  std::vector<Vector> after_step;  // the parameters after steps 1..T
  int64_t rows_touched = 0;        // rows dropped or changed, over all steps
  std::string violation;           // non-empty: the adversary left the threat model
};

// Trains from `init` on `data`, letting `adversary` (may be empty = no change)
// perturb every batch within `threat`. Stops at the first threat violation.
inline PerturbedTraining TrainPerturbed(const agt::TrainConfig& config, const agt::Dataset& data,
                                        const Vector& init, const Threat& threat,
                                        const Adversary& adversary) {
  PerturbedTraining out;
  const int b = config.batch_size;
  const int64_t batches = data.size() / b;
  const int64_t total_steps = batches * config.epochs;
  Vector theta = init;
  Vector velocity;
  for (int64_t t = 0; t < total_steps; ++t) {
    const Index begin = (t % batches) * b;
    const Matrix x = data.x.middleRows(begin, b);
    const Vector y = data.y.segment(begin, b);
    EditableBatch batch{x, y, std::vector<bool>(b, true)};
    if (adversary) {
      const AttackContext context{&config, &threat, t, t % batches, &theta, &x, &y};
      adversary(context, &batch);
    }
    out.violation = ThreatViolation(threat, x, y, batch);
    if (!out.violation.empty()) {
      out.violation = "step " + std::to_string(t) + ": " + out.violation;
      return out;
    }
    std::vector<Index> kept;
    for (Index i = 0; i < b; ++i) {
      if (batch.keep[i]) kept.push_back(i);
      if (!batch.keep[i] || batch.y(i) != y(i) ||
          (batch.x.row(i).array() != x.row(i).array()).any()) {
        ++out.rows_touched;
      }
    }
    Matrix kept_x(static_cast<Index>(kept.size()), x.cols());
    Vector kept_y(static_cast<Index>(kept.size()));
    for (size_t r = 0; r < kept.size(); ++r) {
      kept_x.row(static_cast<Index>(r)) = batch.x.row(kept[r]);
      kept_y(static_cast<Index>(r)) = batch.y(kept[r]);
    }
    const Matrix grads = StepGradients(config, theta, kept_x, kept_y);
    const Vector direction = grads.colwise().sum().transpose() / static_cast<double>(kept.size());
    agt::ApplyNominalUpdate(config.optimizer, t, direction, &theta, &velocity);
    out.after_step.push_back(theta);
  }
  return out;
}

// The trainer's own trajectory: the nominal parameters and every budget's box
// after each step (Trainer::Step, so intermediate boxes can be checked too).
struct CertifiedTrajectory {
  std::vector<Vector> nominal;                        // [step]
  std::vector<std::vector<agt::ParameterBox>> boxes;  // [step][budget]
  std::string error;                                  // non-empty: the trainer failed
};

inline CertifiedTrajectory RunCertifiedTraining(const agt::TrainConfig& config,
                                                const agt::Dataset& data, const Vector& init) {
  CertifiedTrajectory out;
  absl::StatusOr<std::unique_ptr<agt::Trainer>> trainer = agt::Trainer::Create(config, data, init);
  if (!trainer.ok()) {
    out.error = "Trainer::Create: " + std::string(trainer.status().message());
    return out;
  }
  while (!(*trainer)->done()) {
    absl::StatusOr<agt::ProgressEvent> event = (*trainer)->Step();
    if (!event.ok()) {
      out.error = "Trainer::Step: " + std::string(event.status().message());
      return out;
    }
    out.nominal.push_back((*trainer)->state().nominal);
    out.boxes.push_back((*trainer)->state().boxes);
  }
  return out;
}

// The containment tolerance: floating-point rounding of the bound computation
// only, 1e-9 relative to the value checked.
inline double Tolerance(double value) { return 1e-9 * (1.0 + std::fabs(value)); }

// Empty iff every entry of theta lies in the box up to Tolerance; otherwise
// describes the worst violation (NaN counts as outside).
inline std::string OutsideBox(const agt::ParameterBox& box, const Vector& theta) {
  if (box.size() != theta.size()) return "box and parameters differ in size";
  Index worst = -1;
  double worst_excess = 0.0;
  for (Index i = 0; i < theta.size(); ++i) {
    const double excess =
        std::max(box.lower(i) - theta(i), theta(i) - box.upper(i)) - Tolerance(theta(i));
    if (!(excess <= 0.0) && (worst < 0 || !(excess <= worst_excess))) {
      worst = i;
      worst_excess = excess;
    }
  }
  if (worst < 0) return "";
  char text[256];
  std::snprintf(text, sizeof(text),
                "parameter %ld = %.17g outside [%.17g, %.17g] (excess %.3g beyond tolerance)",
                static_cast<long>(worst), theta(worst), box.lower(worst), box.upper(worst),
                worst_excess);
  return text;
}

// The same for a matrix of values (e.g. logits) and an interval matrix.
inline std::string OutsideInterval(const agt::IntervalMatrix& bounds, const Matrix& values) {
  if (bounds.rows() != values.rows() || bounds.cols() != values.cols()) {
    return "bounds and values differ in shape";
  }
  for (Index i = 0; i < values.rows(); ++i) {
    for (Index j = 0; j < values.cols(); ++j) {
      const double v = values(i, j);
      if (!(v >= bounds.lower(i, j) - Tolerance(v) && v <= bounds.upper(i, j) + Tolerance(v))) {
        char text[256];
        std::snprintf(text, sizeof(text), "value (%ld, %ld) = %.17g outside [%.17g, %.17g]",
                      static_cast<long>(i), static_cast<long>(j), v, bounds.lower(i, j),
                      bounds.upper(i, j));
        return text;
      }
    }
  }
  return "";
}

// True iff every perturbation within `small` is also within `big` (same
// perturbation model), so big's box must contain small's runs too.
inline bool Covers(const agt::Budget& big, const agt::Budget& small) {
  return big.n >= small.n && big.label_n >= small.label_n;
}

}  // namespace agt_test

#endif  // AGT_TESTS_CORE_PERTURBED_SGD_H_
