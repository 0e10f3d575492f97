// Fast JSON text to and from nlohmann::json, for the large files of the tool
// (a 784-128-10 run writes a 19 MB results file and reads a 2 MB init.json;
// issue 20: the whole process, not only the training).
//
// ParseJson gives the same value as nlohmann::json::parse on every input: a
// single pass reads the common subset (ASCII strings with the simple escapes,
// numbers, literals, nesting up to kMaxFastDepth) and builds the DOM directly,
// numbers read with std::from_chars (correctly rounded, as nlohmann's strtod:
// the same double); anything else (\u escapes, bytes >= 0x80, a syntax error)
// is handed to nlohmann::json::parse, so errors say what nlohmann says (line
// and column).
//
// SerializeJson writes what value.dump(indent, ' ', false, replace) writes,
// byte for byte, except that doubles are written with the shortest digits
// that read back as the same double (std::to_chars; nlohmann's Grisu2 is not
// always shortest) in nlohmann's layout ("0.5", "1.0", "1e-05", "1.5e+300",
// "-0.0"; non-finite as null). Every double reads back bit for bit.
// Thread-safety: both are pure functions of their arguments.
#ifndef AGT_CORE_CLI_JSON_IO_H_
#define AGT_CORE_CLI_JSON_IO_H_

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::cli {

// Nesting deeper than this goes to nlohmann's parser (which has no limit).
inline constexpr int kMaxFastDepth = 256;

// Parses the whole of `text`. A syntax error is InvalidArgument with
// nlohmann's message ("parse error at line L, column C: ..."), as is a number
// too large for a double ("number overflow parsing '1e400'").
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text);

// The shortest decimal that reads back as `value` (finite), in nlohmann's
// layout; writes at most 32 characters at `out` and returns the end.
char* FormatJsonDouble(double value, char* out);

// value.dump(indent, ' ', false, error_handler_t::replace) but for doubles as
// above. indent < 0: compact.
std::string SerializeJson(const nlohmann::json& value, int indent);
// The same written to `file` through a buffer; false on a write error
// (errno says why). threads > 1: a value with at least kParallelScalars
// elements in arrays of scalars has those arrays formatted on that many
// threads first (the same bytes).
inline constexpr size_t kParallelScalars = 65536;
bool WriteJson(const nlohmann::json& value, int indent, std::FILE* file, int threads = 1);

}  // namespace agt::cli

#endif  // AGT_CORE_CLI_JSON_IO_H_
