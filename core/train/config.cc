#include "core/train/config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace agt {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

}  // namespace

double OptimizerConfig::LearningRate(int64_t step) const {
  return std::max(learning_rate / (1.0 + lr_decay * static_cast<double>(step)), lr_min);
}

absl::Status OptimizerConfig::Validate() const {
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) {
    return Invalid(absl::StrCat("optimizer.learning_rate must be > 0, got ", learning_rate));
  }
  if (!(lr_decay >= 0.0) || !std::isfinite(lr_decay)) {
    return Invalid(absl::StrCat("optimizer.lr_decay must be >= 0, got ", lr_decay));
  }
  if (!(lr_min >= 0.0) || !std::isfinite(lr_min)) {
    return Invalid(absl::StrCat("optimizer.lr_min must be >= 0, got ", lr_min));
  }
  if (!(l1 >= 0.0) || !std::isfinite(l1)) {
    return Invalid(absl::StrCat("optimizer.l1 must be >= 0, got ", l1));
  }
  if (!(l2 >= 0.0) || !std::isfinite(l2)) {
    return Invalid(absl::StrCat("optimizer.l2 must be >= 0, got ", l2));
  }
  // The bounded L2 step is monotone in theta (hence sound) only while lr * l2 < 1.
  const double max_lr = std::max(learning_rate, lr_min);
  if (max_lr * l2 >= 1.0) {
    return Invalid(absl::StrCat("optimizer.l2 ", l2, " times the learning rate ", max_lr,
                                " must be < 1 for sound bounds"));
  }
  if (momentum_enabled) {
    if (!(momentum >= 0.0 && momentum < 1.0)) {
      return Invalid(absl::StrCat("optimizer.momentum must be in [0, 1), got ", momentum));
    }
    if (!(dampening >= 0.0 && dampening <= 1.0)) {
      return Invalid(absl::StrCat("optimizer.dampening must be in [0, 1], got ", dampening));
    }
    if (l1 > 0.0) return Invalid("optimizer.l1 is supported with plain SGD only, not momentum");
  }
  return absl::OkStatus();
}

