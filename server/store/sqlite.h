// A thin layer over the SQLite C API for the store: one connection with a
// cache of prepared statements, RAII statements and transactions, and SQLite
// result codes turned into absl::Status values that carry SQLite's message.
//
// Internal to server/store: other layers use store.h, never SQL.
//
// Thread-safety: none. A SqliteDb and its Statements and Transactions belong to
// one thread at a time (Store serialises access with its mutex).
#ifndef AGT_SERVER_STORE_SQLITE_H_
#define AGT_SERVER_STORE_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace agt::server {

// The absl::Status for a SQLite result code: BUSY/LOCKED -> Unavailable,
// CORRUPT/NOTADB -> DataLoss, FULL -> ResourceExhausted, CANTOPEN/READONLY/
// PERM -> FailedPrecondition, anything else -> Internal. The message is
// "sqlite: <context>: <sqlite message>".
absl::Status SqliteStatus(int code, absl::string_view context, absl::string_view message);

// One prepared statement borrowed from SqliteDb's cache. Binding errors are
// remembered and reported by the next Step. The statement is reset (and its
// bindings cleared) when this object is destroyed, so it can be reused.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  Statement& BindInt64(int index, int64_t value);
  Statement& BindDouble(int index, double value);
  Statement& BindText(int index, absl::string_view value);
  Statement& BindBlob(int index, absl::string_view value);
  // Without a copy: `value` must stay unchanged until the statement is
  // reset or destroyed (for blobs of many megabytes).
  Statement& BindBlobNoCopy(int index, absl::string_view value);

  // true: a row is available; false: the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  absl::Status Run();
  // Makes the statement ready to be bound and run again.
  void Reset();

  // Columns are 0-based. Valid until the next Step.
  int64_t ColumnInt64(int column) const;
  // SQLite stores a bound NaN as NULL; NULL reads back as NaN.
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;
  absl::string_view ColumnBlob(int column) const;

 private:
  void Check(int rc, absl::string_view what);

  sqlite3_stmt* stmt_;
  sqlite3* db_;
  absl::Status bind_status_;
};

class SqliteDb {
 public:
  // Opens (creating if needed) the database file.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return no rows of interest.
  absl::Status Exec(const std::string& sql);
  // A prepared statement for `sql` (one statement), cached by its text. At most
  // one Statement per distinct text may be alive at a time.
  absl::StatusOr<Statement> Prepare(const std::string& sql);
  // Executes `sql` (one statement) and returns the first column of its first
  // row as an integer, e.g. for PRAGMA user_version.
  absl::StatusOr<int64_t> QueryInt64(const std::string& sql);
  // Number of rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;
  sqlite3* handle() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE (a write transaction: takes the write lock at once, so a
// read-modify-write cannot interleave with another writer) or BEGIN DEFERRED
// (a consistent read snapshot). Rolled back on destruction unless Commit
// succeeded.
class Transaction {
 public:
  enum class Mode { kWrite, kRead };
  static absl::StatusOr<Transaction> Begin(SqliteDb& db, Mode mode);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  absl::Status Commit();

 private:
  explicit Transaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SQLITE_H_
