// Strict decimal numbers: the one reader for every number a user writes
// (CSV cells, command-line flags, input files), so that "what is a number"
// is the same in the core, the server and the client.
//
// Accepted: an optional sign ('+' or '-'), decimal digits with at most one
// '.', and an optional exponent ('e' or 'E', optional sign, digits); also
// "inf", "infinity" and "nan" in any case, returned as non-finite values for
// the caller to refuse where they make no sense. Refused: hexadecimal floats
// ("0x1p3"), surrounding spaces, empty text, anything left over. Values are
// correctly rounded to the nearest double. A literal whose magnitude is too
// small for any double (it would read as 0 while it is not 0, e.g. 1e-400) is
// refused as kUnderflow; subnormal results (3e-324) are kept. A literal too
// large for a double is kOverflow.
//
// Depends only on Abseil's string_view, so the client links it without the
// rest of the core.
#ifndef AGT_CORE_COMMON_DECIMAL_H_
#define AGT_CORE_COMMON_DECIMAL_H_

#include <string>

#include "absl/strings/string_view.h"

namespace agt {

enum class DecimalParse { kOk, kNotANumber, kOverflow, kUnderflow };

// Reads the whole of `text`; *value is written only when the answer is kOk.
DecimalParse ParseDecimal(absl::string_view text, double* value);

// Why `text` is not a number, for messages, e.g. "\"0x1p3\" is not a
// number" or "\"1e-400\" is too small for a double (it is not 0 but would
// read as 0)". Empty for kOk.
std::string DecimalProblem(absl::string_view text, DecimalParse result);

// ParseDecimal that also refuses non-finite values; for flags and fields
// where only a finite number makes sense. False leaves *value unchanged.
bool ParseFiniteDecimal(absl::string_view text, double* value);

}  // namespace agt

#endif  // AGT_CORE_COMMON_DECIMAL_H_
