// The store's SQLite schema and its migrations, and the per-connection
// settings every Store connection uses.
//
// Migrations are an ordered list of steps, each taking the file from version
// v-1 to v (PRAGMA user_version). Each step runs in its own write transaction
// that also re-reads the version, so two processes opening the same new file
// at once apply every step exactly once, and a failed step leaves the file at
// the version before it. A file whose version is newer than the newest step
// is refused (FailedPrecondition) and left untouched. A step is SQL, a data
// rewrite, or both: version 4 rewrites stored job specs with a legacy
// bound_method into the current form (agt.v1.BoundMethod), the store's one
// use of the proto.
//
// Internal to server/store. Thread-safety: as SqliteDb (none).
#ifndef AGT_SERVER_STORE_SCHEMA_H_
#define AGT_SERVER_STORE_SCHEMA_H_

#include <string>

#include "absl/status/status.h"
#include "server/store/sqlite.h"

namespace agt::server {

// The "AGT1" stamp in PRAGMA application_id that marks a file as ours.
inline constexpr int kApplicationId = 0x41475431;

// The version the newest migration step produces.
int LatestSchemaVersion();

// busy_timeout, WAL journal, foreign keys, synchronous=FULL. Fails if the
// file cannot be put in WAL mode (e.g. it is not an SQLite database).
absl::Status ConfigureConnection(SqliteDb& db, const std::string& path);

// Schema 4's data step (both engines): stored job and model specs with a
// legacy bound_method rewritten into the current form.
absl::Status UpgradeStoredSpecs(SqlDb& db);

// Brings the schema up to LatestSchemaVersion(); see the file comment.
// FailedPrecondition for a newer version or for another application's file.
absl::Status MigrateSchema(SqliteDb& db, const std::string& path);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SCHEMA_H_
