// A privacy budget (ARCHITECTURE.md section 3, "Private prediction"): the
// total epsilon a caller may spend on one model's releases and what has been
// spent, under sequential composition (epsilons add). Spending is all or
// nothing: a request that would overspend is refused and spends nothing.
//
// Pure arithmetic, not thread-safe: the server holds the ledger, persists it
// and serialises spends on it.
#ifndef AGT_CORE_PRIVACY_BUDGET_H_
#define AGT_CORE_PRIVACY_BUDGET_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt {

class PrivacyBudget {
 public:
  // A spend is accepted while spent + epsilon <= total * (1 + kRelativeTolerance)
  // (absolute 1e-12 for totals below 1), so that ten spends of 0.1 fit a total
  // of 1 despite rounding; no more slack than that.
  static constexpr double kRelativeTolerance = 1e-12;

  // InvalidArgument unless total is finite and >= 0, and spent (restored from
  // a ledger) is finite, >= 0 and within total plus the tolerance.
  static absl::StatusOr<PrivacyBudget> Create(double total, double spent = 0.0);

  // Spends epsilon (finite, > 0, else InvalidArgument). ResourceExhausted,
  // and nothing spent, if the total would be exceeded beyond the tolerance.
  absl::Status Spend(double epsilon);

  double total() const { return total_; }
  double spent() const { return spent_; }
  // total - spent, never negative.
  double remaining() const;

 private:
  PrivacyBudget(double total, double spent) : total_(total), spent_(spent) {}
  bool Fits(double spent) const;

  double total_;
  double spent_;
};

}  // namespace agt

#endif  // AGT_CORE_PRIVACY_BUDGET_H_