absl::StatusOr<PerturbationKind> ParsePerturbationKind(const std::string& name) {
  if (name == "removal" || name == "unlearning") return PerturbationKind::kRemoval;
  if (name == "substitution" || name == "privacy") return PerturbationKind::kSubstitution;
  if (name == "poisoning" || name == "bounded_poisoning") {
    return PerturbationKind::kBoundedPoisoning;
  }
  return Invalid(absl::StrCat("unknown perturbation kind \"", name,
                              "\" (expected removal, substitution or poisoning)"));
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

absl::Status TrainConfig::Validate(Index data_dim, int num_classes, Index num_rows) const {
  if (absl::Status s = model.Validate(); !s.ok()) {
    return Invalid(absl::StrCat("model: ", s.message()));
  }
  if (model.InputDim() != data_dim) {
    return Invalid(absl::StrCat("model input width ", model.InputDim(),
                                " does not match the dataset's ", data_dim, " features"));
  }
  const int out = model.OutputDim();
  switch (loss) {
    case LossKind::kMse:
      if (out != 1) return Invalid(absl::StrCat("loss mse needs 1 output, the model has ", out));
      break;
    case LossKind::kBinaryCrossEntropy:
    case LossKind::kHinge:
      if (out != 1) {
        return Invalid(absl::StrCat("loss ", LossKindName(loss),
                                    " needs 1 output (one logit), the model has ", out));
      }
      if (num_classes != 2) {
        return Invalid(absl::StrCat("loss ", LossKindName(loss),
                                    " needs binary labels 0/1, the dataset has ",
                                    num_classes == 0 ? std::string("real-valued targets")
                                                     : absl::StrCat(num_classes, " classes")));
      }
      break;
    case LossKind::kCrossEntropy:
      if (num_classes < 2 || out != num_classes) {
        return Invalid(absl::StrCat("loss cross_entropy needs one output per class: the model has ",
                                    out, " outputs, the dataset ", num_classes, " classes"));
      }
      break;
  }
  if (batch_size < 1) return Invalid(absl::StrCat("batch_size must be >= 1, got ", batch_size));
  if (batch_size > num_rows) {
    return Invalid(
        absl::StrCat("batch_size ", batch_size, " exceeds the dataset's ", num_rows, " rows"));
  }
  if (epochs < 1) return Invalid(absl::StrCat("epochs must be >= 1, got ", epochs));
  if (absl::Status s = optimizer.Validate(); !s.ok()) return s;
  if (clip_gamma.has_value() && !(*clip_gamma > 0.0 && std::isfinite(*clip_gamma))) {
    return Invalid(absl::StrCat("clip_gamma must be > 0, got ", *clip_gamma));
  }
  const PerturbationModel& p = perturbation;
  if (p.kind == PerturbationKind::kSubstitution && !clip_gamma.has_value()) {
    return Invalid("substitution (privacy) needs clip_gamma: its bound assumes clipped gradients");
  }
  if (!(p.epsilon >= 0.0) || !std::isfinite(p.epsilon)) {
    return Invalid(absl::StrCat("perturbation.epsilon must be >= 0, got ", p.epsilon));
  }
  if (p.label.enabled) {
    if (loss == LossKind::kMse && !(p.label.nu >= 0.0 && std::isfinite(p.label.nu))) {
      return Invalid(absl::StrCat("perturbation.labels.nu must be >= 0, got ", p.label.nu));
    }
    if (IsClassification(loss) && p.label.target_class >= 0) {
      const int classes = loss == LossKind::kCrossEntropy ? num_classes : 2;
      if (p.label.target_class >= classes) {
        return Invalid(absl::StrCat("perturbation.labels.target_class ", p.label.target_class,
                                    " is not a class (0..", classes - 1, ")"));
      }
    }
  }
  if (p.kind != PerturbationKind::kBoundedPoisoning && (p.epsilon > 0.0 || p.label.enabled)) {
    return Invalid(
        absl::StrCat("perturbation.epsilon and perturbation.labels apply to poisoning "
                     "only, not ",
                     PerturbationKindName(p.kind)));
  }
  if (budgets.empty()) return Invalid("budgets: at least one budget is needed");
  for (size_t i = 0; i < budgets.size(); ++i) {
    const Budget& b = budgets[i];
    if (b.n < 0 || b.label_n < 0) {
      return Invalid(absl::StrCat("budgets[", i, "] must be >= 0, got ", b.Describe(p)));
    }
    if (p.kind != PerturbationKind::kBoundedPoisoning) {
      if (b.label_n != 0) {
        return Invalid(absl::StrCat("budgets[", i, "]: label budgets apply to poisoning only"));
      }
      if (b.n >= batch_size) {
        return Invalid(absl::StrCat("batch_size ", batch_size, " must exceed the ",
                                    PerturbationKindName(p.kind), " budget ", b.n, " (budgets[", i,
                                    "])"));
      }
    } else {
      if (b.label_n > 0 && !p.label.enabled) {
        return Invalid(absl::StrCat("budgets[", i, "] poisons ", b.label_n,
                                    " labels but perturbation.labels is not set"));
      }
      if (b.EffectiveK(p) > batch_size) {
        return Invalid(absl::StrCat("budgets[", i, "]: ", b.EffectiveK(p),
                                    " poisoned rows per batch exceed batch_size ", batch_size));
      }
    }
  }
  if (fragment_size < 0) {
    return Invalid(absl::StrCat("fragment_size must be >= 0, got ", fragment_size));
  }
  if (threads < 0) return Invalid(absl::StrCat("threads must be >= 0, got ", threads));
  return absl::OkStatus();
}

}  // namespace agt
