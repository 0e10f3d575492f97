// The SQLite engine behind the store's SQL seam (server/store/sql.h): one
// connection with a cache of prepared statements, SQLite result codes turned
// into absl::Status values that carry SQLite's message.
//
// Internal to server/store: other layers use store.h, never SQL.
//
// Thread-safety: none (see sql.h).
#ifndef AGT_SERVER_STORE_SQLITE_H_
#define AGT_SERVER_STORE_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/sql.h"

struct sqlite3;

namespace agt::server {

// The absl::Status for a SQLite result code: BUSY/LOCKED -> Unavailable,
// CORRUPT/NOTADB -> DataLoss, FULL -> ResourceExhausted, CANTOPEN/READONLY/
// PERM -> FailedPrecondition, anything else -> Internal. The message is
// "sqlite: <context>: <sqlite message>".
absl::Status SqliteStatus(int code, absl::string_view context, absl::string_view message);

class SqliteStatement;

class SqliteDb final : public SqlDb {
 public:
  // Opens (creating if needed) the database file.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb() override;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  absl::Status Exec(const std::string& sql) override;
  absl::StatusOr<Statement> Prepare(const std::string& sql) override;
  int64_t Changes() const override;
  // SQLITE_LIMIT_LENGTH.
  int64_t MaxBlobBytes() override;
  // kWrite and kRowLocks: BEGIN IMMEDIATE (the file's write lock at once);
  // kRead: BEGIN DEFERRED.
  absl::Status Begin(TxnMode mode) override;
  absl::Status Commit() override;
  void Rollback() override;
  absl::string_view RowLockClause() const override { return ""; }
  absl::string_view SkipLockedClause() const override { return ""; }

  sqlite3* handle() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db);

  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<SqliteStatement>> cache_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SQLITE_H_
