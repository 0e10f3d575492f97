#include "server/store/sql.h"

#include "absl/strings/str_cat.h"

namespace agt::server {

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

absl::StatusOr<int64_t> SqlDb::QueryInt64(const std::string& sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("sql: \"", sql, "\" returned no row"));
  return stmt->ColumnInt64(0);
}

absl::StatusOr<Transaction> Transaction::Begin(SqlDb& db, Mode mode) {
  if (absl::Status s = db.Begin(mode); !s.ok()) return s;
  return Transaction(&db);
}

absl::Status Transaction::Commit() {
  absl::Status status = db_->Commit();
  if (status.ok()) db_ = nullptr;
  return status;
}

}  // namespace agt::server
