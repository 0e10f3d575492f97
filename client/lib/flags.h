// Command-line flags for agtctl (and any other tool over the client).
//
// Arguments are positionals and flags. A flag is `--name`, `--name=value` or
// `--name value`; a one-letter alias (`-h`, `-q`) works the same. Whether a
// flag takes a value comes from its spec, so `--wait FILE` is a boolean and a
// positional, never a value. `--` ends the flags: everything after it is
// positional. A flag given twice keeps its last value. Unknown flags, missing
// values and values given to boolean flags are InvalidArgument errors that
// name the flag.
//
// The number parsers check the whole text and a range, and name the flag,
// the value and the limit in their errors.
//
// Thread-safety: plain values and pure functions.
#ifndef AGT_CLIENT_LIB_FLAGS_H_
#define AGT_CLIENT_LIB_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::client {

struct FlagSpec {
  std::string name;  // without the dashes: "server"
  bool takes_value = false;
  char alias = 0;          // 'q' for -q; 0 = none
  std::string value_name;  // for help: "HOST:PORT"
  std::string help;        // one line
};

class ParsedArgs {
 public:
  const std::vector<std::string>& positionals() const { return positionals_; }
  // True when the flag was given (boolean or valued).
  bool Has(absl::string_view name) const { return flags_.count(std::string(name)) > 0; }
  // The value of a valued flag, if given.
  std::optional<std::string> Get(absl::string_view name) const;
  // The value, or `fallback` when the flag is absent.
  std::string GetOr(absl::string_view name, absl::string_view fallback) const;

 private:
  friend absl::StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                               const std::vector<FlagSpec>& specs,
                                               bool stop_at_first_positional);
  std::vector<std::string> positionals_;
  std::map<std::string, std::string> flags_;
};

// Parses `args` against `specs`. With stop_at_first_positional, parsing stops
// at the first positional and it and everything after it are returned as
// positionals unparsed (for a command's leading global flags).
absl::StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                      const std::vector<FlagSpec>& specs,
                                      bool stop_at_first_positional = false);

// "  --server HOST:PORT   help text" lines, aligned, one per spec.
std::string FormatFlagHelp(const std::vector<FlagSpec>& specs);

// Whole-text numbers within [min, max]; `what` names the flag or field.
absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text, int64_t min,
                                 int64_t max);
absl::StatusOr<uint64_t> ParseUint64(absl::string_view what, absl::string_view text);
// Finite values within [min, max].
absl::StatusOr<double> ParseDouble(absl::string_view what, absl::string_view text, double min,
                                   double max);
// "1,2,5" -> {1, 2, 5}; every element within [min, max]; at least one.
absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view what, absl::string_view text,
                                                  int64_t min, int64_t max);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_FLAGS_H_
