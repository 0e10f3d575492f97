#include "server/store/store.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "server/store/schema.h"
#include "server/store/sqlite_store.h"
#ifdef AGT_HAVE_POSTGRES
#include "server/store/postgres_store.h"
#endif

namespace agt::server {

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

std::string_view RequestKindName(RequestKind kind) {
  switch (kind) {
    case RequestKind::kUpload:
      return "upload";
    case RequestKind::kSubmitJob:
      return "submit_job";
    case RequestKind::kDeletion:
      return "deletion";
    case RequestKind::kPrivatePredict:
      return "private_predict";
  }
  return "unknown";
}

absl::Status ValidateRequestId(std::string_view id) {
  if (id.size() > kMaxRequestIdLength) {
    return WithField(absl::InvalidArgumentError(absl::StrCat("request_id has ", id.size(),
                                                             " characters; at most ",
                                                             kMaxRequestIdLength, " are allowed")),
                     "request_id");
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return WithField(absl::InvalidArgumentError(absl::StrCat(
                           "request_id: character ", i + 1, " is not one of A-Z a-z 0-9 . _ : -")),
                       "request_id");
    }
  }
  return absl::OkStatus();
}

bool Store::IsPostgresTarget(const std::string& target) {
  return absl::StartsWith(target, "postgresql://") || absl::StartsWith(target, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& target) {
  if (IsPostgresTarget(target)) {
#ifdef AGT_HAVE_POSTGRES
    absl::StatusOr<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(target);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(*std::move(store));
#else
    return absl::FailedPreconditionError(
        "this agt-server was built without PostgreSQL (libpq was not found at build time; "
        "install libpq-dev and rebuild with -DAGT_WITH_POSTGRES=ON), so a postgresql:// --db "
        "cannot be opened");
#endif
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(target);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

int Store::SchemaVersion() { return LatestSchemaVersion(); }

absl::StatusOr<DatasetRecord> Store::InsertDataset(DatasetRecord record, const agt::Dataset& data,
                                                   const DatasetInsertOptions& options) {
  return DoInsertDataset(std::move(record), data, nullptr, options);
}

absl::StatusOr<DatasetRecord> Store::InsertDataset(DatasetRecord record, agt::Dataset&& data,
                                                   const DatasetInsertOptions& options) {
  return DoInsertDataset(std::move(record), data, &data, options);
}

}  // namespace agt::server
