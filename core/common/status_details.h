// Structured error information carried on an absl::Status as payloads, so
// that code far from the API (the core, the domain, the store) can say which
// request field was wrong, why a call was refused and which limit refused it,
// and the service layer can turn that into google.rpc details once
// (server/service/status_mapping.cc) without parsing messages.
//
// Four kinds of detail, each optional and each kept when the status is
// copied (absl payloads travel with the status):
//   - a reason: a stable UPPER_SNAKE_CASE word from the list below (ErrorInfo.reason);
//   - a field: the request field path the error is about, "spec.batch_size",
//     "inputs.rows[3]" (BadRequest.FieldViolation.field);
//   - a quota subject: what the refusing limit is about, "tenant:alice",
//     "tenant:alice/dataset:ds-x", "server" (QuotaFailure.Violation.subject);
//   - metadata: ids the error is about, "model_id" -> "m-..." (ErrorInfo.metadata).
// The status's message stays the human description of all of them.
//
// A helper given an OK status returns it unchanged (absl drops payloads on
// OK). Building a new status from another one's message loses the payloads:
// use WithMessage to reword a status and keep them.
//
// Thread-safety: pure functions on values.
#ifndef AGT_CORE_COMMON_STATUS_DETAILS_H_
#define AGT_CORE_COMMON_STATUS_DETAILS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace agt {

// The reasons the service uses (ErrorInfo.reason, domain "agt.v1"). A code
// without a specific reason gets its default (the code's name; see
// DefaultReason). Documented in proto/README.md; never renamed.
inline constexpr char kReasonInvalidField[] = "INVALID_FIELD";
inline constexpr char kReasonIdempotencyConflict[] = "IDEMPOTENCY_CONFLICT";
inline constexpr char kReasonNotFound[] = "NOT_FOUND";
inline constexpr char kReasonAlreadyExists[] = "ALREADY_EXISTS";
inline constexpr char kReasonUnauthenticated[] = "UNAUTHENTICATED";
inline constexpr char kReasonPermissionDenied[] = "PERMISSION_DENIED";
inline constexpr char kReasonPrivacyBudgetExhausted[] = "PRIVACY_BUDGET_EXHAUSTED";
inline constexpr char kReasonJobMemoryLimit[] = "JOB_MEMORY_LIMIT";
inline constexpr char kReasonCheckpointSizeLimit[] = "CHECKPOINT_SIZE_LIMIT";
inline constexpr char kReasonTenantJobLimit[] = "TENANT_JOB_LIMIT";
inline constexpr char kReasonUploadLimit[] = "UPLOAD_LIMIT";
inline constexpr char kReasonDatasetSizeLimit[] = "DATASET_SIZE_LIMIT";
inline constexpr char kReasonWatchLimit[] = "WATCH_LIMIT";
inline constexpr char kReasonRequestMemoryLimit[] = "REQUEST_MEMORY_LIMIT";
inline constexpr char kReasonServerOutOfMemory[] = "SERVER_OUT_OF_MEMORY";
inline constexpr char kReasonUploadStalled[] = "UPLOAD_STALLED";
inline constexpr char kReasonDatasetInUse[] = "DATASET_IN_USE";
inline constexpr char kReasonJobState[] = "JOB_STATE";
inline constexpr char kReasonModelExists[] = "MODEL_EXISTS";
inline constexpr char kReasonRetrainingInProgress[] = "RETRAINING_IN_PROGRESS";
inline constexpr char kReasonPrivacyLineage[] = "PRIVACY_LINEAGE";
inline constexpr char kReasonTrainingDataDeleted[] = "TRAINING_DATA_DELETED";
inline constexpr char kReasonModelKindNotSupported[] = "MODEL_KIND_NOT_SUPPORTED";
inline constexpr char kReasonMechanismNotApplicable[] = "MECHANISM_NOT_APPLICABLE";

// Sets (replaces) the reason.
absl::Status WithReason(absl::Status status, absl::string_view reason);
// Sets (replaces) the request field the error is about.
absl::Status WithField(absl::Status status, absl::string_view field);
// Sets (replaces) the subject of the limit that refused the call.
absl::Status WithQuota(absl::Status status, absl::string_view subject);
// Sets (replaces) one metadata entry; `key` is lower_snake_case.
absl::Status WithMetadata(absl::Status status, absl::string_view key, absl::string_view value);
// The same code and payloads with a new message.
absl::Status WithMessage(const absl::Status& status, absl::string_view message);

// What a status carries; empty strings where a detail is absent.
struct StatusDetails {
  std::string reason;
  std::string field;
  std::string quota_subject;
  std::vector<std::pair<std::string, std::string>> metadata;  // sorted by key
};
StatusDetails DetailsOf(const absl::Status& status);

// The reason of a status without one: its code's name ("NOT_FOUND",
// "RESOURCE_EXHAUSTED", ...), except INVALID_ARGUMENT with a field, which is
// INVALID_FIELD, and UNKNOWN, which is INTERNAL.
std::string DefaultReason(absl::StatusCode code, bool has_field);

}  // namespace agt

#endif  // AGT_CORE_COMMON_STATUS_DETAILS_H_
