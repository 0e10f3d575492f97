#include "client/lib/flags.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/common/decimal.h"

namespace agt::client {
namespace {

const FlagSpec* FindByName(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindByAlias(const std::vector<FlagSpec>& specs, char alias) {
  for (const FlagSpec& spec : specs) {
    if (spec.alias != 0 && spec.alias == alias) return &spec;
  }
  return nullptr;
}

}  // namespace

std::optional<std::string> ParsedArgs::Get(absl::string_view name) const {
  auto it = flags_.find(std::string(name));
  if (it == flags_.end()) return std::nullopt;
  return it->second;
}

std::string ParsedArgs::GetOr(absl::string_view name, absl::string_view fallback) const {
  std::optional<std::string> value = Get(name);
  return value ? *value : std::string(fallback);
}

absl::StatusOr<ParsedArgs> ParseFlags(const std::vector<std::string>& args,
                                      const std::vector<FlagSpec>& specs,
                                      bool stop_at_first_positional) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positionals_.insert(parsed.positionals_.end(), args.begin() + i + 1, args.end());
      break;
    }
    // "-" alone (stdin) and negative numbers are positionals.
    bool is_flag = arg.size() >= 2 && arg[0] == '-' &&
                   !(std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.');
    if (!is_flag) {
      if (stop_at_first_positional) {
        parsed.positionals_.insert(parsed.positionals_.end(), args.begin() + i, args.end());
        break;
      }
      parsed.positionals_.push_back(arg);
      continue;
    }
    const FlagSpec* spec = nullptr;
    std::optional<std::string> inline_value;
    if (arg[1] == '-') {
      absl::string_view body = absl::string_view(arg).substr(2);
      size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos) inline_value = std::string(body.substr(eq + 1));
      spec = FindByName(specs, name);
      if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    } else {
      if (arg.size() != 2) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", arg, " (long flags take two dashes)"));
      }
      spec = FindByAlias(specs, arg[1]);
      if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
    if (!spec->takes_value) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", spec->name, " takes no value"));
      }
      parsed.flags_[spec->name] = "";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "flag --", spec->name, " needs a value", spec->value_name.empty() ? "" : " (",
            spec->value_name, spec->value_name.empty() ? "" : ")"));
      }
      inline_value = args[++i];
    }
    parsed.flags_[spec->name] = *inline_value;
  }
  return parsed;
}

std::string FormatFlagHelp(const std::vector<FlagSpec>& specs) {
  std::vector<std::string> lefts;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string left =
        spec.alias != 0 ? absl::StrCat("-", std::string(1, spec.alias), ", ") : std::string("    ");
    absl::StrAppend(&left, "--", spec.name);
    if (spec.takes_value)
      absl::StrAppend(&left, " ", spec.value_name.empty() ? "VALUE" : spec.value_name);
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(&out, "  ", lefts[i], std::string(width - lefts[i].size() + 2, ' '),
                    specs[i].help, "\n");
  }
  return out;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text, int64_t min,
                                 int64_t max) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "' is not an integer"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", value, " is out of range [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<uint64_t> ParseUint64(absl::string_view what, absl::string_view text) {
  uint64_t value = 0;
  if (text.empty() || text[0] == '-' || !absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", text, "' is not a non-negative integer"));
  }
  return value;
}

absl::StatusOr<double> ParseDouble(absl::string_view what, absl::string_view text, double min,
                                   double max) {
  double value = 0;
  if (!agt::ParseFiniteDecimal(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "' is not a finite number"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", value, " is out of range [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view what, absl::string_view text,
                                                  int64_t min, int64_t max) {
  std::vector<int64_t> values;
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    absl::StatusOr<int64_t> value = ParseInt(what, absl::StripAsciiWhitespace(part), min, max);
    if (!value.ok()) return value.status();
    values.push_back(*value);
  }
  return values;
}

}  // namespace agt::client
