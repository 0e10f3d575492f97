// The PostgreSQL engine behind the store's SQL seam (server/store/sql.h), on
// libpq: one connection, statements prepared on the server once per text
// (the store's ?N parameters rewritten to $N), parameters sent as text with
// their types inferred by the server (blobs as binary BYTEA), results read in
// binary. PostgreSQL errors become absl::Status values that carry its message
// and SQLSTATE: a lost connection (class 08) -> Unavailable, data corruption
// (XX001, XX002) -> DataLoss, insufficient resources and program limits
// (classes 53, 54) -> ResourceExhausted, anything else -> Internal.
//
// Transactions: kWrite takes one transaction-scoped advisory lock
// (pg_advisory_xact_lock(kWriteLockKey)) right after BEGIN, so kWrite
// transactions exclude each other across every process and replica on the
// database, as SQLite's BEGIN IMMEDIATE does on a file; kRowLocks is a plain
// READ COMMITTED transaction whose statements lock the rows they need;
// kRead is REPEATABLE READ, READ ONLY (one snapshot).
//
// Internal to server/store. Thread-safety: none (see sql.h).
#ifndef AGT_SERVER_STORE_POSTGRES_H_
#define AGT_SERVER_STORE_POSTGRES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/sql.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace agt::server {

// The advisory lock key of kWrite transactions ("AGTW").
inline constexpr int64_t kWriteLockKey = 0x41475457;

// The absl::Status for a failed result (or connection when `result` is
// null): "postgres: <context>: <message> (SQLSTATE <code>)".
absl::Status PostgresStatus(PGconn* conn, PGresult* result, absl::string_view context);

// `sql` with every ?N parameter written $N; text inside single quotes is
// left as it is.
std::string PostgresParameters(absl::string_view sql);

class PostgresStatement;

class PostgresDb final : public SqlDb {
 public:
  // Connects with a libpq URI ("postgresql://user@host:port/db?...").
  // Unavailable when the server cannot be reached; the message never
  // contains the URI's password.
  static absl::StatusOr<std::unique_ptr<PostgresDb>> Open(const std::string& uri);
  ~PostgresDb() override;
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;

  absl::Status Exec(const std::string& sql) override;
  absl::StatusOr<Statement> Prepare(const std::string& sql) override;
  int64_t Changes() const override { return changes_; }
  // PostgreSQL's limit on one field value (1 GB).
  int64_t MaxBlobBytes() override { return int64_t{1} << 30; }
  absl::Status Begin(TxnMode mode) override;
  absl::Status Commit() override;
  void Rollback() override;
  absl::string_view RowLockClause() const override { return " FOR UPDATE"; }
  absl::string_view SkipLockedClause() const override { return " FOR UPDATE SKIP LOCKED"; }

  PGconn* handle() const { return conn_; }
  // Set by a statement that finished a command (its row count).
  void set_changes(int64_t changes) { changes_ = changes; }

 private:
  explicit PostgresDb(PGconn* conn);

  PGconn* conn_;
  int64_t changes_ = 0;
  bool in_transaction_ = false;
  int next_statement_ = 0;
  std::unordered_map<std::string, std::unique_ptr<PostgresStatement>> cache_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_POSTGRES_H_
