// The PostgreSQL store: several agt-server processes (API replicas and
// workers) on one database. Store::Open picks it for a --db that is a libpq
// URI, "postgresql://user@host:port/db". The SQL is SqlStore's (sql_store.h)
// over a PostgresDb (postgres.h): the same operations with the same
// guarantees as SQLite's, kWrite transactions excluding each other across
// replicas by an advisory lock, the job queue claimed FOR UPDATE SKIP LOCKED.
//
// Schema: the same tables and the same numbered migrations as SQLite
// (schema.h), in PostgreSQL's types (BIGINT, DOUBLE PRECISION, BYTEA for
// blobs, identity columns for the creation order), and the same data steps
// (4: legacy bound methods; 6: the privacy ledger per root dataset). The
// version is the largest row of table agt_schema_migrations (one row per
// applied step, with the time it was applied) instead of PRAGMA
// user_version. Each step is one transaction under the write lock, so
// replicas starting together apply every step once.
#ifndef AGT_SERVER_STORE_POSTGRES_STORE_H_
#define AGT_SERVER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace agt::server {

// Connects to `uri` and migrates the schema (in the connection's current
// schema, normally "public"). Unavailable when the server cannot be reached;
// FailedPrecondition for a database of a newer server, or one holding tables
// but no agt_schema_migrations (another application's), left untouched.
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& uri);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_POSTGRES_STORE_H_
