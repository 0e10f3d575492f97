#include "core/privacy/budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace agt {

absl::StatusOr<PrivacyBudget> PrivacyBudget::Create(double total, double spent) {
  if (!(std::isfinite(total) && total >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("privacy budget total ", total, " must be finite and >= 0"));
  }
  PrivacyBudget budget(total, 0.0);
  if (!(std::isfinite(spent) && spent >= 0.0) || !budget.Fits(spent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("privacy budget spent ", spent, " must be finite, >= 0 and <= total ", total));
  }
  budget.spent_ = spent;
  return budget;
}

bool PrivacyBudget::Fits(double spent) const {
  return spent <= total_ + kRelativeTolerance * std::max(1.0, total_);
}

absl::Status PrivacyBudget::Spend(double epsilon) {
  if (!(std::isfinite(epsilon) && epsilon > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon ", epsilon, " must be positive and finite"));
  }
  const double after = spent_ + epsilon;
  if (!Fits(after)) {
    return absl::ResourceExhaustedError(absl::StrCat("epsilon ", epsilon, " exceeds the remaining ",
                                                     remaining(), " of the privacy budget ", total_,
                                                     " (spent ", spent_, ")"));
  }
  spent_ = after;
  return absl::OkStatus();
}

double PrivacyBudget::remaining() const { return std::max(0.0, total_ - spent_); }

}  // namespace agt
