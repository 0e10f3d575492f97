#include "server/domain/private_prediction.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/training.pb.h"
#include "core/common/status_details.h"
#include "core/privacy/budget.h"
#include "core/privacy/privacy.h"
#include "server/domain/certifier.h"

namespace agt::server {
namespace {

using agt::v1::PrivacyMechanism;

absl::StatusOr<agt::v1::TrainingJobSpec> ParseSpec(const ModelRecord& model) {
  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(model.spec)) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
  }
  return spec;
}

// Why the smooth-sensitivity mechanism does not apply to the model, or ""
// when it does.
std::string SmoothSensitivityRefusal(const ModelRecord& model,
                                     const agt::v1::TrainingJobSpec& spec) {
  if (model.num_classes != 2) {
    return absl::StrCat("it has ", model.num_classes,
                        " classes and the smooth-sensitivity bound (Theorem 11) is for binary "
                        "classifiers; use PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX");
  }
  const std::string binary_hint = "; use PRIVACY_MECHANISM_GLOBAL_LAPLACE (no certificate needed)";
  if (spec.perturbation().kind() != agt::v1::PERTURBATION_KIND_SUBSTITUTION) {
    return absl::StrCat(
        "it was trained under ", agt::v1::PerturbationKind_Name(spec.perturbation().kind()),
        " and Theorem 11 needs bounds under PERTURBATION_KIND_SUBSTITUTION", binary_hint);
  }
  if (!(spec.clip_gamma() > 0)) {
    return absl::StrCat("it was trained without clamp clipping", binary_hint);
  }
  if (spec.optimizer().momentum() != 0) {
    return absl::StrCat("it was trained with momentum, whose bounds are not established as sound",
                        binary_hint);
  }
  if (model.boxes.empty()) return absl::StrCat("it has no parameter boxes", binary_hint);
  return "";
}

const char* MechanismName(PrivacyMechanism m) {
  switch (m) {
    case agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY:
      return "smooth sensitivity (Cauchy noise, paper eq. 58-59)";
    case agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE:
      return "global sensitivity (Laplace noise, paper eq. 58)";
    case agt::v1::PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX:
      return "report-noisy-argmax (Laplace noise per class)";
    default:
      return "unknown";
  }
}

// A refusal because of what the model is; reason and model_id attached.
absl::Status ModelRefusal(const ModelRecord& model, absl::string_view reason,
                          absl::Status status) {
  return WithMetadata(WithReason(std::move(status), reason), "model_id", model.id);
}

}  // namespace

absl::StatusOr<PrivacyMechanism> ResolveMechanism(const ModelRecord& model,
                                                  PrivacyMechanism requested) {
  if (!agt::v1::PrivacyMechanism_IsValid(requested)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mechanism: unknown value ", static_cast<int>(requested)));
  }
  absl::StatusOr<agt::v1::TrainingJobSpec> spec = ParseSpec(model);
  if (!spec.ok()) return spec.status();
  if (model.num_classes < 2) {
    return ModelRefusal(model, kReasonModelKindNotSupported,
                        absl::FailedPreconditionError(absl::StrCat(
                            "model ", model.id,
                            " is a regression model; private predictions release class labels")));
  }
  const PrivacyMechanism mechanism = requested == agt::v1::PRIVACY_MECHANISM_UNSPECIFIED
                                         ? agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY
                                         : requested;
  switch (mechanism) {
    case agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY: {
      const std::string refusal = SmoothSensitivityRefusal(model, *spec);
      if (!refusal.empty()) {
        return ModelRefusal(model, kReasonMechanismNotApplicable,
                            absl::FailedPreconditionError(absl::StrCat(
                                "model ", model.id,
                                ": the smooth-sensitivity mechanism does not apply: ", refusal)));
      }
      return mechanism;
    }
    case agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE:
      if (model.num_classes != 2) {
        return ModelRefusal(
            model, kReasonMechanismNotApplicable,
            absl::FailedPreconditionError(absl::StrCat(
                "model ", model.id, " has ", model.num_classes,
                " classes; the global Laplace mechanism releases binary labels; use "
                "PRIVACY_MECHANISM_REPORT_NOISY_ARGMAX")));
      }
      return mechanism;
    default:
      return mechanism;  // report-noisy-argmax: any classifier
  }
}

