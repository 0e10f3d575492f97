// A privacy budget (ARCHITECTURE.md section 3, "Private prediction"): the
// total epsilon that may be spent on releases about one body of training data
// and what has been spent, under sequential composition (epsilons add).
// Spending is all or nothing: a request that would overspend is refused and
// spends nothing.
//
// Exact accounting. Epsilons are kept as integer multiples of a fixed quantum
// q = 2^-40 (kEpsilonQuantum, about 9.09e-13), so that no charge can vanish in
// floating-point rounding (adding 1e-21 to 0.9999999999999999 in doubles
// leaves it unchanged; adding 1 quantum to an integer never does):
// - a charge of `labels` releases at epsilon each is labels x ceil(epsilon / q)
//   quanta: rounded UP, never down, with overflow checked;
// - a total is floor(total / q) quanta: rounded DOWN;
// - a spend fits iff spent + charge <= total, compared as integers;
// - an epsilon below q (which a charge could only represent by rounding it up
//   to a whole quantum, a silent overcharge of up to 2^-40 / epsilon times)
//   is refused, InvalidArgument naming epsilon and the quantum.
// Since q is a power of two, epsilon / q and quanta x q are exact in double
// arithmetic (a change of exponent), so the only roundings are the two
// stated above, and both are against the spender. Hence the epsilon charged
// is always >= the epsilon spent, and the sum of charges <= the total.
//
// Range: totals and epsilons up to kMaxEpsilon = 2^22 (about 4.2e6, far past
// any meaningful privacy level), so that every count fits in int64.
//
// Pure arithmetic, not thread-safe: the server holds the ledger, persists it
// (as quanta) and serialises spends on it.
#ifndef AGT_CORE_PRIVACY_BUDGET_H_
#define AGT_CORE_PRIVACY_BUDGET_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt {

// The ledger's unit of epsilon: 2^-40.
inline constexpr int kEpsilonQuantumExponent = -40;
inline constexpr double kEpsilonQuantum = 0x1p-40;
// The largest total or per-label epsilon the ledger takes: 2^22 (so that
// totals are < 2^62 quanta).
inline constexpr double kMaxEpsilon = 0x1p22;

// ceil(epsilon / q) x labels: the quanta charged for `labels` releases at
// `epsilon` each. InvalidArgument, naming epsilon and the quantum or limit,
// unless epsilon is finite and in [q, kMaxEpsilon] and labels >= 1, or if the
// product does not fit int64 (a charge no total can cover).
absl::StatusOr<int64_t> ChargeQuanta(double epsilon, int64_t labels);

// floor(total / q). InvalidArgument unless total is finite and in
// [0, kMaxEpsilon].
absl::StatusOr<int64_t> TotalQuanta(double total_epsilon);

// quanta x q as a double, rounded up (for what was spent: never reported
// smaller than it is) or down (for what remains). Exact below 2^53 quanta
// (epsilon 8192). quanta >= 0.
double EpsilonOfQuantaUp(int64_t quanta);
double EpsilonOfQuantaDown(int64_t quanta);

class PrivacyBudget {
 public:
  // total_quanta, spent_quanta >= 0 (InvalidArgument otherwise). spent may
  // exceed total (an operator lowered the total): nothing remains then.
  static absl::StatusOr<PrivacyBudget> Create(int64_t total_quanta, int64_t spent_quanta = 0);

  // Spends `quanta` (>= 1, else InvalidArgument; see ChargeQuanta).
  // ResourceExhausted, and nothing spent, if spent + quanta would exceed
  // the total.
  absl::Status Spend(int64_t quanta);

  int64_t total_quanta() const { return total_; }
  int64_t spent_quanta() const { return spent_; }
  // total - spent, never negative.
  int64_t remaining_quanta() const { return spent_ >= total_ ? 0 : total_ - spent_; }

 private:
  PrivacyBudget(int64_t total, int64_t spent) : total_(total), spent_(spent) {}

  int64_t total_;
  int64_t spent_;
};

}  // namespace agt

#endif  // AGT_CORE_PRIVACY_BUDGET_H_
