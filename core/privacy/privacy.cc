#include "core/privacy/privacy.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/certify/certify.h"

namespace agt {
namespace {

absl::Status CheckEpsilon(double epsilon) {
  if (!(std::isfinite(epsilon) && epsilon > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon ", epsilon, " must be positive and finite"));
  }
  return absl::OkStatus();
}

}  // namespace

double SmoothSensitivityBound(int n_star, double epsilon) {
  const double beta = epsilon / 6.0;  // the largest beta footnote 4 allows
  return std::exp(-beta * static_cast<double>(n_star));
}

absl::StatusOr<std::vector<int>> NStar(const std::vector<int>& budgets_sorted,
                                       const std::vector<std::vector<bool>>& stable_per_budget) {
  for (size_t j = 0; j < budgets_sorted.size(); ++j) {
    if (budgets_sorted[j] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("budget ", budgets_sorted[j], " at index ", j, " is negative"));
    }
    if (j > 0 && budgets_sorted[j] <= budgets_sorted[j - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("budgets must be strictly increasing: budget ",
                                                     budgets_sorted[j], " at index ", j,
                                                     " follows ", budgets_sorted[j - 1]));
    }
  }
  if (stable_per_budget.size() != budgets_sorted.size()) {
    return absl::InvalidArgumentError(absl::StrCat("stability table has ", stable_per_budget.size(),
                                                   " budgets, expected ", budgets_sorted.size()));
  }
  for (size_t j = 1; j < stable_per_budget.size(); ++j) {
    if (stable_per_budget[j].size() != stable_per_budget[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stability flags at budget index ", j, " cover ", stable_per_budget[j].size(),
          " inputs, expected ", stable_per_budget[0].size()));
    }
  }
  std::vector<int> n_star = LargestStableBudget(stable_per_budget);
  for (int& n : n_star) n = n < 0 ? 0 : budgets_sorted[n];
  return n_star;
}

absl::StatusOr<PrivateRelease> SmoothSensitivityRelease(double f_label, int n_star, double epsilon,
                                                        UniformSource& noise) {
  if (f_label != 0.0 && f_label != 1.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "f ", f_label, " must be the predicted label 0 or 1 (Theorem 11 bounds label changes)"));
  }
  if (n_star < 0) {
    return absl::InvalidArgumentError(absl::StrCat("n_star ", n_star, " must be >= 0"));
  }
  if (absl::Status s = CheckEpsilon(epsilon); !s.ok()) return s;
  PrivateRelease out;
  out.mechanism = PrivacyMechanism::kSmoothSensitivityCauchy;
  out.sensitivity = SmoothSensitivityBound(n_star, epsilon);
  out.noise_scale = 6.0 * out.sensitivity / epsilon;  // eq. 59
  out.n_star = n_star;
  out.epsilon = epsilon;
  out.label = f_label + noise.Cauchy(out.noise_scale) > 0.5 ? 1 : 0;
  return out;
}

absl::StatusOr<PrivateRelease> GlobalSensitivityRelease(double f, double epsilon,
                                                        UniformSource& noise) {
  if (!(f >= 0.0 && f <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("f ", f, " must lie in [0, 1]"));
  }
  if (absl::Status s = CheckEpsilon(epsilon); !s.ok()) return s;
  PrivateRelease out;
  out.mechanism = PrivacyMechanism::kGlobalSensitivityLaplace;
  out.sensitivity = 1.0;
  out.noise_scale = 1.0 / epsilon;
  out.n_star = 0;
  out.epsilon = epsilon;
  out.label = f + noise.Laplace(out.noise_scale) > 0.5 ? 1 : 0;
  return out;
}

absl::StatusOr<PrivateRelease> ReportNoisyArgmaxRelease(int predicted_class, int num_classes,
                                                        double epsilon, UniformSource& noise) {
  if (num_classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes ", num_classes, " must be at least 2"));
  }
  if (predicted_class < 0 || predicted_class >= num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("predicted_class ", predicted_class, " must lie in [0, ", num_classes, ")"));
  }
  if (absl::Status s = CheckEpsilon(epsilon); !s.ok()) return s;
  PrivateRelease out;
  out.mechanism = PrivacyMechanism::kReportNoisyArgmaxLaplace;
  out.sensitivity = 1.0;            // l-infinity, of a one-hot vector
  out.noise_scale = 2.0 / epsilon;  // +inf for epsilon below about 1e-308
  out.n_star = 0;
  out.epsilon = epsilon;
  // The arg-max of e_c + Laplace(2 / epsilon) noise is the arg-max of the
  // same scores times epsilon / 2 > 0, i.e. of (epsilon / 2) e_c plus
  // Laplace(1) noise: the same release, with nothing that can overflow.
  // Every class draws its noise, the winner included, so the number and
  // order of draws never depend on the data.
  const double lead = 0.5 * epsilon;
  double best = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < num_classes; ++k) {
    const double score = (k == predicted_class ? lead : 0.0) + noise.Laplace(1.0);
    if (score > best) {  // strict: a tie keeps the lower index
      best = score;
      out.label = k;
    }
  }
  return out;
}

}  // namespace agt
