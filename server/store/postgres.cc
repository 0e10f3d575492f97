#ifdef AGT_HAVE_POSTGRES

#include "server/store/postgres.h"

#include <libpq-fe.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agt::server {
namespace {

// Binary results are big-endian.
uint64_t ReadBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

absl::Status PostgresStatus(PGconn* conn, PGresult* result, absl::string_view context) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
  if (message.empty() && conn != nullptr) message = PQerrorMessage(conn);
  absl::StripTrailingAsciiWhitespace(&message);
  const std::string code = state != nullptr ? state : "";
  const std::string text = absl::StrCat("postgres: ", context, ": ", message,
                                        code.empty() ? "" : absl::StrCat(" (SQLSTATE ", code, ")"));
  if ((conn != nullptr && PQstatus(conn) != CONNECTION_OK) || code.rfind("08", 0) == 0) {
    return absl::UnavailableError(text);
  }
  if (code == "XX001" || code == "XX002") return absl::DataLossError(text);
  if (code.rfind("53", 0) == 0 || code.rfind("54", 0) == 0) {
    return absl::ResourceExhaustedError(text);
  }
  return absl::InternalError(text);
}

std::string PostgresParameters(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '?' && i + 1 < sql.size() && absl::ascii_isdigit(sql[i + 1])) {
      out.push_back('$');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// ---- PostgresStatement

class PostgresStatement final : public StatementBackend {
 public:
  PostgresStatement(PostgresDb* db, std::string name, std::string sql)
      : db_(db), name_(std::move(name)), sql_(std::move(sql)) {}
  ~PostgresStatement() override { Clear(); }

  void BindInt64(int index, int64_t value) override { SetText(index, absl::StrCat(value)); }
  void BindDouble(int index, double value) override {
    // Text that float8in reads back bit for bit (%.17g round-trips, "-0"
    // included).
    if (std::isnan(value)) return SetText(index, "NaN");
    if (std::isinf(value)) return SetText(index, value > 0 ? "Infinity" : "-Infinity");
    SetText(index, absl::StrFormat("%.17g", value));
  }
  void BindText(int index, absl::string_view value) override { SetText(index, std::string(value)); }
  void BindBlob(int index, absl::string_view value, bool copy) override {
    Param& p = At(index);
    p.borrowed = !copy;
    if (copy) {
      p.owned.assign(value.data(), value.size());
    } else {
      p.owned.clear();
      p.view = value;
    }
    p.binary = true;
    p.set = true;
  }

  absl::StatusOr<bool> Step() override {
    if (result_ == nullptr) {
      if (!bind_status_.ok()) return bind_status_;
      std::vector<const char*> values(params_.size());
      std::vector<int> lengths(params_.size());
      std::vector<int> formats(params_.size());
      for (size_t i = 0; i < params_.size(); ++i) {
        const Param& p = params_[i];
        if (!p.set) {
          return absl::InternalError(
              absl::StrCat("postgres: parameter ", i + 1, " of \"", sql_, "\" is not bound"));
        }
        // A zero-length value must still be a value, not NULL.
        static const char kEmpty = 0;
        const absl::string_view value = p.Value();
        values[i] = value.empty() ? &kEmpty : value.data();
        lengths[i] = static_cast<int>(value.size());
        formats[i] = p.binary ? 1 : 0;
      }
      result_ = PQexecPrepared(db_->handle(), name_.c_str(), static_cast<int>(params_.size()),
                               values.data(), lengths.data(), formats.data(), /*resultFormat=*/1);
      const ExecStatusType status = PQresultStatus(result_);
      if (status == PGRES_COMMAND_OK) {
        const char* tuples = PQcmdTuples(result_);
        db_->set_changes(tuples[0] != '\0' ? std::strtoll(tuples, nullptr, 10) : 0);
      } else if (status != PGRES_TUPLES_OK) {
        absl::Status error =
            PostgresStatus(db_->handle(), result_, absl::StrCat("step \"", sql_, "\""));
        PQclear(result_);
        result_ = nullptr;
        return error;
      }
      row_ = -1;
    }
    ++row_;
    return row_ < PQntuples(result_);
  }

  void Reset() override {
    Clear();
    params_.clear();
    bind_status_ = absl::OkStatus();
  }

  int64_t ColumnInt64(int column) const override {
    if (PQgetisnull(result_, row_, column)) return 0;
    const char* p = PQgetvalue(result_, row_, column);
    switch (PQgetlength(result_, row_, column)) {
      case 8:
        return static_cast<int64_t>(ReadBigEndian(p, 8));
      case 4:
        return static_cast<int32_t>(ReadBigEndian(p, 4));
      case 2:
        return static_cast<int16_t>(ReadBigEndian(p, 2));
      case 1:
        return static_cast<unsigned char>(p[0]);  // bool
      default:
        return 0;
    }
  }

  double ColumnDouble(int column) const override {
    if (PQgetisnull(result_, row_, column)) return std::numeric_limits<double>::quiet_NaN();
    const char* p = PQgetvalue(result_, row_, column);
    if (PQgetlength(result_, row_, column) == 4) {
      const uint32_t bits = static_cast<uint32_t>(ReadBigEndian(p, 4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    const uint64_t bits = ReadBigEndian(p, 8);
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  std::string ColumnText(int column) const override { return std::string(ColumnBlob(column)); }

  absl::string_view ColumnBlob(int column) const override {
    if (PQgetisnull(result_, row_, column)) return absl::string_view();
    return absl::string_view(PQgetvalue(result_, row_, column),
                             static_cast<size_t>(PQgetlength(result_, row_, column)));
  }

 private:
  // The value is `owned`, or `view` when borrowed (BindBlobNoCopy); a view
  // of `owned` itself would dangle when params_ grows.
  struct Param {
    std::string owned;
    absl::string_view view;
    bool borrowed = false;
    bool binary = false;
    bool set = false;
    absl::string_view Value() const { return borrowed ? view : absl::string_view(owned); }
  };

  Param& At(int index) {
    if (index < 1) {
      if (bind_status_.ok()) {
        bind_status_ = absl::InternalError(
            absl::StrCat("postgres: bind of parameter ", index, " in \"", sql_, "\""));
      }
      static Param ignored;
      return ignored;
    }
    if (params_.size() < static_cast<size_t>(index)) params_.resize(index);
    return params_[index - 1];
  }

  void SetText(int index, std::string value) {
    Param& p = At(index);
    p.owned = std::move(value);
    p.borrowed = false;
    p.binary = false;
    p.set = true;
  }

  void Clear() {
    if (result_ != nullptr) PQclear(result_);
    result_ = nullptr;
    row_ = -1;
  }

  PostgresDb* db_;
  std::string name_;
  std::string sql_;
  std::vector<Param> params_;
  absl::Status bind_status_;
  PGresult* result_ = nullptr;
  int row_ = -1;
};

// ---- PostgresDb

absl::StatusOr<std::unique_ptr<PostgresDb>> PostgresDb::Open(const std::string& uri) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("postgres: out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    absl::StripTrailingAsciiWhitespace(&message);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("postgres: connect: ", message));
  }
  std::unique_ptr<PostgresDb> db(new PostgresDb(conn));
  // Warnings (NOTICE) are not the store's business; the session's settings
  // are: UTC times never matter (all times are integers), but a statement
  // that waits on a lock for minutes means a stuck replica.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  if (absl::Status s = db->Exec("SET lock_timeout = '60s'; SET client_min_messages = warning");
      !s.ok()) {
    return s;
  }
  return db;
}

PostgresDb::PostgresDb(PGconn* conn) : conn_(conn) {}

PostgresDb::~PostgresDb() {
  cache_.clear();
  PQfinish(conn_);
}

absl::Status PostgresDb::Exec(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  absl::Status out;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    const char* tuples = PQcmdTuples(result);
    changes_ = tuples[0] != '\0' ? std::strtoll(tuples, nullptr, 10) : 0;
  } else {
    out = PostgresStatus(conn_, result, absl::StrCat("exec \"", sql.substr(0, 60), "\""));
  }
  PQclear(result);
  return out;
}

absl::StatusOr<Statement> PostgresDb::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Statement(it->second.get());
  const std::string name = absl::StrCat("agt_", next_statement_++);
  PGresult* result =
      PQprepare(conn_, name.c_str(), PostgresParameters(sql).c_str(), 0, /*paramTypes=*/nullptr);
  if (PQresultStatus(result) != PGRES_COMMAND_OK) {
    absl::Status error = PostgresStatus(conn_, result, absl::StrCat("prepare \"", sql, "\""));
    PQclear(result);
    return error;
  }
  PQclear(result);
  auto backend = std::make_unique<PostgresStatement>(this, name, sql);
  PostgresStatement* borrowed = backend.get();
  cache_.emplace(sql, std::move(backend));
  return Statement(borrowed);
}

absl::Status PostgresDb::Begin(TxnMode mode) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    // The server went away between calls: reconnect, and forget the
    // statements prepared on the old session (no Statement is alive
    // between transactions).
    cache_.clear();
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) return PostgresStatus(conn_, nullptr, "reconnect");
    if (absl::Status s = Exec("SET lock_timeout = '60s'"); !s.ok()) return s;
  }
  const char* begin = mode == TxnMode::kRead ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                                             : "BEGIN ISOLATION LEVEL READ COMMITTED";
  if (absl::Status s = Exec(begin); !s.ok()) return s;
  in_transaction_ = true;
  if (mode == TxnMode::kWrite) {
    absl::Status locked = Exec(absl::StrCat("SELECT pg_advisory_xact_lock(", kWriteLockKey, ")"));
    if (!locked.ok()) {
      Rollback();
      return locked;
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresDb::Commit() {
  PGresult* result = PQexec(conn_, "COMMIT");
  absl::Status out;
  if (PQresultStatus(result) != PGRES_COMMAND_OK) {
    out = PostgresStatus(conn_, result, "commit");
  } else if (std::strcmp(PQcmdStatus(result), "ROLLBACK") == 0) {
    // COMMIT of a transaction that had failed rolls it back.
    out = absl::AbortedError("postgres: commit: the transaction had failed and was rolled back");
  }
  PQclear(result);
  in_transaction_ = false;
  return out;
}

void PostgresDb::Rollback() {
  if (!in_transaction_) return;
  Exec("ROLLBACK").IgnoreError();
  in_transaction_ = false;
}

}  // namespace agt::server

#endif  // AGT_HAVE_POSTGRES
