// Output helpers shared by agtctl's commands: key/value blocks, the live
// progress display of a training job, and record summaries.
#ifndef AGT_CLIENT_AGTCTL_OUTPUT_H_
#define AGT_CLIENT_AGTCTL_OUTPUT_H_

#include <chrono>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "agt/v1/datasets.pb.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/training.pb.h"

namespace agt::client {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// "key:   value" lines with the values aligned.
void PrintKeyValues(std::ostream& out, const KeyValues& rows);

KeyValues DatasetKeyValues(const agt::v1::Dataset& dataset);
// A job's fields; its warnings (vacuous certificates) come right after the
// state, one "WARNING" row each.
KeyValues JobKeyValues(const agt::v1::Job& job);
// One "WARNING" row per warning.
void AddWarningRows(const google::protobuf::RepeatedPtrField<agt::v1::JobWarning>& warnings,
                    KeyValues* rows);
// "agtctl: WARNING: <what>: <message>" per warning, on `err` (so that a
// script reading stdout, --json or --quiet, still shows them to a person).
void PrintWarnings(std::ostream& err, const std::string& what,
                   const google::protobuf::RepeatedPtrField<agt::v1::JobWarning>& warnings);
std::vector<std::string> BudgetLabels(
    const google::protobuf::RepeatedPtrField<agt::v1::Budget>& budgets);

// An error as agtctl --json prints it on stdout (client/README.md, "Errors
// as JSON"): {"error": {"code": "NOT_FOUND", "grpc_code": 5, "message",
// "exit_code", "reason", "domain", "metadata": {...}, "field_violations":
// [{"field", "description"}], "quota_violations": [{"subject",
// "description"}]}} plus "request_id" when `request_id` is not empty. Every
// key is always present; reason and domain are "" and the lists empty for an
// error without server details (a local usage error, an unreachable server).
std::string ErrorJson(const absl::Status& status, int exit_code, const std::string& request_id);

// The server's details of an error for people, one indented line each
// ("  reason: ...", "  field: ...", "  quota: ..."); "" when it has none.
// A description is shown only where it says more than the message.
std::string ErrorDetailLines(const absl::Status& status);

// The width of the terminal on stderr (TIOCGWINSZ, else $COLUMNS); 0 when
// unknown.
int StderrColumns();

// Shows a job's progress on a terminal: on a TTY one line redrawn in place,
// fitted to the terminal's width (it never wraps);
// otherwise (logs, pipes) a line whenever the state changes and at most one
// progress line every `log_interval`. Not thread-safe.
class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& err, bool tty, std::string job_id,
                  std::vector<std::string> budget_labels, int epochs,
                  std::chrono::seconds log_interval = std::chrono::seconds(2));
  void Update(const agt::v1::JobEvent& event);
  // Ends the redrawn line (TTY) so later output starts on a fresh line.
  void Finish();

 private:
  std::ostream& err_;
  bool tty_;
  std::string job_id_;
  std::vector<std::string> budget_labels_;
  int epochs_;
  std::chrono::seconds log_interval_;
  agt::v1::JobState last_state_ = agt::v1::JOB_STATE_UNSPECIFIED;
  int64_t last_logged_iteration_ = -1;
  std::chrono::steady_clock::time_point last_log_{};
  bool line_open_ = false;
};

}  // namespace agt::client

#endif  // AGT_CLIENT_AGTCTL_OUTPUT_H_
