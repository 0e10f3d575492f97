#include "core/privacy/budget.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace agt {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

std::string QuantumText() {
  return absl::StrCat("the privacy ledger's quantum 2^", kEpsilonQuantumExponent, " = ",
                      kEpsilonQuantum);
}

// quanta as the nearest double, then nudged by one ulp in `toward` when that
// rounded past it.
double QuantaToDouble(int64_t quanta, bool up) {
  double d = static_cast<double>(quanta);
  // 2^63 is the only double above int64's range that a conversion can give.
  if (d >= 0x1p63) return up ? d : std::nextafter(d, 0.0);
  const int64_t back = static_cast<int64_t>(d);
  if (up && back < quanta) d = std::nextafter(d, std::numeric_limits<double>::infinity());
  if (!up && back > quanta) d = std::nextafter(d, 0.0);
  return d;
}

}  // namespace

absl::StatusOr<int64_t> ChargeQuanta(double epsilon, int64_t labels) {
  if (!(std::isfinite(epsilon) && epsilon > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon ", epsilon, " must be positive and finite"));
  }
  if (epsilon < kEpsilonQuantum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "epsilon ", epsilon, " is below ", QuantumText(),
        ": the ledger cannot charge it exactly (use an epsilon >= ", kEpsilonQuantum, ")"));
  }
  if (epsilon > kMaxEpsilon) {
    return absl::InvalidArgumentError(absl::StrCat(
        "epsilon ", epsilon, " exceeds the largest epsilon the privacy ledger takes, ", kMaxEpsilon));
  }
  if (labels < 1) {
    return absl::InvalidArgumentError(absl::StrCat("labels ", labels, " must be >= 1"));
  }
  // Exact: scaling by a power of two changes the exponent only; the result
  // is <= 2^62 and so is its ceiling.
  const int64_t per_label =
      static_cast<int64_t>(std::ceil(std::ldexp(epsilon, -kEpsilonQuantumExponent)));
  if (per_label > kInt64Max / labels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "epsilon ", epsilon, " x ", labels, " labels exceeds the largest charge the privacy "
        "ledger represents (", kInt64Max, " quanta of ", kEpsilonQuantum, ")"));
  }
  return per_label * labels;
}

absl::StatusOr<int64_t> TotalQuanta(double total_epsilon) {
  if (!(std::isfinite(total_epsilon) && total_epsilon >= 0.0 && total_epsilon <= kMaxEpsilon)) {
    return absl::InvalidArgumentError(absl::StrCat("privacy budget total ", total_epsilon,
                                                   " must be finite and in [0, ", kMaxEpsilon,
                                                   "]"));
  }
  return static_cast<int64_t>(std::floor(std::ldexp(total_epsilon, -kEpsilonQuantumExponent)));
}

double EpsilonOfQuantaUp(int64_t quanta) {
  return std::ldexp(QuantaToDouble(quanta, /*up=*/true), kEpsilonQuantumExponent);
}

double EpsilonOfQuantaDown(int64_t quanta) {
  return std::ldexp(QuantaToDouble(quanta, /*up=*/false), kEpsilonQuantumExponent);
}

absl::StatusOr<PrivacyBudget> PrivacyBudget::Create(int64_t total_quanta, int64_t spent_quanta) {
  if (total_quanta < 0 || spent_quanta < 0) {
    return absl::InvalidArgumentError(absl::StrCat("privacy budget total ", total_quanta,
                                                   " and spent ", spent_quanta,
                                                   " quanta must be >= 0"));
  }
  return PrivacyBudget(total_quanta, spent_quanta);
}

absl::Status PrivacyBudget::Spend(int64_t quanta) {
  if (quanta < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a privacy charge of ", quanta, " quanta must be >= 1"));
  }
  // remaining_quanta() >= 0, so this comparison cannot overflow.
  if (quanta > remaining_quanta()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a charge of ", quanta, " quanta (epsilon ", EpsilonOfQuantaUp(quanta),
        ") exceeds the remaining ", remaining_quanta(), " quanta (epsilon ",
        EpsilonOfQuantaDown(remaining_quanta()), ") of the privacy budget ", total_,
        " quanta (epsilon ", EpsilonOfQuantaDown(total_), ")"));
  }
  spent_ += quanta;
  return absl::OkStatus();
}

}  // namespace agt
