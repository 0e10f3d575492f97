// The store's seam between its SQL and a database engine: a connection that
// prepares statements (cached by their text), binds and steps them, and runs
// transactions. SQLite (server/store/sqlite.h) and PostgreSQL
// (server/store/postgres.h) implement it; the store's SQL (store.cc) is
// written once against it, in the subset both engines read alike: numbered
// parameters ?1..?N (PostgreSQL's connection rewrites them to $1..$N),
// INSERT ... ON CONFLICT ... DO UPDATE, no engine-specific functions. The
// two differences the SQL cannot hide are asked of the connection:
// RowLockClause() and SkipLockedClause().
//
// Internal to server/store: other layers use store.h, never SQL.
//
// Thread-safety: none. A connection and its Statements and Transactions
// belong to one thread at a time (SqlStore serialises access with its mutex).
#ifndef AGT_SERVER_STORE_SQL_H_
#define AGT_SERVER_STORE_SQL_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::server {

// One prepared statement of an engine, owned by its connection's cache.
// Parameters are 1-based, columns 0-based. Binding errors are remembered and
// reported by the next Step; Reset clears the bindings and the error.
class StatementBackend {
 public:
  virtual ~StatementBackend() = default;
  virtual void BindInt64(int index, int64_t value) = 0;
  virtual void BindDouble(int index, double value) = 0;
  virtual void BindText(int index, absl::string_view value) = 0;
  // copy false: `value` stays unchanged until Reset (blobs of megabytes).
  virtual void BindBlob(int index, absl::string_view value, bool copy) = 0;
  virtual absl::StatusOr<bool> Step() = 0;
  virtual void Reset() = 0;
  virtual int64_t ColumnInt64(int column) const = 0;
  // NULL reads back as NaN (SQLite stores a bound NaN as NULL).
  virtual double ColumnDouble(int column) const = 0;
  virtual std::string ColumnText(int column) const = 0;
  // Valid until the next Step or Reset.
  virtual absl::string_view ColumnBlob(int column) const = 0;
};

// A statement borrowed from a connection's cache; reset (bindings cleared)
// when destroyed, so it can be reused. At most one Statement per distinct SQL
// text may be alive at a time.
class Statement {
 public:
  explicit Statement(StatementBackend* backend) : backend_(backend) {}
  Statement(Statement&& other) noexcept : backend_(std::exchange(other.backend_, nullptr)) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() {
    if (backend_ != nullptr) backend_->Reset();
  }

  Statement& BindInt64(int index, int64_t value) {
    backend_->BindInt64(index, value);
    return *this;
  }
  Statement& BindDouble(int index, double value) {
    backend_->BindDouble(index, value);
    return *this;
  }
  Statement& BindText(int index, absl::string_view value) {
    backend_->BindText(index, value);
    return *this;
  }
  Statement& BindBlob(int index, absl::string_view value) {
    backend_->BindBlob(index, value, /*copy=*/true);
    return *this;
  }
  // Without a copy: `value` must stay unchanged until the statement is
  // reset or destroyed.
  Statement& BindBlobNoCopy(int index, absl::string_view value) {
    backend_->BindBlob(index, value, /*copy=*/false);
    return *this;
  }

  // true: a row is available; false: the statement is done.
  absl::StatusOr<bool> Step() { return backend_->Step(); }
  // Steps to completion, expecting no rows.
  absl::Status Run();
  // Makes the statement ready to be bound and run again.
  void Reset() { backend_->Reset(); }

  int64_t ColumnInt64(int column) const { return backend_->ColumnInt64(column); }
  double ColumnDouble(int column) const { return backend_->ColumnDouble(column); }
  std::string ColumnText(int column) const { return backend_->ColumnText(column); }
  absl::string_view ColumnBlob(int column) const { return backend_->ColumnBlob(column); }

 private:
  StatementBackend* backend_;
};

// kWrite: a write transaction that excludes every other kWrite transaction
// on the database, from any process, from its first read to its commit (a
// read-decide-write cannot interleave). kRead: a consistent read snapshot.
// kRowLocks: a write transaction that relies on the row locks its statements
// take (RowLockClause, SkipLockedClause) instead of the database-wide
// exclusion; an engine without row locks (SQLite) runs it as kWrite.
enum class TxnMode { kWrite, kRead, kRowLocks };

class SqlDb {
 public:
  virtual ~SqlDb() = default;

  // Runs one or more statements that return no rows of interest.
  virtual absl::Status Exec(const std::string& sql) = 0;
  // A prepared statement for `sql` (one statement), cached by its text.
  virtual absl::StatusOr<Statement> Prepare(const std::string& sql) = 0;
  // Number of rows changed by the last INSERT/UPDATE/DELETE.
  virtual int64_t Changes() const = 0;
  // The largest blob or text a write may carry, in bytes.
  virtual int64_t MaxBlobBytes() = 0;

  // Transactions (use Transaction, which rolls back unless committed).
  virtual absl::Status Begin(TxnMode mode) = 0;
  virtual absl::Status Commit() = 0;
  // Rolls back the open transaction, if any.
  virtual void Rollback() = 0;

  // Appended to a SELECT of rows the transaction will change: " FOR UPDATE"
  // where the engine has row locks, "" otherwise (SQLite's kWrite already
  // excludes every other writer).
  virtual absl::string_view RowLockClause() const = 0;
  // Appended to a queue's SELECT: " FOR UPDATE SKIP LOCKED" (rows another
  // transaction holds are passed over rather than waited for), "" without
  // row locks.
  virtual absl::string_view SkipLockedClause() const = 0;

  // Executes `sql` (one statement) and returns the first column of its
  // first row as an integer; Internal when there is no row.
  absl::StatusOr<int64_t> QueryInt64(const std::string& sql);
};

// A transaction on a SqlDb, rolled back on destruction unless Commit
// succeeded.
class Transaction {
 public:
  using Mode = TxnMode;
  static absl::StatusOr<Transaction> Begin(SqlDb& db, Mode mode);
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    if (db_ != nullptr) db_->Rollback();
  }

  absl::Status Commit();

 private:
  explicit Transaction(SqlDb* db) : db_(db) {}
  SqlDb* db_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SQL_H_
