// Text and JSON renderings of API messages for people and scripts.
//
// Tables are plain text: columns separated by two spaces, numbers right-aligned,
// text left-aligned, no trailing blanks. JSON is the proto3 JSON mapping with
// the .proto field names (snake_case), enums as names and every field printed,
// so scripts see the same keys whether a value is zero or not; int64 values
// are JSON strings, as the mapping says.
//
// Thread-safety: pure functions and plain values.
#ifndef AGT_CLIENT_LIB_FORMAT_H_
#define AGT_CLIENT_LIB_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agt/v1/common.pb.h"
#include "agt/v1/datasets.pb.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/training.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace agt::client {

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // A row with fewer cells than headers is padded with empty cells; extra
  // cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t num_rows() const { return rows_.size(); }
  // Header line, then one line per row, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// True for text that reads as a number ("12", "-0.5", "1e-3", "inf").
bool LooksNumeric(const std::string& text);

// "0s", "42s", "3m05s", "2h07m", "3d04h"; negative or non-finite = "?".
std::string FormatDuration(double seconds);
// Shortest of %g with `digits` significant digits ("0.1235", "1.5e-07").
std::string FormatNumber(double value, int digits = 4);
// "512 B", "1.5 KiB", "3.2 MiB", "1.0 GiB".
std::string FormatBytes(int64_t bytes);
// "2024-05-01 12:00:03 UTC"; "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& time);

// "QUEUED", "RUNNING", ... (the enum name without its prefix).
std::string JobStateName(agt::v1::JobState state);
// Parses "queued" / "QUEUED" / "JOB_STATE_QUEUED".
absl::StatusOr<agt::v1::JobState> ParseJobState(const std::string& text);
std::string LossName(agt::v1::Loss loss);
std::string PerturbationName(agt::v1::PerturbationKind kind);
// The enum names without prefix, lower case: "ibp", "interval_exact" (a legacy
// value), "rump", "nearest".
std::string BoundMethodName(agt::v1::BoundMethod method);
std::string IntervalProductName(agt::v1::IntervalProduct product);
std::string RoundingModeName(agt::v1::RoundingMode mode);
// How bounds are computed, defaults and legacy bound methods resolved as the
// server does: "ibp, interval product exact, rounding nearest".
std::string DescribeBounds(agt::v1::BoundMethod method, agt::v1::IntervalProduct product,
                           agt::v1::RoundingMode rounding);
// "n=5"; poisoning with a label budget: "n=5,label_n=2".
std::string BudgetLabel(const agt::v1::Budget& budget);
// "dense 10->16, relu, dense 16->1"; hidden widths when no layers are given.
std::string DescribeArchitecture(const agt::v1::ModelArchitecture& architecture,
                                 const std::vector<int>& hidden_widths = {});

// One line of training progress (no newline):
// "[########------------]  40%  iter 160/400  epoch 2/4  loss 0.4312  ETA 1m12s
//  width n=1 0.0123 n=2 0.0251". `bar_width` 0 leaves the bar out; widths are
// paired with `budget_labels` in order (extra widths get "#i"). The epoch is
// shown 1-based (JobProgress.epoch is the 0-based epoch of the last step) and
// out of `epochs` when that is > 0; before the first step it is left out.
std::string FormatProgressLine(const agt::v1::JobProgress& progress,
                               const std::vector<std::string>& budget_labels, int bar_width,
                               int epochs = 0);

// FormatProgressLine fitted to a terminal of `columns` columns (redrawn in
// place, so it must never wrap): at most columns - 1 characters. The bar
// (24 wide when there is room) shrinks first, down to none; then the line is
// cut at the last whole field that fits. columns <= 0: unknown, the full
// line with a 24-wide bar.
std::string FitProgressLine(const agt::v1::JobProgress& progress,
                            const std::vector<std::string>& budget_labels, int epochs,
                            int columns);

// Breaks `text` into lines of at most `width` characters at spaces (a longer
// word stays whole on its own line); each line ends in '\n'.
std::string WrapText(const std::string& text, size_t width);

// The proto3 JSON of a message as described above, indented, with a final
// newline.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_FORMAT_H_
