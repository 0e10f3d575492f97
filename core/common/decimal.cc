#include "core/common/decimal.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace agt {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// True when the mantissa of a syntactically valid literal has a nonzero
// digit (so a result of 0 is an underflow, not the number 0).
bool HasNonzeroMantissa(absl::string_view s) {
  for (char c : s) {
    if (c == 'e' || c == 'E') break;
    if (IsDigit(c) && c != '0') return true;
  }
  return false;
}

}  // namespace

DecimalParse ParseDecimal(absl::string_view text, double* value) {
  absl::string_view s = text;
  // from_chars refuses a leading '+' (spreadsheets write one): skip exactly
  // one, and only before a digit, '.', or a letter of inf/nan.
  if (s.size() > 1 && s[0] == '+' && s[1] != '+' && s[1] != '-') s.remove_prefix(1);
  if (s.empty()) return DecimalParse::kNotANumber;
  double parsed = 0.0;
  const char* end = s.data() + s.size();
  // chars_format::general: decimal fixed or scientific, never hexadecimal.
  const auto [ptr, ec] = std::from_chars(s.data(), end, parsed, std::chars_format::general);
  if (ptr != end) return DecimalParse::kNotANumber;
  if (ec == std::errc::invalid_argument) return DecimalParse::kNotANumber;
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports a range error for overflow and for results below the
    // normal range; strtod of the same (already validated, decimal) text
    // gives the correctly rounded value in both cases: inf, a subnormal, or 0.
    const std::string copy(s);
    parsed = std::strtod(copy.c_str(), nullptr);
    if (std::isinf(parsed)) return DecimalParse::kOverflow;
  } else if (ec != std::errc()) {
    return DecimalParse::kNotANumber;
  }
  if (parsed == 0.0 && HasNonzeroMantissa(s)) return DecimalParse::kUnderflow;
  *value = parsed;
  return DecimalParse::kOk;
}

std::string DecimalProblem(absl::string_view text, DecimalParse result) {
  const std::string quoted = absl::StrCat("\"", text, "\"");
  switch (result) {
    case DecimalParse::kOk:
      return "";
    case DecimalParse::kNotANumber:
      return absl::StrCat(quoted, " is not a number");
    case DecimalParse::kOverflow:
      return absl::StrCat(quoted, " is not finite (overflows a double)");
    case DecimalParse::kUnderflow:
      return absl::StrCat(quoted,
                          " is too small for a double (it is not 0 but would read as 0)");
  }
  return absl::StrCat(quoted, " is not a number");
}

bool ParseFiniteDecimal(absl::string_view text, double* value) {
  double parsed = 0.0;
  if (ParseDecimal(text, &parsed) != DecimalParse::kOk || !std::isfinite(parsed)) return false;
  *value = parsed;
  return true;
}

}  // namespace agt
