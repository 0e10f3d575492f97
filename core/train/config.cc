#include "core/train/config.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/train/batches.h"

namespace agt {
namespace {

// "FIELD: PROBLEM", the form of every message of this file (config.h).
absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

absl::Status CheckNonNegative(absl::string_view field, double v) {
  if (v >= 0.0 && std::isfinite(v)) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be a finite number >= 0, got ", v));
}

std::string OnlyForPoisoning(PerturbationKind kind) {
  return absl::StrCat("applies to poisoning only, the kind is ", PerturbationKindName(kind));
}

absl::Status ValidatePerturbation(const TrainConfig& c) {
  const PerturbationModel& p = c.perturbation;
  if (absl::Status s = CheckNonNegative("perturbation.epsilon", p.epsilon); !s.ok()) return s;
  if (p.kind != PerturbationKind::kBoundedPoisoning) {
    if (p.epsilon > 0.0) return Invalid("perturbation.epsilon", OnlyForPoisoning(p.kind));
    if (p.label.enabled) return Invalid("perturbation.labels", OnlyForPoisoning(p.kind));
    if (p.paired) return Invalid("perturbation.paired", OnlyForPoisoning(p.kind));
  }
  if (p.label.enabled) {
    if (c.loss == LossKind::kMse) {
      if (absl::Status s = CheckNonNegative("perturbation.labels.nu", p.label.nu); !s.ok()) {
        return s;
      }
    } else if (c.loss != LossKind::kCrossEntropy && p.label.target_class > 1) {
      // Cross-entropy's classes come with the data (Validate).
      return Invalid("perturbation.labels.target_class",
                     absl::StrCat(p.label.target_class, " is not a class of ", LossKindName(c.loss),
                                  " (0..1)"));
    }
  }
  if (p.kind == PerturbationKind::kSubstitution && !c.clip_gamma.has_value()) {
    return Invalid("clip_gamma",
                   "substitution (privacy) needs clip_gamma > 0: its bound assumes clipped "
                   "gradients (Theorem 8)");
  }
  return absl::OkStatus();
}

absl::Status ValidateBudgets(const TrainConfig& c) {
  const PerturbationModel& p = c.perturbation;
  if (c.budgets.empty()) return Invalid("budgets", "at least one budget is required");
  for (size_t i = 0; i < c.budgets.size(); ++i) {
    const Budget& b = c.budgets[i];
    const std::string field = absl::StrCat("budgets[", i, "]");
    if (b.n < 0) return Invalid(field + ".n", absl::StrCat(b.n, " must be >= 0"));
    if (b.label_n < 0) return Invalid(field + ".label_n", absl::StrCat(b.label_n, " must be >= 0"));
    if (p.kind != PerturbationKind::kBoundedPoisoning) {
      if (b.label_n != 0) return Invalid(field + ".label_n", OnlyForPoisoning(p.kind));
      // Removal and substitution must leave at least one row of the batch.
      if (b.n >= c.batch_size) {
        return Invalid(field + ".n", absl::StrCat("batch_size ", c.batch_size, " must exceed the ",
                                                  PerturbationKindName(p.kind), " budget ", b.n));
      }
      continue;
    }
    if (b.label_n > 0 && !p.label.enabled) {
      return Invalid(
          field + ".label_n",
          absl::StrCat(b.label_n, " poisoned labels but perturbation.labels is not set"));
    }
    // Poisoning may hit every row of the batch (k = batch_size).
    if (b.EffectiveK(p) > c.batch_size) {
      const std::string k = p.paired ? absl::StrCat("max(n ", b.n, ", label_n ", b.label_n, ")")
                                     : absl::StrCat("n ", b.n, " + label_n ", b.label_n);
      return Invalid(field,
                     absl::StrCat(k, " = ", b.EffectiveK(p),
                                  " poisoned rows per batch exceed batch_size ", c.batch_size));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRemovedIds(const TrainConfig& c) {
  for (size_t i = 0; i < c.removed_rows.size(); ++i) {
    if (c.removed_rows[i] < 0) {
      return Invalid(absl::StrCat("removed_rows[", i, "]"),
                     absl::StrCat(c.removed_rows[i], " must be >= 0"));
    }
  }
  return absl::OkStatus();
}

// Every budget must fit every batch as it is trained after removed_rows.
absl::Status ValidateRemovedRows(const TrainConfig& c, Index num_rows) {
  if (c.removed_rows.empty()) return absl::OkStatus();
  absl::StatusOr<BatchPlan> plan = BatchPlan::Create(num_rows, c.batch_size, c.removed_rows);
  if (!plan.ok()) return plan.status();  // "removed_rows[i]: ..." already
  if (plan->SmallestBatch() == 0) {
    return Invalid("removed_rows",
                   absl::StrCat(c.removed_rows.size(), " ids remove every row of the ",
                                plan->batches_per_epoch(), " trained batches of ", c.batch_size,
                                " rows; nothing would be trained"));
  }
  const int smallest = plan->SmallestBatch();
  const std::string where = absl::StrCat("batch ", plan->SmallestBatchIndex(), " keeps ", smallest,
                                         " of its ", c.batch_size, " rows after removed_rows");
  const PerturbationModel& p = c.perturbation;
  for (size_t i = 0; i < c.budgets.size(); ++i) {
    const Budget& b = c.budgets[i];
    const std::string field = absl::StrCat("budgets[", i, "]");
    if (p.kind != PerturbationKind::kBoundedPoisoning) {
      if (b.n >= smallest) {
        return Invalid(field + ".n",
                       absl::StrCat(where, "; the ", PerturbationKindName(p.kind), " budget ", b.n,
                                    " must be below every trained batch's size"));
      }
    } else if (b.EffectiveK(p) > smallest) {
      return Invalid(field, absl::StrCat(b.EffectiveK(p),
                                         " poisoned rows per batch exceed the batch: ", where));
    }
  }
  return absl::OkStatus();
}

}  // namespace

double OptimizerConfig::LearningRate(int64_t step) const {
  return std::max(learning_rate / (1.0 + lr_decay * static_cast<double>(step)), lr_min);
}

absl::Status OptimizerConfig::Validate() const {
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) {
    return Invalid("optimizer.learning_rate", absl::StrCat("must be > 0, got ", learning_rate));
  }
  for (const auto& [field, value] : {std::pair<const char*, double>{"optimizer.lr_decay", lr_decay},
                                     {"optimizer.lr_min", lr_min},
                                     {"optimizer.l1", l1},
                                     {"optimizer.l2", l2}}) {
    if (absl::Status s = CheckNonNegative(field, value); !s.ok()) return s;
  }
  // The bounded L2 step theta - lr * l2 * theta is monotone in theta (hence
  // sound) only while lr * l2 < 1, for every lr the schedule reaches.
  const double max_lr = std::max(learning_rate, lr_min);
  if (max_lr * l2 >= 1.0) {
    return Invalid("optimizer.l2",
                   absl::StrCat(l2, " times the largest learning rate ", max_lr,
                                " must be < 1 (the bounded L2 step is sound only then)"));
  }
  if (!(momentum >= 0.0 && momentum < 1.0)) {
    return Invalid("optimizer.momentum", absl::StrCat("must be in [0, 1), got ", momentum));
  }
  if (!(dampening >= 0.0 && dampening <= 1.0)) {
    return Invalid("optimizer.dampening", absl::StrCat("must be in [0, 1], got ", dampening));
  }
  const bool with_momentum = momentum_enabled && momentum > 0.0;
  if (dampening > 0.0 && !with_momentum) {
    return Invalid("optimizer.dampening", absl::StrCat(dampening, " needs momentum > 0"));
  }
  if (nesterov && !with_momentum) return Invalid("optimizer.nesterov", "needs momentum > 0");
  if (nesterov && dampening != 0.0) {
    return Invalid("optimizer.nesterov", absl::StrCat("needs dampening 0, got ", dampening));
  }
  if (momentum_enabled && l1 > 0.0) {
    return Invalid("optimizer.l1",
                   absl::StrCat(l1, " is supported with plain SGD only (momentum must be 0)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PerturbationKind> ParsePerturbationKind(const std::string& name) {
  if (name == "removal" || name == "unlearning") return PerturbationKind::kRemoval;
  if (name == "substitution" || name == "privacy") return PerturbationKind::kSubstitution;
  if (name == "poisoning" || name == "bounded_poisoning") {
    return PerturbationKind::kBoundedPoisoning;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown perturbation kind \"", name, "\" (expected removal, substitution or poisoning)"));
}

std::string PerturbationKindName(PerturbationKind kind) {
  switch (kind) {
    case PerturbationKind::kRemoval:
      return "removal";
    case PerturbationKind::kSubstitution:
      return "substitution";
    case PerturbationKind::kBoundedPoisoning:
      return "poisoning";
  }
  return "unknown";
}

int Budget::EffectiveK(const PerturbationModel& perturbation) const {
  if (perturbation.kind != PerturbationKind::kBoundedPoisoning) return n;
  return perturbation.paired ? std::max(n, label_n) : n + label_n;
}

std::string Budget::Describe(const PerturbationModel& perturbation) const {
  if (perturbation.kind != PerturbationKind::kBoundedPoisoning) return absl::StrCat("n=", n);
  return absl::StrCat("n=", n, ",labels=", label_n, perturbation.paired ? ",paired" : "");
}

absl::Status TrainConfig::ValidateTraining() const {
  if (batch_size < 1) return Invalid("batch_size", absl::StrCat(batch_size, " must be >= 1"));
  if (epochs < 1) return Invalid("epochs", absl::StrCat(epochs, " must be >= 1"));
  if (absl::Status s = optimizer.Validate(); !s.ok()) return s;
  if (clip_gamma.has_value() && !(*clip_gamma > 0.0 && std::isfinite(*clip_gamma))) {
    return Invalid("clip_gamma", absl::StrCat("must be > 0, got ", *clip_gamma));
  }
  if (absl::Status s = ValidatePerturbation(*this); !s.ok()) return s;
  if (absl::Status s = ValidateBudgets(*this); !s.ok()) return s;
  if (factor_rows < 0) {
    return Invalid("factor_rows", absl::StrCat(factor_rows, " must be >= 0"));
  }
  if (fragment_size < 0) {
    return Invalid("fragment_size", absl::StrCat(fragment_size, " must be >= 0"));
  }
  if (threads < 0) return Invalid("threads", absl::StrCat(threads, " must be >= 0"));
  return ValidateRemovedIds(*this);
}

absl::Status TrainConfig::Validate(Index data_dim, int num_classes, Index num_rows) const {
  if (absl::Status s = model.Validate(); !s.ok()) return Invalid("model", s.message());
  if (model.InputDim() != data_dim) {
    return Invalid("model", absl::StrCat("input width ", model.InputDim(),
                                         " does not match the dataset's ", data_dim, " features"));
  }
  const int out = model.OutputDim();
  switch (loss) {
    case LossKind::kMse:
      if (out != 1) {
        return Invalid("loss", absl::StrCat("mse needs 1 output, the model has ", out));
      }
      break;
    case LossKind::kBinaryCrossEntropy:
    case LossKind::kHinge:
      if (out != 1) {
        return Invalid("loss", absl::StrCat(LossKindName(loss),
                                            " needs 1 output (one logit), the model has ", out));
      }
      if (num_classes != 2) {
        return Invalid(
            "loss", absl::StrCat(LossKindName(loss), " needs binary labels 0/1, the dataset has ",
                                 num_classes == 0 ? std::string("real-valued targets")
                                                  : absl::StrCat(num_classes, " classes")));
      }
      break;
    case LossKind::kCrossEntropy:
      if (num_classes < 2 || out != num_classes) {
        return Invalid("loss",
                       absl::StrCat("cross_entropy needs one output per class: the model "
                                    "has ",
                                    out, " outputs, the dataset ", num_classes, " classes"));
      }
      break;
  }
  if (batch_size > num_rows) {
    return Invalid("batch_size",
                   absl::StrCat(batch_size, " exceeds the dataset's ", num_rows, " rows"));
  }
  if (absl::Status s = ValidateTraining(); !s.ok()) return s;
  const LabelPerturbation& label = perturbation.label;
  if (label.enabled && loss == LossKind::kCrossEntropy && label.target_class >= num_classes) {
    return Invalid("perturbation.labels.target_class",
                   absl::StrCat(label.target_class, " is not a class of the dataset's ",
                                num_classes, " classes (0..", num_classes - 1, ")"));
  }
  return ValidateRemovedRows(*this, num_rows);
}

}  // namespace agt
