// Reading query inputs and training-job files on the client side.
//
// Inputs CSV: one row per point, comma-separated float64 values; an optional
// header row (the first non-blank line, when any of its fields is not a
// number); blank lines are skipped. Every row has the same number of columns.
// With `last_column_is_label` the last column is the label and the rest are
// the inputs. NaN and infinities are rejected. Errors name the source, the
// 1-based line and column, and the offending text.
//
// Job files: the proto3 JSON form of agt.v1.TrainingJobSpec (snake_case or
// lowerCamelCase field names, enums by name or number); unknown fields are
// errors.
//
// Thread-safety: pure functions.
#ifndef AGT_CLIENT_LIB_INPUTS_H_
#define AGT_CLIENT_LIB_INPUTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agt/v1/common.pb.h"
#include "agt/v1/training.pb.h"

namespace agt::client {

struct InputRows {
  agt::v1::Matrix inputs;           // rows x (columns - label)
  std::vector<double> labels;       // one per row with last_column_is_label; else empty
  std::vector<std::string> header;  // the header's fields, if the file had one
};

absl::StatusOr<InputRows> ParseInputsCsv(absl::string_view text, absl::string_view source,
                                         bool last_column_is_label);
// Reads the file and parses it; NotFound when it cannot be read.
absl::StatusOr<InputRows> ReadInputsCsv(const std::string& path, bool last_column_is_label);

absl::StatusOr<agt::v1::TrainingJobSpec> ParseTrainingJobSpec(absl::string_view json,
                                                              absl::string_view source);
absl::StatusOr<agt::v1::TrainingJobSpec> ReadTrainingJobSpec(const std::string& path);

// The whole file; NotFound naming the path when it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_INPUTS_H_
