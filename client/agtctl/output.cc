#include "client/agtctl/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/lib/error_details.h"
#include "client/lib/format.h"
#include "nlohmann/json.hpp"

namespace agt::client {

void PrintKeyValues(std::ostream& out, const KeyValues& rows) {
  size_t width = 0;
  for (const auto& [key, value] : rows) width = std::max(width, key.size());
  for (const auto& [key, value] : rows) {
    out << key << ":" << std::string(width - key.size() + 2, ' ') << value << "\n";
  }
}

KeyValues DatasetKeyValues(const agt::v1::Dataset& dataset) {
  std::string classes =
      dataset.num_classes() == 0 ? "0 (regression)" : absl::StrCat(dataset.num_classes());
  return {
      {"id", dataset.id()},
      {"name", dataset.name()},
      {"rows", absl::StrCat(dataset.num_rows())},
      {"features", absl::StrCat(dataset.num_features())},
      {"sample shape", absl::StrCat("[", absl::StrJoin(dataset.sample_shape(), ", "), "]")},
      {"classes", classes},
      {"size", FormatBytes(dataset.size_bytes())},
      {"sha256", dataset.checksum()},
      {"created", FormatTimestamp(dataset.created())},
  };
}

std::vector<std::string> BudgetLabels(
    const google::protobuf::RepeatedPtrField<agt::v1::Budget>& budgets) {
  std::vector<std::string> labels;
  for (const agt::v1::Budget& b : budgets) labels.push_back(BudgetLabel(b));
  return labels;
}

KeyValues JobKeyValues(const agt::v1::Job& job) {
  const agt::v1::TrainingJobSpec& spec = job.spec();
  std::vector<int> hidden(spec.hidden_widths().begin(), spec.hidden_widths().end());
  KeyValues rows = {
      {"id", job.id()},
      {"name", spec.name().empty() ? "-" : spec.name()},
      {"state", JobStateName(job.state())},
  };
  AddWarningRows(job.warnings(), &rows);
  KeyValues more = {
      {"dataset", spec.dataset_id()},
      {"model", DescribeArchitecture(spec.architecture(), hidden)},
      {"polynomial degree", absl::StrCat(std::max(spec.polynomial_degree(), 1))},
      {"loss", LossName(spec.loss())},
      {"perturbation", PerturbationName(spec.perturbation().kind())},
      {"budgets", absl::StrJoin(BudgetLabels(spec.budgets()), " ")},
      {"bounds", DescribeBounds(spec.bound_method(), spec.interval_product(), spec.rounding())},
      {"backend", job.backend().empty() ? "-" : job.backend()},
      {"batch size", absl::StrCat(spec.batch_size())},
      {"epochs", absl::StrCat(spec.epochs())},
      {"seed", absl::StrCat(spec.seed())},
      {"progress",
       FormatProgressLine(job.progress(), BudgetLabels(spec.budgets()), 0, spec.epochs())},
  };
  rows.insert(rows.end(), more.begin(), more.end());
  if (job.dropped_rows_per_epoch() > 0) {
    rows.push_back({"dropped rows/epoch", absl::StrCat(job.dropped_rows_per_epoch())});
  }
  if (!job.error().empty()) rows.push_back({"error", job.error()});
  if (!job.model_id().empty()) rows.push_back({"trained model", job.model_id()});
  rows.push_back({"created", FormatTimestamp(job.created())});
  rows.push_back({"started", FormatTimestamp(job.started())});
  rows.push_back({"finished", FormatTimestamp(job.finished())});
  return rows;
}

void AddWarningRows(const google::protobuf::RepeatedPtrField<agt::v1::JobWarning>& warnings,
                    KeyValues* rows) {
  for (const agt::v1::JobWarning& w : warnings) rows->push_back({"WARNING", w.message()});
}

void PrintWarnings(std::ostream& err, const std::string& what,
                   const google::protobuf::RepeatedPtrField<agt::v1::JobWarning>& warnings) {
  for (const agt::v1::JobWarning& w : warnings) {
    err << "agtctl: WARNING: " << what << ": " << w.message() << "\n";
  }
}

std::string ErrorJson(const absl::Status& status, int exit_code, const std::string& request_id) {
  const std::optional<ErrorDetails> details = ErrorDetailsOf(status);
  const ErrorDetails none;
  const ErrorDetails& d = details.has_value() ? *details : none;
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : d.metadata) metadata[key] = value;
  nlohmann::json fields = nlohmann::json::array();
  for (const FieldViolation& v : d.field_violations) {
    fields.push_back({{"field", v.field}, {"description", v.description}});
  }
  nlohmann::json quotas = nlohmann::json::array();
  for (const QuotaViolation& v : d.quota_violations) {
    quotas.push_back({{"subject", v.subject}, {"description", v.description}});
  }
  nlohmann::json error = {{"code", absl::StatusCodeToString(status.code())},
                          {"grpc_code", static_cast<int>(status.code())},
                          {"message", std::string(status.message())},
                          {"exit_code", exit_code},
                          {"reason", d.reason},
                          {"domain", d.domain},
                          {"metadata", std::move(metadata)},
                          {"field_violations", std::move(fields)},
                          {"quota_violations", std::move(quotas)}};
  if (!request_id.empty()) error["request_id"] = request_id;
  return nlohmann::json{{"error", std::move(error)}}.dump(2) + "\n";
}

