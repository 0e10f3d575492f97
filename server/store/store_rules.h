// The rules every Store implementation applies the same way, whatever its
// SQL (internal to server/store): the job state machine, the messages of
// NotFound and of refused transitions, page sizes, the sample-shape text
// column, the model checks of CompleteJob, and the arithmetic of a
// conditional privacy debit. Keeping them here is what makes the two
// implementations answer alike, message for message.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_STORE_STORE_RULES_H_
#define AGT_SERVER_STORE_STORE_RULES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace agt::server {

// JobStateName as the string_view type absl::StrCat takes (Debian's Abseil
// has its own string_view).
absl::string_view StateName(JobState state);

// Ids in messages come from clients: quoted, escaped and shortened.
std::string Quoted(absl::string_view id);

// The same message for an unknown id and another tenant's id, so that the
// answer says nothing about which ids exist. The id is also in the metadata
// as "<kind>_id" (dataset_id, job_id, model_id).
absl::Status NotFound(absl::string_view kind, absl::string_view id);

// Unix epoch milliseconds.
int64_t NowMs();

// page_size 0 -> kDefaultPageSize, capped at kMaxPageSize; < 0 InvalidArgument.
absl::StatusOr<int> NormalizePageSize(int page_size);

// The job state machine of store.h: OK or FailedPrecondition naming the job
// and both states.
absl::Status CheckTransition(const JobRecord& job, JobState to);
// FailedPrecondition unless the job is RUNNING, naming `action`.
absl::Status RequireRunning(const JobRecord& job, absl::string_view action);

// `status` with "<what>: " before its message (which record a decoding
// error is about).
absl::Status InRecord(const absl::Status& status, absl::string_view what);

// sample_shape is stored as text, "1,28,28"; '' (rows from before schema 9)
// is [num_features].
std::string SampleShapeToText(const std::vector<int>& shape);
std::vector<int> SampleShapeFromText(const std::string& text, int num_features);

// InvalidArgument unless every box has as many bounds as the nominal
// parameters.
absl::Status CheckModelShapes(const ModelRecord& m);
// Fills a model field from the job, or checks that the caller's value agrees
// (InvalidArgument naming both).
absl::Status FillFromJob(std::string* field, const std::string& from_job, absl::string_view name,
                         const JobRecord& job);

// ---- conditional privacy debits (Store::DebitPrivacyBudget)
// InvalidArgument for quanta or releases < 1 or a negative limit.
absl::Status CheckPrivacyDebit(const PrivacyDebit& debit);
// spent + quanta <= limit, without overflow.
bool DebitFits(const PrivacySpendRecord& record, const PrivacyDebit& debit);
// Adds the debit to the budget and to the client's share (the releases
// saturate: they are a count for reporting) and stamps updated_ms. Only
// after DebitFits.
void ApplyDebit(const PrivacyDebit& debit, int64_t now_ms, PrivacySpendRecord* record);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_STORE_RULES_H_
