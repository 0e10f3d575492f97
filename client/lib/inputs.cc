#include "client/lib/inputs.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/decimal.h"
#include "google/protobuf/util/json_util.h"

namespace agt::client {
namespace {

std::vector<std::string> SplitFields(absl::string_view line) {
  std::vector<std::string> fields;
  for (absl::string_view field : absl::StrSplit(line, ',')) {
    fields.emplace_back(absl::StripAsciiWhitespace(field));
  }
  return fields;
}

bool ParsesAsNumber(const std::string& text) {
  double value = 0;
  return agt::ParseDecimal(text, &value) != agt::DecimalParse::kNotANumber;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<InputRows> ParseInputsCsv(absl::string_view text, absl::string_view source,
                                         bool last_column_is_label) {
  InputRows rows;
  std::vector<double> values;
  size_t columns = 0;
  int64_t num_rows = 0;
  int line_number = 0;
  bool seen_first = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);  // also drops a '\r' of CRLF files
    if (line.empty()) continue;
    std::vector<std::string> fields = SplitFields(line);
    if (!seen_first) {
      seen_first = true;
      bool header = false;
      for (const std::string& field : fields) header = header || !ParsesAsNumber(field);
      if (header) {
        rows.header = fields;
        columns = fields.size();
        continue;
      }
    }
    if (columns == 0) columns = fields.size();
    if (fields.size() != columns) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", fields.size(),
                                                     " columns, expected ", columns));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      double value = 0;
      const agt::DecimalParse parsed = agt::ParseDecimal(fields[c], &value);
      if (parsed == agt::DecimalParse::kNotANumber) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": column ", c + 1,
                                                       ": '", fields[c], "' is not a number"));
      }
      if (parsed != agt::DecimalParse::kOk) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": column ", c + 1,
                                                       ": ", agt::DecimalProblem(fields[c], parsed)));
      }
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": column ", c + 1,
                                                       ": '", fields[c], "' is not finite"));
      }
      values.push_back(value);
    }
    ++num_rows;
  }
  if (num_rows == 0) return absl::InvalidArgumentError(absl::StrCat(source, ": no data rows"));
  if (last_column_is_label && columns < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", columns,
                     " column(s); with labels the last column is the "
                     "label and at least one input column must precede it"));
  }
  const size_t input_columns = last_column_is_label ? columns - 1 : columns;
  rows.inputs.set_rows(num_rows);
  rows.inputs.set_cols(static_cast<int64_t>(input_columns));
  rows.inputs.mutable_values()->Reserve(static_cast<int>(num_rows * input_columns));
  for (int64_t r = 0; r < num_rows; ++r) {
    for (size_t c = 0; c < columns; ++c) {
      double value = values[r * columns + c];
      if (last_column_is_label && c + 1 == columns) {
        rows.labels.push_back(value);
      } else {
        rows.inputs.add_values(value);
      }
    }
  }
  return rows;
}

absl::StatusOr<InputRows> ReadInputsCsv(const std::string& path, bool last_column_is_label) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseInputsCsv(*text, path, last_column_is_label);
}

absl::StatusOr<agt::v1::TrainingJobSpec> ParseTrainingJobSpec(absl::string_view json,
                                                              absl::string_view source) {
  agt::v1::TrainingJobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  google::protobuf::util::Status status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a valid agt.v1.TrainingJobSpec: ",
                     std::string(status.message().data(), status.message().size())));
  }
  return spec;
}

absl::StatusOr<agt::v1::TrainingJobSpec> ReadTrainingJobSpec(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseTrainingJobSpec(*text, path);
}

}  // namespace agt::client
