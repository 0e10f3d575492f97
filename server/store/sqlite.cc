#include "server/store/sqlite.h"

#include <sqlite3.h>

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace agt::server {

absl::Status SqliteStatus(int code, absl::string_view context, absl::string_view message) {
  const std::string text = absl::StrCat("sqlite: ", context, ": ", message, " (code ", code, ")");
  switch (code & 0xff) {  // the primary result code
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

namespace {

absl::Status DbError(sqlite3* db, int code, absl::string_view context) {
  return SqliteStatus(code, context, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
}

}  // namespace

// ---- SqliteStatement

class SqliteStatement final : public StatementBackend {
 public:
  SqliteStatement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindInt64(int index, int64_t value) override {
    Check(sqlite3_bind_int64(stmt_, index, value), "bind");
  }
  void BindDouble(int index, double value) override {
    Check(sqlite3_bind_double(stmt_, index, value), "bind");
  }
  void BindText(int index, absl::string_view value) override {
    Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8),
          "bind");
  }
  void BindBlob(int index, absl::string_view value, bool copy) override {
    // A zero-length blob must still be a blob, not NULL: pass a non-null
    // pointer.
    static const char kEmpty = 0;
    Check(sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                              copy ? SQLITE_TRANSIENT : SQLITE_STATIC),
          "bind");
  }

  absl::StatusOr<bool> Step() override {
    if (!bind_status_.ok()) return bind_status_;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return DbError(db_, rc, absl::StrCat("step \"", sqlite3_sql(stmt_), "\""));
  }

  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    bind_status_ = absl::OkStatus();
  }

  int64_t ColumnInt64(int column) const override { return sqlite3_column_int64(stmt_, column); }

  double ColumnDouble(int column) const override {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    return sqlite3_column_double(stmt_, column);
  }

  std::string ColumnText(int column) const override {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
  }

  absl::string_view ColumnBlob(int column) const override {
    const void* blob = sqlite3_column_blob(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    if (blob == nullptr) return absl::string_view();
    return absl::string_view(static_cast<const char*>(blob), static_cast<size_t>(size));
  }

 private:
  void Check(int rc, absl::string_view what) {
    if (rc != SQLITE_OK && bind_status_.ok()) {
      bind_status_ = DbError(db_, rc, absl::StrCat(what, " in \"", sqlite3_sql(stmt_), "\""));
    }
  }

  sqlite3_stmt* stmt_;
  sqlite3* db_;
  absl::Status bind_status_;
};

// ---- SqliteDb

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = DbError(db, rc, absl::StrCat("open \"", path, "\""));
    sqlite3_close_v2(db);  // a handle is returned even on failure
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

SqliteDb::SqliteDb(sqlite3* db) : db_(db) {}

SqliteDb::~SqliteDb() {
  cache_.clear();  // finalizes every statement before the connection closes
  sqlite3_close_v2(db_);
}

absl::Status SqliteDb::Exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status = SqliteStatus(rc, absl::StrCat("exec \"", sql.substr(0, 60), "\""),
                                     message != nullptr ? message : sqlite3_errmsg(db_));
  sqlite3_free(message);
  return status;
}

absl::StatusOr<Statement> SqliteDb::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Statement(it->second.get());
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()) + 1,
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return DbError(db_, rc, absl::StrCat("prepare \"", sql, "\""));
  auto backend = std::make_unique<SqliteStatement>(stmt, db_);
  SqliteStatement* borrowed = backend.get();
  cache_.emplace(sql, std::move(backend));
  return Statement(borrowed);
}

int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

int64_t SqliteDb::MaxBlobBytes() { return sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1); }

absl::Status SqliteDb::Begin(TxnMode mode) {
  return Exec(mode == TxnMode::kRead ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE");
}

absl::Status SqliteDb::Commit() { return Exec("COMMIT"); }

void SqliteDb::Rollback() {
  // A failed statement may already have ended the transaction; roll back only
  // when one is still open.
  if (sqlite3_get_autocommit(db_) == 0) Exec("ROLLBACK").IgnoreError();
}

}  // namespace agt::server