absl::StatusOr<PreparedRelease> PreparePrivatePrediction(const ModelRecord& model,
                                                         const agt::v1::Matrix& inputs,
                                                         double epsilon,
                                                         PrivacyMechanism requested,
                                                         const KeepGoing& keep_going,
                                                         WorkingMemory* memory) {
  if (!(std::isfinite(epsilon) && epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon: ", epsilon, " must be a finite number > 0 (epsilon per label)"));
  }
  if (inputs.rows() < 1 || inputs.rows() > kMaxPrivateRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("inputs.rows: ", inputs.rows(), " must be 1..", kMaxPrivateRows));
  }
  absl::StatusOr<int64_t> quanta = agt::ChargeQuanta(epsilon, inputs.rows());
  if (!quanta.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("epsilon: ", quanta.status().message()));
  }
  absl::StatusOr<PrivacyMechanism> mechanism = ResolveMechanism(model, requested);
  if (!mechanism.ok()) return mechanism.status();

  agt::v1::CertifyPredictionsRequest request;
  *request.mutable_inputs() = inputs;
  const bool smooth = *mechanism == agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY;
  // The global mechanisms need the nominal predictions only: certify against
  // no box (the same validation and forward pass, without the box passes).
  ModelRecord nominal_only;
  if (!smooth) {
    nominal_only.id = model.id;
    nominal_only.spec = model.spec;
    nominal_only.architecture = model.architecture;
    nominal_only.polynomial_degree = model.polynomial_degree;
    nominal_only.input_features = model.input_features;
    nominal_only.num_classes = model.num_classes;
    nominal_only.nominal = model.nominal;
  }
  // Rows are expanded and bounded in chunks that fit kCertifyWorkingBytes;
  // keep_going is asked before every chunk.
  CertifyOptions options;
  options.keep_going = keep_going;
  options.memory = memory;
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> certified =
      CertifyPredictions(smooth ? model : nominal_only, request, options);
  if (!certified.ok()) return certified.status();

  PreparedRelease out;
  out.mechanism = *mechanism;
  out.epsilon = epsilon;
  out.num_classes = model.num_classes;
  out.quanta = *quanta;
  out.n_star.assign(certified->points_size(), 0);
  for (const agt::v1::PointCertificate& p : certified->points()) {
    out.predicted.push_back(p.predicted_class());
  }
  if (smooth) {
    const std::vector<int> budgets = DistinctBudgets(model);
    absl::StatusOr<std::vector<int>> n_star =
        agt::NStar(budgets, StablePerDistinctBudget(model, budgets, *certified));
    if (!n_star.ok()) return n_star.status();
    out.n_star = *std::move(n_star);
  }
  return out;
}

agt::v1::PrivatePredictResponse ReleasePrivatePrediction(const PreparedRelease& prepared,
                                                         bool show_n_star,
                                                         agt::UniformSource& noise) {
  agt::v1::PrivatePredictResponse response;
  response.set_mechanism(prepared.mechanism);
  response.set_epsilon_per_label(prepared.epsilon);
  response.set_epsilon_spent(agt::EpsilonOfQuantaUp(prepared.quanta));
  response.set_quanta_charged(prepared.quanta);
  for (size_t i = 0; i < prepared.predicted.size(); ++i) {
    absl::StatusOr<agt::PrivateRelease> release;
    switch (prepared.mechanism) {
      case agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY:
        release = agt::SmoothSensitivityRelease(prepared.predicted[i], prepared.n_star[i],
                                                prepared.epsilon, noise);
        break;
      case agt::v1::PRIVACY_MECHANISM_GLOBAL_LAPLACE:
        release = agt::GlobalSensitivityRelease(prepared.predicted[i], prepared.epsilon, noise);
        break;
      default:
        release = agt::ReportNoisyArgmaxRelease(prepared.predicted[i], prepared.num_classes,
                                                prepared.epsilon, noise);
        break;
    }
    // Prepare checked every precondition of the releases; a failure here is
    // a bug, and releasing the nominal label instead would break the
    // guarantee, so it aborts.
    if (!release.ok()) {
      std::fprintf(stderr, "agt-server: private release failed after validation: %s\n",
                   std::string(release.status().message()).c_str());
      std::abort();
    }
    agt::v1::PrivateLabel* label = response.add_labels();
    label->set_label(release->label);
    label->set_n_star(show_n_star ? release->n_star : -1);
    label->set_sensitivity(show_n_star ? release->sensitivity : -1.0);
    label->set_noise_scale(show_n_star ? release->noise_scale : -1.0);
  }
  return response;
}

std::string PrivacyGuaranteeText(const ModelRecord& model, const PreparedRelease& prepared,
                                 bool show_n_star) {
  std::string text = absl::StrCat(
      "Each label is released by the ", MechanismName(prepared.mechanism), " mechanism and is ",
      prepared.epsilon,
      "-differentially private (delta = 0) with respect to the training data, for a party that "
      "sees only released labels. This request charged ",
      agt::EpsilonOfQuantaUp(prepared.quanta), " (", prepared.predicted.size(), " label(s) x ",
      prepared.epsilon, ", each rounded up to whole quanta of 2^-40) to the privacy budget of the "
      "model's training dataset. That budget is one per tenant and dataset: releases to any token "
      "of the tenant, from any model trained on the dataset or on one derived from it (a "
      "retraining after deletions), compose sequentially (their epsilons add) up to the server's "
      "total, so together they are (total spent)-differentially private with respect to one row "
      "of the dataset.");
  if (prepared.mechanism == agt::v1::PRIVACY_MECHANISM_SMOOTH_SENSITIVITY) {
    absl::StrAppend(
        &text,
        " The noise is Cauchy(6 SS / epsilon) with SS <= exp(-epsilon n* / 6) (Theorem 11), n* "
        "being the largest trained substitution budget at which the input is certified stable "
        "(0 if none: SS = 1). ",
        show_n_star ? "The n* used are reported per label. "
                    : "n* depends on the training data and is withheld. ",
        "The bound holds if the substitution boxes are sound: ", GuaranteeText(model, 0.0),
        " Substitution budgets count rows per batch; the neighbouring datasets of the guarantee "
        "differ in one row. As in the paper, n* is certified on the training set itself: that "
        "exp(-epsilon n* / 6) changes smoothly between neighbouring datasets is assumed, not "
        "certified.");
  } else {
    absl::StrAppend(&text,
                    " The mechanism uses no certificate: its sensitivity is the global bound 1 "
                    "of a released label, so it holds for any training.");
  }
  return text;
}

}  // namespace agt::server
