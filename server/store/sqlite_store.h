// The SQLite store: one file in WAL mode, the embedded default (Store::Open
// picks it for a --db that is a file path). The SQL is SqlStore's
// (sql_store.h) over an SqliteDb (sqlite.h); the schema version is PRAGMA
// user_version (schema.h). Writes take the file's write lock (BEGIN
// IMMEDIATE), so several processes may share a file safely; one server per
// file is still the service layer's rule (server/service/database_lock.h),
// because the job runner's restart recovery presumes it.
#ifndef AGT_SERVER_STORE_SQLITE_STORE_H_
#define AGT_SERVER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace agt::server {

// Opens (creating if needed) the SQLite file at `path`, enables WAL, and
// migrates the schema to the current version. A file written by a newer
// server (higher user_version) is FailedPrecondition and is left untouched,
// as is an SQLite file of another application (tables but no version).
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SQLITE_STORE_H_