std::string ErrorDetailLines(const absl::Status& status) {
  const std::optional<ErrorDetails> details = ErrorDetailsOf(status);
  if (!details.has_value()) return "";
  const auto said = [&status](const std::string& description) {
    return description.empty() || description == status.message() ? std::string()
                                                                   : ": " + description;
  };
  std::string out;
  if (!details->reason.empty()) absl::StrAppend(&out, "  reason: ", details->reason, "\n");
  for (const FieldViolation& v : details->field_violations) {
    absl::StrAppend(&out, "  field: ", v.field, said(v.description), "\n");
  }
  for (const QuotaViolation& v : details->quota_violations) {
    absl::StrAppend(&out, "  quota: ", v.subject, said(v.description), "\n");
  }
  return out;
}

int StderrColumns() {
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    int value = 0;
    if (absl::SimpleAtoi(columns, &value) && value > 0) return value;
  }
  return 0;
}

ProgressDisplay::ProgressDisplay(std::ostream& err, bool tty, std::string job_id,
                                 std::vector<std::string> budget_labels, int epochs,
                                 std::chrono::seconds log_interval)
    : err_(err),
      tty_(tty),
      job_id_(std::move(job_id)),
      budget_labels_(std::move(budget_labels)),
      epochs_(epochs),
      log_interval_(log_interval) {}

void ProgressDisplay::Update(const agt::v1::JobEvent& event) {
  const auto now = std::chrono::steady_clock::now();
  const bool state_changed = event.state() != last_state_;
  last_state_ = event.state();
  if (state_changed && event.state() == agt::v1::JOB_STATE_QUEUED) {
    if (line_open_) err_ << "\n";
    line_open_ = false;
    err_ << "job " << job_id_ << " queued\n";
  }
  if (state_changed && event.state() == agt::v1::JOB_STATE_RUNNING && !tty_) {
    err_ << "job " << job_id_ << " running\n";
  }
  // FAILED and CANCELLED keep the last progress shown; the caller reports them.
  if (event.state() != agt::v1::JOB_STATE_RUNNING &&
      event.state() != agt::v1::JOB_STATE_SUCCEEDED) {
    return;
  }
  const agt::v1::JobProgress& progress = event.progress();
  if (tty_) {
    // Re-read at every redraw: the terminal may have been resized.
    err_ << "\r\033[K" << FitProgressLine(progress, budget_labels_, epochs_, StderrColumns())
         << std::flush;
    line_open_ = true;
    return;
  }
  const bool final_step =
      progress.total_iterations() > 0 && progress.iteration() >= progress.total_iterations();
  // Iteration 0 (no step yet) says nothing the "running" line did not.
  const bool advanced = progress.iteration() > 0 && progress.iteration() != last_logged_iteration_;
  if (advanced && (last_logged_iteration_ < 0 || final_step || now - last_log_ >= log_interval_)) {
    err_ << FormatProgressLine(progress, budget_labels_, 24, epochs_) << "\n";
    last_logged_iteration_ = progress.iteration();
    last_log_ = now;
  }
}

void ProgressDisplay::Finish() {
  if (line_open_) err_ << "\n";
  line_open_ = false;
  err_.flush();
}

}  // namespace agt::client
