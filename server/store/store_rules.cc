#include "server/store/store_rules.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/status_details.h"

namespace agt::server {
namespace {

bool IsLegalTransition(JobState from, JobState to) {
  switch (from) {
    case JobState::kQueued:
      return to == JobState::kRunning || to == JobState::kCancelled;
    case JobState::kRunning:
      return to == JobState::kQueued || IsFinal(to);
    default:
      return false;
  }
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

}  // namespace

absl::string_view StateName(JobState state) {
  const std::string_view name = JobStateName(state);
  return absl::string_view(name.data(), name.size());
}

// Ids in messages come from clients: quote, escape and shorten them.
std::string Quoted(absl::string_view id) {
  constexpr size_t kMaxShown = 80;
  std::string shown = absl::CHexEscape(id.substr(0, kMaxShown));
  if (id.size() > kMaxShown) shown += "...";
  return shown;
}

// The same message for an unknown id and another tenant's id, so that the
// answer says nothing about which ids exist.
// The id is also in the metadata as "<kind>_id" (dataset_id, job_id, model_id).
absl::Status NotFound(absl::string_view kind, absl::string_view id) {
  return WithMetadata(absl::NotFoundError(absl::StrCat(kind, " ", Quoted(id), " not found")),
                      absl::StrCat(kind, "_id"), id);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<int> NormalizePageSize(int page_size) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", page_size, " must be >= 0 (0 = the default ", kDefaultPageSize, ")"));
  }
  if (page_size == 0) return kDefaultPageSize;
  return std::min(page_size, kMaxPageSize);
}

absl::Status CheckTransition(const JobRecord& job, JobState to) {
  if (IsLegalTransition(job.state, to)) return absl::OkStatus();
  return WithMetadata(WithReason(absl::FailedPreconditionError(
                                     absl::StrCat("job ", job.id, " cannot go from ",
                                                  StateName(job.state), " to ", StateName(to))),
                                 kReasonJobState),
                      "job_id", job.id);
}

absl::Status RequireRunning(const JobRecord& job, absl::string_view action) {
  if (job.state == JobState::kRunning) return absl::OkStatus();
  return WithMetadata(WithReason(absl::FailedPreconditionError(
                                     absl::StrCat("job ", job.id, " is ", StateName(job.state),
                                                  "; ", action, " needs it RUNNING")),
                                 kReasonJobState),
                      "job_id", job.id);
}

// Adds which record a decoding error is about.
absl::Status InRecord(const absl::Status& status, absl::string_view what) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

// sample_shape is stored as text, "1,28,28"; '' (rows from before schema 9)
// is [num_features].
std::string SampleShapeToText(const std::vector<int>& shape) { return absl::StrJoin(shape, ","); }

std::vector<int> SampleShapeFromText(const std::string& text, int num_features) {
  std::vector<int> shape;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int d = 0;
    if (!absl::SimpleAtoi(part, &d)) return {num_features};
    shape.push_back(d);
  }
  if (shape.empty()) shape.push_back(num_features);
  return shape;
}

absl::Status CheckModelShapes(const ModelRecord& m) {
  for (size_t i = 0; i < m.boxes.size(); ++i) {
    const ParameterBox& box = m.boxes[i].box;
    if (box.lower.size() != m.nominal.size() || box.upper.size() != m.nominal.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model box ", i, " has ", box.lower.size(), " lower and ", box.upper.size(),
                       " upper bounds; the nominal parameters have ", m.nominal.size()));
    }
  }
  return absl::OkStatus();
}

// Fills a model field from the job, or checks that the caller's value agrees.
absl::Status FillFromJob(std::string* field, const std::string& from_job, absl::string_view name,
                         const JobRecord& job) {
  if (field->empty()) {
    *field = from_job;
    return absl::OkStatus();
  }
  if (*field != from_job) {
    return absl::InvalidArgumentError(absl::StrCat("model ", name, " \"", Quoted(*field),
                                                   "\" differs from job ", job.id, "'s \"",
                                                   Quoted(from_job), "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckPrivacyDebit(const PrivacyDebit& debit) {
  if (debit.releases < 1 || debit.quanta < 1 || debit.limit_quanta < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("privacy debit of ", debit.quanta, " quanta for ", debit.releases,
                     " releases against a limit of ", debit.limit_quanta,
                     " quanta: quanta and releases must be >= 1, the limit >= 0"));
  }
  return absl::OkStatus();
}

bool DebitFits(const PrivacySpendRecord& record, const PrivacyDebit& debit) {
  // spent <= limit - quanta; limit - quanta cannot overflow (limit >= 0,
  // quanta >= 1).
  return record.spent_quanta <= debit.limit_quanta - debit.quanta;
}

void ApplyDebit(const PrivacyDebit& debit, int64_t now_ms, PrivacySpendRecord* record) {
  record->spent_quanta += debit.quanta;  // fits: DebitFits
  record->releases = SaturatingAdd(record->releases, debit.releases);
  // The client's share never exceeds the budget's spent, which fits.
  record->client_spent_quanta += debit.quanta;
  record->client_releases = SaturatingAdd(record->client_releases, debit.releases);
  record->updated_ms = now_ms;
}

}  // namespace agt::server
