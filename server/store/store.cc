#include "server/store/store.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/status_details.h"
#include "core/privacy/budget.h"
#include "server/store/blob.h"
#include "server/store/ids.h"
#include "server/store/privacy_ledger.h"
#include "server/store/schema.h"
#include "server/store/sqlite_store.h"
#ifdef AGT_HAVE_POSTGRES
#include "server/store/postgres_store.h"
#endif
#include "server/store/sql.h"
#include "server/store/sql_store.h"
#include "server/store/store_rules.h"

// Early returns on error, local to this file (Abseil of Debian 12 has no public
// equivalent).
#define STORE_CONCAT_INNER(a, b) a##b
#define STORE_CONCAT(a, b) STORE_CONCAT_INNER(a, b)
#define STORE_RETURN_IF_ERROR(expr)           \
  do {                                        \
    if (absl::Status s_ = (expr); !s_.ok()) { \
      return s_;                              \
    }                                         \
  } while (0)
#define STORE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = *std::move(tmp)
#define STORE_ASSIGN_OR_RETURN(lhs, expr) \
  STORE_ASSIGN_OR_RETURN_IMPL(STORE_CONCAT(status_or_, __LINE__), lhs, expr)

namespace agt::server {

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

std::string_view RequestKindName(RequestKind kind) {
  switch (kind) {
    case RequestKind::kUpload:
      return "upload";
    case RequestKind::kSubmitJob:
      return "submit_job";
    case RequestKind::kDeletion:
      return "deletion";
    case RequestKind::kPrivatePredict:
      return "private_predict";
  }
  return "unknown";
}

absl::Status ValidateRequestId(std::string_view id) {
  if (id.size() > kMaxRequestIdLength) {
    return WithField(absl::InvalidArgumentError(absl::StrCat("request_id has ", id.size(),
                                                             " characters; at most ",
                                                             kMaxRequestIdLength, " are allowed")),
                     "request_id");
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return WithField(absl::InvalidArgumentError(absl::StrCat(
                           "request_id: character ", i + 1, " is not one of A-Z a-z 0-9 . _ : -")),
                       "request_id");
    }
  }
  return absl::OkStatus();
}

bool Store::IsPostgresTarget(const std::string& target) {
  return absl::StartsWith(target, "postgresql://") || absl::StartsWith(target, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& target) {
  if (IsPostgresTarget(target)) {
#ifdef AGT_HAVE_POSTGRES
    return OpenPostgresStore(target);
#else
    return absl::FailedPreconditionError(
        "this agt-server was built without PostgreSQL (libpq was not found at build time; "
        "install libpq-dev and rebuild with -DAGT_WITH_POSTGRES=ON), so a postgresql:// --db "
        "cannot be opened");
#endif
  }
  return OpenSqliteStore(target);
}

int Store::SchemaVersion() { return LatestSchemaVersion(); }

absl::StatusOr<DatasetRecord> Store::InsertDataset(DatasetRecord record, const agt::Dataset& data,
                                                   const DatasetInsertOptions& options) {
  return DoInsertDataset(std::move(record), data, nullptr, options);
}

absl::StatusOr<DatasetRecord> Store::InsertDataset(DatasetRecord record, agt::Dataset&& data,
                                                   const DatasetInsertOptions& options) {
  return DoInsertDataset(std::move(record), data, &data, options);
}

namespace {

using Mode = Transaction::Mode;

// ---- datasets

constexpr char kDatasetColumns[] =
    "seq, id, tenant, name, num_rows, num_features, num_classes, checksum, size_bytes, "
    "created_ms, sample_shape";

DatasetRecord ReadDataset(const Statement& st, int64_t* seq) {
  *seq = st.ColumnInt64(0);
  DatasetRecord r;
  r.id = st.ColumnText(1);
  r.tenant = st.ColumnText(2);
  r.name = st.ColumnText(3);
  r.num_rows = st.ColumnInt64(4);
  r.num_features = static_cast<int>(st.ColumnInt64(5));
  r.num_classes = static_cast<int>(st.ColumnInt64(6));
  r.checksum = st.ColumnText(7);
  r.size_bytes = st.ColumnInt64(8);
  r.created_ms = st.ColumnInt64(9);
  r.sample_shape = SampleShapeFromText(st.ColumnText(10), r.num_features);
  return r;
}

// ---- jobs

constexpr char kJobColumns[] =
    "seq, id, tenant, dataset_id, name, spec, state, iteration, total_iterations, epoch, "
    "nominal_loss, total_width, eta_seconds, error, model_id, dropped_rows_per_epoch, "
    "cancel_requested, created_ms, started_ms, finished_ms, crash_count, backend";

absl::StatusOr<JobRecord> ReadJob(const Statement& st, int64_t* seq) {
  *seq = st.ColumnInt64(0);
  JobRecord j;
  j.id = st.ColumnText(1);
  j.tenant = st.ColumnText(2);
  j.dataset_id = st.ColumnText(3);
  j.name = st.ColumnText(4);
  j.spec = std::string(st.ColumnBlob(5));
  const int64_t state = st.ColumnInt64(6);
  if (state < static_cast<int>(JobState::kQueued) ||
      state > static_cast<int>(JobState::kCancelled)) {
    return absl::DataLossError(
        absl::StrCat("job ", j.id, ": stored state ", state, " is not a job state"));
  }
  j.state = static_cast<JobState>(state);
  j.progress.iteration = st.ColumnInt64(7);
  j.progress.total_iterations = st.ColumnInt64(8);
  j.progress.epoch = static_cast<int>(st.ColumnInt64(9));
  j.progress.nominal_loss = st.ColumnDouble(10);
  absl::StatusOr<std::vector<double>> width = DecodeDoubles(st.ColumnBlob(11));
  if (!width.ok()) return InRecord(width.status(), absl::StrCat("job ", j.id, " total_width"));
  j.progress.total_width = *std::move(width);
  j.progress.eta_seconds = st.ColumnDouble(12);
  j.error = st.ColumnText(13);
  j.model_id = st.ColumnText(14);
  j.dropped_rows_per_epoch = st.ColumnInt64(15);
  j.cancel_requested = st.ColumnInt64(16) != 0;
  j.created_ms = st.ColumnInt64(17);
  j.started_ms = st.ColumnInt64(18);
  j.finished_ms = st.ColumnInt64(19);
  j.crash_count = static_cast<int>(st.ColumnInt64(20));
  j.progress.backend = st.ColumnText(21);
  return j;
}

// Binds the progress columns at parameters 1..6.
void BindProgress(Statement& st, const JobProgressRecord& p) {
  st.BindInt64(1, p.iteration)
      .BindInt64(2, p.total_iterations)
      .BindInt64(3, p.epoch)
      .BindDouble(4, p.nominal_loss)
      .BindBlob(5, EncodeDoubles(p.total_width))
      .BindDouble(6, p.eta_seconds);
}

constexpr char kSetProgress[] =
    "iteration = ?1, total_iterations = ?2, epoch = ?3, nominal_loss = ?4, total_width = ?5, "
    "eta_seconds = ?6";

// ---- models

constexpr char kModelColumns[] =
    "seq, id, tenant, job_id, dataset_id, name, spec, architecture, polynomial_degree, "
    "input_features, num_classes, nominal, created_ms, backend";

absl::StatusOr<ModelRecord> ReadModel(const Statement& st, int64_t* seq) {
  *seq = st.ColumnInt64(0);
  ModelRecord m;
  m.id = st.ColumnText(1);
  m.tenant = st.ColumnText(2);
  m.job_id = st.ColumnText(3);
  m.dataset_id = st.ColumnText(4);
  m.name = st.ColumnText(5);
  m.spec = std::string(st.ColumnBlob(6));
  absl::StatusOr<ModelSpec> arch = DecodeModelSpec(st.ColumnBlob(7));
  if (!arch.ok()) return InRecord(arch.status(), absl::StrCat("model ", m.id, " architecture"));
  m.architecture = *std::move(arch);
  m.polynomial_degree = static_cast<int>(st.ColumnInt64(8));
  m.input_features = static_cast<int>(st.ColumnInt64(9));
  m.num_classes = static_cast<int>(st.ColumnInt64(10));
  absl::StatusOr<Vector> nominal = DecodeVector(st.ColumnBlob(11));
  if (!nominal.ok()) return InRecord(nominal.status(), absl::StrCat("model ", m.id, " nominal"));
  m.nominal = *std::move(nominal);
  m.created_ms = st.ColumnInt64(12);
  m.backend = st.ColumnText(13);
  return m;
}

}  // namespace

struct SqlStore::Impl {
  std::mutex mu;
  std::unique_ptr<SqlDb> db;
  // Leases (store.h, "job leases"): this object's name among the workers on
  // the database, the claims it made, and the lease token of every job it
  // holds (job id -> "<instance>:<claim>", as in jobs.lease_owner).
  std::string instance;
  int64_t claims = 0;
  int64_t lease_ms = kDefaultJobLeaseMs;
  int max_crashes = 2;
  std::map<std::string, std::string> leases;
  // The lease token of every job unit it holds ("<job>#<unit>" -> token).
  std::map<std::string, std::string> unit_leases;

  // ---- helpers; the caller holds mu.

  // The job, scoped to `tenant` unless it is null.
  // `lock_row`: in a write transaction that will change the job, locks its
  // row (RowLockClause), so that a concurrent claim (kRowLocks) is ordered
  // before or after this transaction, never in between.
  absl::StatusOr<JobRecord> LoadJob(const std::string& id, const std::string* tenant,
                                    bool lock_row = false) {
    const std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?1",
                                         tenant != nullptr ? " AND tenant = ?2" : "",
                                         lock_row ? db->RowLockClause() : absl::string_view());
    STORE_ASSIGN_OR_RETURN(Statement st, db->Prepare(sql));
    st.BindText(1, id);
    if (tenant != nullptr) st.BindText(2, *tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("job", id);
    int64_t seq = 0;
    STORE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(st, &seq));
    if (job.state == JobState::kSucceeded) {
      STORE_ASSIGN_OR_RETURN(job.warnings, LoadWarnings(job.id));
    }
    return job;
  }

  // Only SUCCEEDED jobs have warnings (CompleteJob writes them).
  absl::StatusOr<std::vector<JobWarningRecord>> LoadWarnings(const std::string& job_id) {
    STORE_ASSIGN_OR_RETURN(
        Statement st, db->Prepare("SELECT position, code, budget_n, budget_label_n, message FROM "
                                  "job_warnings WHERE job_id = ?1 ORDER BY position"));
    st.BindText(1, job_id);
    std::vector<JobWarningRecord> out;
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      const int64_t code = st.ColumnInt64(1);
      if (code < static_cast<int>(JobWarningCode::kBoundsNonFinite) ||
          code > static_cast<int>(JobWarningCode::kNothingCertified)) {
        return absl::DataLossError(
            absl::StrCat("job ", job_id, ": stored warning code ", code, " is not a warning code"));
      }
      JobWarningRecord w;
      w.code = static_cast<JobWarningCode>(code);
      if (st.ColumnInt64(2) >= 0) {
        w.budget =
            agt::Budget{static_cast<int>(st.ColumnInt64(2)), static_cast<int>(st.ColumnInt64(3))};
      }
      w.message = st.ColumnText(4);
      out.push_back(std::move(w));
    }
    return out;
  }

  absl::Status WriteWarnings(const std::string& job_id,
                             const std::vector<JobWarningRecord>& warnings) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("INSERT INTO job_warnings (job_id, position, code, budget_n, budget_label_n, "
                    "message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    for (size_t i = 0; i < warnings.size(); ++i) {
      const JobWarningRecord& w = warnings[i];
      st.BindText(1, job_id)
          .BindInt64(2, static_cast<int64_t>(i))
          .BindInt64(3, static_cast<int>(w.code));
      // budget_n -1: the warning is about every budget.
      st.BindInt64(4, w.budget.has_value() ? w.budget->n : -1)
          .BindInt64(5, w.budget.has_value() ? w.budget->label_n : 0);
      st.BindText(6, w.message);
      STORE_RETURN_IF_ERROR(st.Run());
      st.Reset();
    }
    return absl::OkStatus();
  }

  // The points as one blob: a matrix with a row per point (iteration,
  // epoch, nominal loss, then the width per budget). An empty history is no
  // row.
  absl::Status WriteHistory(const std::string& job_id, const WidthHistoryRecord& history) {
    if (history.points.empty()) {
      STORE_ASSIGN_OR_RETURN(Statement st,
                             db->Prepare("DELETE FROM job_width_history WHERE job_id = ?1"));
      st.BindText(1, job_id);
      return st.Run();
    }
    const size_t budgets = history.points.front().total_width.size();
    Matrix m(static_cast<Index>(history.points.size()), static_cast<Index>(3 + budgets));
    for (size_t i = 0; i < history.points.size(); ++i) {
      const WidthPointRecord& p = history.points[i];
      if (p.total_width.size() != budgets) {
        return absl::InvalidArgumentError(absl::StrCat("width history point ", i, " has ",
                                                       p.total_width.size(),
                                                       " widths; the first has ", budgets));
      }
      const Index r = static_cast<Index>(i);
      m(r, 0) = static_cast<double>(p.iteration);
      m(r, 1) = p.epoch;
      m(r, 2) = p.nominal_loss;
      for (size_t j = 0; j < budgets; ++j) m(r, static_cast<Index>(3 + j)) = p.total_width[j];
    }
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("INSERT INTO job_width_history (job_id, stride, points) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (job_id) DO UPDATE SET stride = excluded.stride, "
                    "points = excluded.points"));
    st.BindText(1, job_id).BindInt64(2, history.stride).BindBlob(3, EncodeMatrix(m));
    return st.Run();
  }

  absl::StatusOr<WidthHistoryRecord> ReadHistory(const std::string& job_id) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("SELECT stride, points FROM job_width_history WHERE job_id = ?1"));
    st.BindText(1, job_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    WidthHistoryRecord out;
    if (!row) return out;
    out.stride = st.ColumnInt64(0);
    absl::StatusOr<Matrix> m = DecodeMatrix(st.ColumnBlob(1));
    if (!m.ok()) return InRecord(m.status(), absl::StrCat("job ", job_id, " width history"));
    if (m->cols() < 3) {
      return absl::DataLossError(absl::StrCat("job ", job_id, " width history: ", m->cols(),
                                              " columns, expected at least 3"));
    }
    for (Index r = 0; r < m->rows(); ++r) {
      WidthPointRecord p;
      p.iteration = static_cast<int64_t>((*m)(r, 0));
      p.epoch = static_cast<int>((*m)(r, 1));
      p.nominal_loss = (*m)(r, 2);
      for (Index c = 3; c < m->cols(); ++c) p.total_width.push_back((*m)(r, c));
      out.points.push_back(std::move(p));
    }
    return out;
  }

  absl::Status SetJobState(const JobRecord& job, JobState to, int64_t finished_ms) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("UPDATE jobs SET state = ?1, finished_ms = ?2 WHERE id = ?3 AND state = ?4"));
    st.BindInt64(1, static_cast<int>(to))
        .BindInt64(2, finished_ms)
        .BindText(3, job.id)
        .BindInt64(4, static_cast<int>(job.state));
    STORE_RETURN_IF_ERROR(st.Run());
    if (db->Changes() != 1) {
      return absl::InternalError(absl::StrCat("job ", job.id, " changed state concurrently"));
    }
    return absl::OkStatus();
  }

  // Aborted when this store held the job's lease
  // and the row now names another owner (the lease expired and another
  // worker claimed the job). OK when this store holds no lease on it.
  absl::Status RequireLease(const std::string& job_id) {
    auto it = leases.find(job_id);
    if (it == leases.end()) return absl::OkStatus();
    STORE_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT lease_owner FROM jobs WHERE id = ?1"));
    st.BindText(1, job_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    // The entry stays: every later call of this worker on the job is
    // refused too.
    if (row && st.ColumnText(0) == it->second) return absl::OkStatus();
    return WithMetadata(absl::AbortedError(absl::StrCat(
                            "job ", job_id,
                            " was claimed by another worker after this worker's lease expired; "
                            "this worker's work on it is discarded")),
                        "job_id", job_id);
  }

  // Moves the lease's expiry on, when this store holds it.
  absl::Status ExtendLease(const std::string& job_id) {
    auto it = leases.find(job_id);
    if (it == leases.end()) return absl::OkStatus();
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("UPDATE jobs SET lease_expires_ms = ?1 WHERE id = ?2 AND lease_owner = ?3"));
    st.BindInt64(1, NowMs() + lease_ms).BindText(2, job_id).BindText(3, it->second);
    return st.Run();
  }

  // A job that leaves RUNNING has no lease.
  absl::Status ClearLease(const std::string& job_id) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("UPDATE jobs SET lease_owner = '', lease_expires_ms = 0 WHERE id = ?1"));
    st.BindText(1, job_id);
    return st.Run();
  }

  absl::Status DeleteCheckpoint(const std::string& job_id) {
    STORE_ASSIGN_OR_RETURN(Statement st, db->Prepare("DELETE FROM checkpoints WHERE job_id = ?1"));
    st.BindText(1, job_id);
    return st.Run();
  }

  // A split job's units end with it (complete, fail, cancel).
  absl::Status DeleteUnits(const std::string& job_id) {
    STORE_ASSIGN_OR_RETURN(Statement st, db->Prepare("DELETE FROM job_units WHERE job_id = ?1"));
    st.BindText(1, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
    for (auto it = unit_leases.lower_bound(absl::StrCat(job_id, "#"));
         it != unit_leases.end() && absl::StartsWith(it->first, absl::StrCat(job_id, "#"));) {
      it = unit_leases.erase(it);
    }
    return absl::OkStatus();
  }

  // Every RUNNING unit back to QUEUED (one server per database, at start
  // and stop: no other worker holds them).
  absl::Status RequeueAllUnits() {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("UPDATE job_units SET state = 1, lease_owner = '', lease_expires_ms = 0 "
                    "WHERE state = 2"));
    STORE_RETURN_IF_ERROR(st.Run());
    unit_leases.clear();
    return absl::OkStatus();
  }

  absl::Status WriteProgress(const std::string& job_id, const JobProgressRecord& progress) {
    STORE_ASSIGN_OR_RETURN(Statement st, db->Prepare(absl::StrCat("UPDATE jobs SET ", kSetProgress,
                                                                  " WHERE id = ?7")));
    BindProgress(st, progress);
    st.BindText(7, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
    if (progress.backend.empty()) return absl::OkStatus();
    STORE_ASSIGN_OR_RETURN(Statement b, db->Prepare("UPDATE jobs SET backend = ?1 WHERE id = ?2"));
    b.BindText(1, progress.backend).BindText(2, job_id);
    return b.Run();
  }

  absl::Status LoadBoxes(ModelRecord* m) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("SELECT position, budget_n, budget_label_n, lower, upper, total_width, "
                    "max_width FROM model_boxes WHERE model_id = ?1 ORDER BY position"));
    st.BindText(1, m->id);
    m->boxes.clear();
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      const int64_t position = st.ColumnInt64(0);
      const std::string what = absl::StrCat("model ", m->id, " box ", position);
      if (position != static_cast<int64_t>(m->boxes.size())) {
        return absl::DataLossError(absl::StrCat(what, ": expected box ", m->boxes.size()));
      }
      BoxRecord b;
      b.budget.n = static_cast<int>(st.ColumnInt64(1));
      b.budget.label_n = static_cast<int>(st.ColumnInt64(2));
      absl::StatusOr<Vector> lower = DecodeVector(st.ColumnBlob(3));
      if (!lower.ok()) return InRecord(lower.status(), absl::StrCat(what, " lower"));
      absl::StatusOr<Vector> upper = DecodeVector(st.ColumnBlob(4));
      if (!upper.ok()) return InRecord(upper.status(), absl::StrCat(what, " upper"));
      b.box.lower = *std::move(lower);
      b.box.upper = *std::move(upper);
      b.total_width = st.ColumnDouble(5);
      b.max_width = st.ColumnDouble(6);
      m->boxes.push_back(std::move(b));
    }
    return absl::OkStatus();
  }

  absl::Status RequireModel(const std::string& tenant, const std::string& model_id) {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db->Prepare("SELECT 1 FROM models WHERE id = ?1 AND tenant = ?2"));
    st.BindText(1, model_id).BindText(2, tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("model", model_id);
    return absl::OkStatus();
  }

  // The ledger rows with row_id >= first_row in row order, at most `limit`
  // (< 0: all).
  absl::StatusOr<std::vector<DeletionRecord>> LoadDeletions(const std::string& model_id,
                                                            int64_t first_row = 0,
                                                            int64_t limit = -1) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("SELECT row_id, requested_by, requested_ms, accepted FROM deletions WHERE "
                    "model_id = ?1 AND row_id >= ?2 ORDER BY row_id LIMIT ?3"));
    // No limit is the largest one: a negative LIMIT means "none" to SQLite
    // only.
    st.BindText(1, model_id)
        .BindInt64(2, first_row)
        .BindInt64(3, limit < 0 ? std::numeric_limits<int64_t>::max() : limit);
    std::vector<DeletionRecord> out;
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      DeletionRecord r;
      r.row_id = st.ColumnInt64(0);
      r.requested_by = st.ColumnText(1);
      r.requested_ms = st.ColumnInt64(2);
      r.accepted = st.ColumnInt64(3) != 0;
      out.push_back(std::move(r));
    }
    return out;
  }

  // The budget model `model_id` (of `tenant`, checked by the caller) draws
  // on, with `client`'s share; zeros where nothing was spent.
  absl::StatusOr<PrivacySpendRecord> LoadPrivacySpend(const std::string& tenant,
                                                      const std::string& model_id,
                                                      const std::string& client) {
    PrivacySpendRecord r;
    r.client = client;
    {
      STORE_ASSIGN_OR_RETURN(Statement st,
                             db->Prepare("SELECT dataset_id FROM models WHERE id = ?1"));
      st.BindText(1, model_id);
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) return NotFound("model", model_id);
      STORE_ASSIGN_OR_RETURN(r.dataset_id, RootDatasetOf(*db, tenant, st.ColumnText(0)));
    }
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db->Prepare("SELECT spent_quanta, releases, updated_ms FROM privacy_ledgers "
                      "WHERE tenant = ?1 AND dataset_id = ?2"));
      st.BindText(1, tenant).BindText(2, r.dataset_id);
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (row) {
        r.spent_quanta = st.ColumnInt64(0);
        r.releases = st.ColumnInt64(1);
        r.updated_ms = st.ColumnInt64(2);
      }
    }
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db->Prepare("SELECT spent_quanta, releases FROM privacy_spenders "
                                       "WHERE tenant = ?1 AND dataset_id = ?2 AND client = ?3"));
    st.BindText(1, tenant).BindText(2, r.dataset_id).BindText(3, client);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      r.client_spent_quanta = st.ColumnInt64(0);
      r.client_releases = st.ColumnInt64(1);
    }
    return r;
  }

  // Writes the budget and the client's share of `r` (upserts).
  absl::Status StorePrivacySpend(const std::string& tenant, const PrivacySpendRecord& r) {
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db->Prepare("INSERT INTO privacy_ledgers (tenant, dataset_id, spent_quanta, releases, "
                      "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, dataset_id) "
                      "DO UPDATE SET spent_quanta = excluded.spent_quanta, releases = "
                      "excluded.releases, updated_ms = excluded.updated_ms"));
      st.BindText(1, tenant)
          .BindText(2, r.dataset_id)
          .BindInt64(3, r.spent_quanta)
          .BindInt64(4, r.releases)
          .BindInt64(5, r.updated_ms);
      STORE_RETURN_IF_ERROR(st.Run());
    }
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("INSERT INTO privacy_spenders (tenant, dataset_id, client, spent_quanta, "
                    "releases, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, "
                    "dataset_id, client) DO UPDATE SET spent_quanta = excluded.spent_quanta, "
                    "releases = excluded.releases, updated_ms = excluded.updated_ms"));
    st.BindText(1, tenant)
        .BindText(2, r.dataset_id)
        .BindText(3, r.client)
        .BindInt64(4, r.client_spent_quanta)
        .BindInt64(5, r.client_releases)
        .BindInt64(6, r.updated_ms);
    return st.Run();
  }

  // The stored answer to (tenant, kind, tag.id), nullopt if none or tag is
  // empty; InvalidArgument if the id was used with another fingerprint. Run
  // it in the write transaction of the request's effect, then SaveRequest.
  absl::StatusOr<std::optional<std::string>> FindRequest(const std::string& tenant,
                                                         RequestKind kind, const RequestTag& tag) {
    if (tag.empty()) return std::optional<std::string>();
    const std::string_view kind_name = RequestKindName(kind);
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("SELECT fingerprint, response FROM requests WHERE tenant = ?1 AND kind = ?2 "
                    "AND request_id = ?3 AND created_ms >= ?4"));
    st.BindText(1, tenant)
        .BindText(2, std::string(kind_name))
        .BindText(3, tag.id)
        .BindInt64(4, NowMs() - kRequestRetentionMs);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return std::optional<std::string>();
    if (st.ColumnText(0) != tag.fingerprint) {
      return WithReason(
          WithField(absl::InvalidArgumentError(absl::StrCat(
                        "request_id ", Quoted(tag.id), " was already used for a different ",
                        absl::string_view(kind_name.data(), kind_name.size()),
                        " request; use a new request_id for a new request")),
                    "request_id"),
          kReasonIdempotencyConflict);
    }
    return std::optional<std::string>(std::string(st.ColumnBlob(1)));
  }

  // Records the answer to a request (no-op for an empty tag) and forgets
  // answers older than kRequestRetentionMs. In the effect's transaction.
  absl::Status SaveRequest(const std::string& tenant, RequestKind kind, const RequestTag& tag,
                           std::string_view response) {
    if (tag.empty()) return absl::OkStatus();
    const int64_t now = NowMs();
    {
      STORE_ASSIGN_OR_RETURN(Statement st,
                             db->Prepare("DELETE FROM requests WHERE created_ms < ?1"));
      st.BindInt64(1, now - kRequestRetentionMs);
      STORE_RETURN_IF_ERROR(st.Run());
    }
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("INSERT INTO requests (tenant, kind, request_id, fingerprint, response, "
                    "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, kind, "
                    "request_id) DO UPDATE SET fingerprint = excluded.fingerprint, response = "
                    "excluded.response, created_ms = excluded.created_ms"));
    st.BindText(1, tenant)
        .BindText(2, std::string(RequestKindName(kind)))
        .BindText(3, tag.id)
        .BindText(4, tag.fingerprint)
        .BindBlob(5, absl::string_view(response.data(), response.size()))
        .BindInt64(6, now);
    return st.Run();
  }

  absl::Status InsertModel(const ModelRecord& m) {
    STORE_ASSIGN_OR_RETURN(const std::string architecture, EncodeModelSpec(m.architecture));
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db->Prepare("INSERT INTO models (id, tenant, job_id, dataset_id, name, spec, "
                      "architecture, polynomial_degree, input_features, num_classes, nominal, "
                      "created_ms, backend) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
      st.BindText(1, m.id)
          .BindText(2, m.tenant)
          .BindText(3, m.job_id)
          .BindText(4, m.dataset_id)
          .BindText(5, m.name)
          .BindBlob(6, m.spec)
          .BindBlob(7, architecture)
          .BindInt64(8, m.polynomial_degree)
          .BindInt64(9, m.input_features)
          .BindInt64(10, m.num_classes)
          .BindBlob(11, EncodeVector(m.nominal))
          .BindInt64(12, m.created_ms)
          .BindText(13, m.backend);
      STORE_RETURN_IF_ERROR(st.Run());
    }
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db->Prepare("INSERT INTO model_boxes (model_id, position, budget_n, budget_label_n, "
                    "lower, upper, total_width, max_width) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    for (size_t i = 0; i < m.boxes.size(); ++i) {
      const BoxRecord& b = m.boxes[i];
      st.BindText(1, m.id)
          .BindInt64(2, static_cast<int64_t>(i))
          .BindInt64(3, b.budget.n)
          .BindInt64(4, b.budget.label_n)
          .BindBlob(5, EncodeVector(b.box.lower))
          .BindBlob(6, EncodeVector(b.box.upper))
          .BindDouble(7, b.total_width)
          .BindDouble(8, b.max_width);
      STORE_RETURN_IF_ERROR(st.Run());
      st.Reset();
    }
    return absl::OkStatus();
  }
};

SqlStore::SqlStore(std::unique_ptr<SqlDb> db) : impl_(std::make_unique<Impl>()) {
  impl_->db = std::move(db);
  absl::StatusOr<std::string> instance = NewRandomId("worker_");
  impl_->instance = instance.ok() ? *std::move(instance) : absl::StrCat("worker_", NowMs());
}

void SqlStore::SetJobLease(int64_t lease_ms, int max_crashes) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->lease_ms = std::max<int64_t>(1, lease_ms);
  impl_->max_crashes = std::max(0, max_crashes);
}

absl::Status SqlStore::RenewJobLease(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRowLocks));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job.id));
  if (impl_->leases.count(job.id) == 0 || job.state != JobState::kRunning) {
    return WithMetadata(
        absl::AbortedError(absl::StrCat("job ", job.id, " is ", StateName(job.state),
                                        " and not leased by this worker")),
        "job_id", job.id);
  }
  STORE_RETURN_IF_ERROR(impl_->ExtendLease(job.id));
  return txn.Commit();
}

absl::StatusOr<int> SqlStore::ReleaseJobLeases() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  int64_t released = 0;
  STORE_ASSIGN_OR_RETURN(
      Statement st, db.Prepare("UPDATE jobs SET state = ?1, lease_owner = '', lease_expires_ms = 0 "
                               "WHERE id = ?2 AND state = ?3 AND lease_owner = ?4"));
  for (const auto& [id, token] : impl_->leases) {
    st.BindInt64(1, static_cast<int>(JobState::kQueued))
        .BindText(2, id)
        .BindInt64(3, static_cast<int>(JobState::kRunning))
        .BindText(4, token);
    STORE_RETURN_IF_ERROR(st.Run());
    released += db.Changes();
    st.Reset();
  }
  {
    // This worker's units go back to QUEUED too, keeping their checkpoints.
    STORE_ASSIGN_OR_RETURN(
        Statement us,
        db.Prepare("UPDATE job_units SET state = 1, lease_owner = '', lease_expires_ms = 0 "
                   "WHERE state = 2 AND lease_owner = ?1"));
    for (const auto& [key, token] : impl_->unit_leases) {
      us.BindText(1, token);
      STORE_RETURN_IF_ERROR(us.Run());
      released += db.Changes();
      us.Reset();
    }
  }
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases.clear();
  impl_->unit_leases.clear();
  return static_cast<int>(released);
}
SqlStore::~SqlStore() = default;

// ---- datasets

absl::StatusOr<DatasetRecord> SqlStore::DoInsertDataset(DatasetRecord record,
                                                        const agt::Dataset& data,
                                                        agt::Dataset* release,
                                                        const DatasetInsertOptions& options) {
  STORE_RETURN_IF_ERROR(ValidateRequestId(options.request_id));
  const RequestTag tag{options.request_id, options.request_fingerprint};
  if (data.y.size() != data.x.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset has ", data.x.rows(),
                                                   " feature rows but ", data.y.size(), " labels"));
  }
  if (data.num_classes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset num_classes ", data.num_classes, " must be >= 0"));
  }
  // Encoding and hashing happen outside the lock: they are the expensive part.
  const std::string features = EncodeMatrix(data.x);
  const std::string labels = EncodeVector(data.y);
  STORE_ASSIGN_OR_RETURN(record.id, NewRandomId(kDatasetIdPrefix));
  record.num_rows = data.size();
  record.num_features = static_cast<int>(data.dim());
  record.num_classes = data.num_classes;
  record.checksum = Sha256HexOfParts({features, labels});
  record.size_bytes = static_cast<int64_t>(features.size() + labels.size());
  record.created_ms = NowMs();
  if (record.sample_shape.empty()) record.sample_shape = {record.num_features};
  {
    int64_t product = 1;
    for (int d : record.sample_shape) product *= d;
    if (product != record.num_features || record.sample_shape.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset sample_shape [", absl::StrJoin(record.sample_shape, ", "),
                       "] does not hold its ", record.num_features, " features per row"));
    }
  }
  if (release != nullptr) *release = agt::Dataset();  // `data` is not used below

  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  // A retry: the first upload's dataset; nothing is inserted.
  STORE_ASSIGN_OR_RETURN(const std::optional<std::string> first,
                         impl_->FindRequest(record.tenant, RequestKind::kUpload, tag));
  if (first.has_value()) {
    STORE_ASSIGN_OR_RETURN(
        Statement st, db.Prepare(absl::StrCat("SELECT ", kDatasetColumns,
                                              " FROM datasets WHERE id = ?1 AND tenant = ?2")));
    st.BindText(1, *first).BindText(2, record.tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("request_id ", Quoted(tag.id), " stored dataset ",
                                              *first, ", which has been deleted since"));
    }
    int64_t seq = 0;
    DatasetRecord stored = ReadDataset(st, &seq);
    STORE_RETURN_IF_ERROR(txn.Commit());
    return stored;
  }
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("INSERT INTO datasets (id, tenant, name, num_rows, num_features, num_classes, "
                   "checksum, size_bytes, created_ms, features, labels, sample_shape) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    const std::string shape_text = SampleShapeToText(record.sample_shape);
    st.BindText(1, record.id)
        .BindText(2, record.tenant)
        .BindText(3, record.name)
        .BindInt64(4, record.num_rows)
        .BindInt64(5, record.num_features)
        .BindInt64(6, record.num_classes)
        .BindText(7, record.checksum)
        .BindInt64(8, record.size_bytes)
        .BindInt64(9, record.created_ms)
        .BindBlobNoCopy(10, features)  // both outlive the statement
        .BindBlobNoCopy(11, labels)
        .BindText(12, shape_text);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->SaveRequest(record.tenant, RequestKind::kUpload, tag, record.id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return record;
}

absl::StatusOr<DatasetRecord> SqlStore::GetDataset(const std::string& tenant,
                                                   const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Statement st, impl_->db->Prepare(absl::StrCat(
                                           "SELECT ", kDatasetColumns,
                                           " FROM datasets WHERE id = ?1 AND tenant = ?2")));
  st.BindText(1, id).BindText(2, tenant);
  STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return NotFound("dataset", id);
  int64_t seq = 0;
  return ReadDataset(st, &seq);
}

absl::StatusOr<agt::Dataset> SqlStore::LoadDatasetData(const std::string& tenant,
                                                       const std::string& id) {
  std::string features;
  std::string labels;
  std::string checksum;
  int64_t num_rows = 0;
  int64_t num_features = 0;
  int num_classes = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        impl_->db->Prepare("SELECT features, labels, checksum, num_rows, num_features, "
                           "num_classes FROM datasets WHERE id = ?1 AND tenant = ?2"));
    st.BindText(1, id).BindText(2, tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("dataset", id);
    features = std::string(st.ColumnBlob(0));
    labels = std::string(st.ColumnBlob(1));
    checksum = st.ColumnText(2);
    num_rows = st.ColumnInt64(3);
    num_features = st.ColumnInt64(4);
    num_classes = static_cast<int>(st.ColumnInt64(5));
  }
  // Verification and decoding outside the lock.
  const std::string what = absl::StrCat("dataset ", id);
  if (Sha256HexOfParts({features, labels}) != checksum) {
    return absl::DataLossError(
        absl::StrCat(what, ": stored blobs do not match the dataset checksum ", checksum));
  }
  agt::Dataset data;
  absl::StatusOr<Matrix> x = DecodeMatrix(features);
  if (!x.ok()) return InRecord(x.status(), absl::StrCat(what, " features"));
  absl::StatusOr<Vector> y = DecodeVector(labels);
  if (!y.ok()) return InRecord(y.status(), absl::StrCat(what, " labels"));
  if (x->rows() != num_rows || x->cols() != num_features || y->size() != num_rows) {
    return absl::DataLossError(absl::StrCat(
        what, ": shape/size mismatch: blobs hold ", x->rows(), "x", x->cols(), " features and ",
        y->size(), " labels; the record says ", num_rows, "x", num_features));
  }
  data.x = *std::move(x);
  data.y = *std::move(y);
  data.num_classes = num_classes;
  return data;
}

absl::StatusOr<Page<DatasetRecord>> SqlStore::ListDatasets(const std::string& tenant, int page_size,
                                                           const std::string& page_token) {
  STORE_ASSIGN_OR_RETURN(const int limit, NormalizePageSize(page_size));
  STORE_ASSIGN_OR_RETURN(const int64_t after, DecodePageToken(PageKind::kDatasets, page_token));
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(
      Statement st, impl_->db->Prepare(absl::StrCat("SELECT ", kDatasetColumns,
                                                    " FROM datasets WHERE tenant = ?1 AND seq > ?2 "
                                                    "ORDER BY seq LIMIT ?3")));
  st.BindText(1, tenant).BindInt64(2, after).BindInt64(3, limit + 1);
  Page<DatasetRecord> page;
  int64_t last_seq = 0;
  while (true) {
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_page_token = EncodePageToken(PageKind::kDatasets, last_seq);
      break;
    }
    page.items.push_back(ReadDataset(st, &last_seq));
  }
  return page;
}

absl::Status SqlStore::DeleteDataset(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("SELECT 1 FROM datasets WHERE id = ?1 AND tenant = ?2"));
    st.BindText(1, id).BindText(2, tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("dataset", id);
  }
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT id, state FROM jobs WHERE dataset_id = ?1 AND state IN (?2, ?3) "
                   "ORDER BY seq LIMIT 1"));
    st.BindText(1, id)
        .BindInt64(2, static_cast<int>(JobState::kQueued))
        .BindInt64(3, static_cast<int>(JobState::kRunning));
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      return WithMetadata(
          WithMetadata(
              WithReason(absl::FailedPreconditionError(absl::StrCat(
                             "dataset ", id, " is in use by ",
                             StateName(static_cast<JobState>(st.ColumnInt64(1))), " job ",
                             st.ColumnText(0), "; cancel the job or wait for it to finish")),
                         kReasonDatasetInUse),
              "dataset_id", id),
          "job_id", st.ColumnText(0));
    }
  }
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("DELETE FROM datasets WHERE id = ?1"));
    st.BindText(1, id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  return txn.Commit();
}

// ---- jobs

absl::StatusOr<JobRecord> SqlStore::InsertJob(JobRecord record, const JobInsertOptions& options) {
  STORE_RETURN_IF_ERROR(ValidateRequestId(options.request_id));
  const RequestTag tag{options.request_id, options.request_fingerprint};
  STORE_ASSIGN_OR_RETURN(record.id, NewRandomId(kJobIdPrefix));
  record.state = JobState::kQueued;
  record.created_ms = NowMs();
  record.started_ms = 0;
  record.finished_ms = 0;
  record.model_id.clear();
  record.error.clear();
  record.cancel_requested = false;
  record.crash_count = 0;

  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  // A retry: the first submission's job, as it is now; nothing is inserted.
  STORE_ASSIGN_OR_RETURN(const std::optional<std::string> first,
                         impl_->FindRequest(record.tenant, RequestKind::kSubmitJob, tag));
  if (first.has_value()) {
    STORE_ASSIGN_OR_RETURN(JobRecord job, impl_->LoadJob(*first, &record.tenant));
    STORE_RETURN_IF_ERROR(txn.Commit());
    return job;
  }
  if (options.max_active_jobs_per_tenant > 0) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT count(*) FROM jobs WHERE tenant = ?1 AND state IN (?2, ?3)"));
    st.BindText(1, record.tenant)
        .BindInt64(2, static_cast<int>(JobState::kQueued))
        .BindInt64(3, static_cast<int>(JobState::kRunning));
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    const int64_t active = row ? st.ColumnInt64(0) : 0;
    if (active >= options.max_active_jobs_per_tenant) {
      return WithQuota(
          WithReason(
              absl::ResourceExhaustedError(absl::StrCat(
                  "tenant ", Quoted(record.tenant), " has ", active,
                  " QUEUED or RUNNING jobs; the server's --max-jobs-per-tenant is ",
                  options.max_active_jobs_per_tenant, ": wait for one to finish or cancel one")),
              kReasonTenantJobLimit),
          absl::StrCat("tenant:", record.tenant));
    }
  }
  {
    // In the same transaction as the insert, so a concurrent DeleteDataset
    // either sees this job or has already removed the dataset.
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("SELECT 1 FROM datasets WHERE id = ?1 AND tenant = ?2"));
    st.BindText(1, record.dataset_id).BindText(2, record.tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("dataset", record.dataset_id);
  }
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("INSERT INTO jobs (iteration, total_iterations, epoch, nominal_loss, "
                   "total_width, eta_seconds, id, tenant, dataset_id, name, spec, state, "
                   "dropped_rows_per_epoch, created_ms, error, model_id, cancel_requested, "
                   "started_ms, finished_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                   "?11, ?12, ?13, ?14, '', '', 0, 0, 0)"));
    BindProgress(st, record.progress);
    st.BindText(7, record.id)
        .BindText(8, record.tenant)
        .BindText(9, record.dataset_id)
        .BindText(10, record.name)
        .BindBlob(11, record.spec)
        .BindInt64(12, static_cast<int>(JobState::kQueued))
        .BindInt64(13, record.dropped_rows_per_epoch)
        .BindInt64(14, record.created_ms);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->SaveRequest(record.tenant, RequestKind::kSubmitJob, tag, record.id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return record;
}

absl::StatusOr<JobRecord> SqlStore::GetJob(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->LoadJob(id, &tenant);
}

absl::StatusOr<Page<JobRecord>> SqlStore::ListJobs(const std::string& tenant,
                                                   std::optional<JobState> state, int page_size,
                                                   const std::string& page_token) {
  STORE_ASSIGN_OR_RETURN(const int limit, NormalizePageSize(page_size));
  STORE_ASSIGN_OR_RETURN(const int64_t after, DecodePageToken(PageKind::kJobs, page_token));
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(
      Statement st, impl_->db->Prepare(absl::StrCat(
                        "SELECT ", kJobColumns, " FROM jobs WHERE tenant = ?1 AND seq > ?2",
                        state.has_value() ? " AND state = ?4" : "", " ORDER BY seq LIMIT ?3")));
  st.BindText(1, tenant).BindInt64(2, after).BindInt64(3, limit + 1);
  if (state.has_value()) st.BindInt64(4, static_cast<int>(*state));
  Page<JobRecord> page;
  int64_t last_seq = 0;
  while (true) {
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_page_token = EncodePageToken(PageKind::kJobs, last_seq);
      break;
    }
    STORE_ASSIGN_OR_RETURN(JobRecord job, ReadJob(st, &last_seq));
    page.items.push_back(std::move(job));
  }
  for (JobRecord& job : page.items) {
    if (job.state != JobState::kSucceeded) continue;
    STORE_ASSIGN_OR_RETURN(job.warnings, impl_->LoadWarnings(job.id));
  }
  return page;
}

absl::StatusOr<std::map<std::string, int64_t>> SqlStore::CountJobsByState() {
  std::map<std::string, int64_t> counts;
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    counts[std::string(JobStateName(state))] = 0;
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Statement st,
                         impl_->db->Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  while (true) {
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    const auto state = static_cast<JobState>(st.ColumnInt64(0));
    counts[std::string(JobStateName(state))] = st.ColumnInt64(1);
  }
  return counts;
}

absl::StatusOr<std::optional<JobRecord>> SqlStore::ClaimNextQueuedJob() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  // SQLite: BEGIN IMMEDIATE holds the write lock from the SELECT to the
  // COMMIT, so a second process cannot claim the same row. PostgreSQL: the
  // row is locked by the SELECT, and other claimers skip it rather than
  // wait (so claims from many workers do not queue behind each other).
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRowLocks));
  const int64_t now = NowMs();
  // A RUNNING job whose lease expired was abandoned by a dead worker:
  // claimed like a queued one (resumed from its checkpoint), one crash more,
  // or FAILED past max_crashes and the next candidate tried.
  std::string id;
  std::string token;
  while (id.empty()) {
    std::string candidate;
    JobState state = JobState::kQueued;
    int64_t crashes = 0;
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare(absl::StrCat("SELECT id, state, crash_count FROM jobs WHERE state = ?1 OR "
                                  "(state = ?2 AND lease_expires_ms > 0 AND lease_expires_ms < ?3) "
                                  "ORDER BY seq LIMIT 1",
                                  db.SkipLockedClause())));
      st.BindInt64(1, static_cast<int>(JobState::kQueued))
          .BindInt64(2, static_cast<int>(JobState::kRunning))
          .BindInt64(3, now);
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) {
        STORE_RETURN_IF_ERROR(txn.Commit());  // keeps the poisoned jobs' FAILED
        return std::optional<JobRecord>();
      }
      candidate = st.ColumnText(0);
      state = static_cast<JobState>(st.ColumnInt64(1));
      crashes = st.ColumnInt64(2);
    }
    const bool abandoned = state == JobState::kRunning;
    if (abandoned && crashes + 1 > impl_->max_crashes) {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare("UPDATE jobs SET state = ?1, finished_ms = ?2, error = ?3, crash_count = "
                     "crash_count + 1, lease_owner = '', lease_expires_ms = 0 WHERE id = ?4"));
      st.BindInt64(1, static_cast<int>(JobState::kFailed))
          .BindInt64(2, now)
          .BindText(3, absl::StrCat("its worker died ", crashes + 1,
                                    " times while running it (its lease expired each time); "
                                    "not resumed: resubmit with smaller settings"))
          .BindText(4, candidate);
      STORE_RETURN_IF_ERROR(st.Run());
      STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(candidate));
      continue;
    }
    token = absl::StrCat(impl_->instance, ":", ++impl_->claims);
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("UPDATE jobs SET state = ?1, started_ms = ?2, lease_owner = ?3, "
                   "lease_expires_ms = ?4, crash_count = crash_count + ?5 WHERE id = ?6 AND "
                   "state = ?7"));
    st.BindInt64(1, static_cast<int>(JobState::kRunning))
        .BindInt64(2, now)
        .BindText(3, token)
        .BindInt64(4, now + impl_->lease_ms)
        .BindInt64(5, abandoned ? 1 : 0)
        .BindText(6, candidate)
        .BindInt64(7, static_cast<int>(state));
    STORE_RETURN_IF_ERROR(st.Run());
    if (db.Changes() != 1) {
      return absl::InternalError(
          absl::StrCat("job ", candidate, " changed state during its claim"));
    }
    id = candidate;
  }
  STORE_ASSIGN_OR_RETURN(JobRecord job, impl_->LoadJob(id, nullptr));
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases[id] = token;
  return std::optional<JobRecord>(std::move(job));
}

absl::Status SqlStore::UpdateJobProgress(const std::string& job_id,
                                         const JobProgressRecord& progress,
                                         int64_t dropped_rows_per_epoch,
                                         const WidthHistoryRecord* history) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(RequireRunning(job, "recording progress"));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  STORE_RETURN_IF_ERROR(impl_->ExtendLease(job_id));
  STORE_RETURN_IF_ERROR(impl_->WriteProgress(job_id, progress));
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("UPDATE jobs SET dropped_rows_per_epoch = ?1 WHERE id = ?2"));
    st.BindInt64(1, dropped_rows_per_epoch).BindText(2, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  if (history != nullptr) STORE_RETURN_IF_ERROR(impl_->WriteHistory(job_id, *history));
  return txn.Commit();
}

absl::Status SqlStore::SaveCheckpoint(const std::string& job_id, const agt::TrainState& state,
                                      const JobProgressRecord& progress,
                                      const WidthHistoryRecord* history) {
  const std::string blob = EncodeTrainState(state);
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(RequireRunning(job, "saving a checkpoint"));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  STORE_RETURN_IF_ERROR(impl_->ExtendLease(job_id));
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("INSERT INTO checkpoints (job_id, step, state, saved_ms) "
                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (job_id) DO UPDATE SET "
                   "step = excluded.step, state = excluded.state, saved_ms = excluded.saved_ms"));
    st.BindText(1, job_id).BindInt64(2, state.step).BindBlob(3, blob).BindInt64(4, NowMs());
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->WriteProgress(job_id, progress));
  if (history != nullptr) STORE_RETURN_IF_ERROR(impl_->WriteHistory(job_id, *history));
  return txn.Commit();
}

absl::StatusOr<std::optional<agt::TrainState>> SqlStore::LoadCheckpoint(const std::string& job_id) {
  std::string blob;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    SqlDb& db = *impl_->db;
    STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
    STORE_RETURN_IF_ERROR(impl_->LoadJob(job_id, nullptr).status());
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("SELECT state FROM checkpoints WHERE job_id = ?1"));
    st.BindText(1, job_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return std::optional<agt::TrainState>();
    blob = std::string(st.ColumnBlob(0));
  }
  absl::StatusOr<agt::TrainState> state = DecodeTrainState(blob);
  if (!state.ok()) return InRecord(state.status(), absl::StrCat("checkpoint of job ", job_id));
  return std::optional<agt::TrainState>(*std::move(state));
}

absl::StatusOr<std::string> SqlStore::CompleteJob(const std::string& job_id, ModelRecord model,
                                                  const JobProgressRecord& progress,
                                                  const WidthHistoryRecord* history) {
  STORE_RETURN_IF_ERROR(CheckModelShapes(model));
  STORE_ASSIGN_OR_RETURN(model.id, NewRandomId(kModelIdPrefix));
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(CheckTransition(job, JobState::kSucceeded));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  STORE_RETURN_IF_ERROR(FillFromJob(&model.tenant, job.tenant, "tenant", job));
  STORE_RETURN_IF_ERROR(FillFromJob(&model.job_id, job.id, "job_id", job));
  STORE_RETURN_IF_ERROR(FillFromJob(&model.dataset_id, job.dataset_id, "dataset_id", job));
  if (model.spec.empty()) model.spec = job.spec;
  const int64_t now = NowMs();
  model.created_ms = now;
  STORE_RETURN_IF_ERROR(impl_->InsertModel(model));
  STORE_RETURN_IF_ERROR(impl_->SetJobState(job, JobState::kSucceeded, now));
  STORE_RETURN_IF_ERROR(impl_->WriteProgress(job_id, progress));
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("UPDATE jobs SET model_id = ?1 WHERE id = ?2"));
    st.BindText(1, model.id).BindText(2, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->WriteWarnings(job_id, model.warnings));
  if (history != nullptr) STORE_RETURN_IF_ERROR(impl_->WriteHistory(job_id, *history));
  STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(job_id));
  STORE_RETURN_IF_ERROR(impl_->DeleteUnits(job_id));
  STORE_RETURN_IF_ERROR(impl_->ClearLease(job_id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases.erase(job_id);
  return model.id;
}

absl::Status SqlStore::FailJob(const std::string& job_id, const std::string& error) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(CheckTransition(job, JobState::kFailed));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  STORE_RETURN_IF_ERROR(impl_->SetJobState(job, JobState::kFailed, NowMs()));
  STORE_RETURN_IF_ERROR(impl_->ClearLease(job_id));
  impl_->leases.erase(job_id);  // whether or not the commit succeeds: not ours to renew
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("UPDATE jobs SET error = ?1 WHERE id = ?2"));
    st.BindText(1, error).BindText(2, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(job_id));
  STORE_RETURN_IF_ERROR(impl_->DeleteUnits(job_id));
  return txn.Commit();
}

absl::StatusOr<JobRecord> SqlStore::RequestCancel(const std::string& tenant,
                                                  const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(id, &tenant, /*lock_row=*/true));
  if (IsFinal(job.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id, " is already ", StateName(job.state),
                     "; only QUEUED or RUNNING jobs can be cancelled"));
  }
  if (job.state == JobState::kQueued) {
    STORE_RETURN_IF_ERROR(impl_->SetJobState(job, JobState::kCancelled, NowMs()));
    STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(job.id));
  }
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1"));
    st.BindText(1, job.id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_ASSIGN_OR_RETURN(JobRecord after, impl_->LoadJob(id, &tenant));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return after;
}

absl::Status SqlStore::MarkCancelled(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(CheckTransition(job, JobState::kCancelled));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  STORE_RETURN_IF_ERROR(impl_->SetJobState(job, JobState::kCancelled, NowMs()));
  STORE_RETURN_IF_ERROR(impl_->ClearLease(job_id));
  impl_->leases.erase(job_id);
  STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(job_id));
  STORE_RETURN_IF_ERROR(impl_->DeleteUnits(job_id));
  return txn.Commit();
}

absl::StatusOr<bool> SqlStore::IsCancelRequested(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Statement st,
                         impl_->db->Prepare("SELECT cancel_requested FROM jobs WHERE id = ?1"));
  st.BindText(1, job_id);
  STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return NotFound("job", job_id);
  return st.ColumnInt64(0) != 0;
}

absl::StatusOr<WidthHistoryRecord> SqlStore::GetWidthHistory(const std::string& job_id,
                                                             const std::string* tenant) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->LoadJob(job_id, tenant).status());
  STORE_ASSIGN_OR_RETURN(WidthHistoryRecord history, impl_->ReadHistory(job_id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return history;
}

absl::StatusOr<int> SqlStore::RequeueRunningJobs() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  int64_t count = 0;
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("UPDATE jobs SET state = ?1, lease_owner = '', "
                                                    "lease_expires_ms = 0 WHERE state = ?2"));
    st.BindInt64(1, static_cast<int>(JobState::kQueued))
        .BindInt64(2, static_cast<int>(JobState::kRunning));
    STORE_RETURN_IF_ERROR(st.Run());
    count = db.Changes();
  }
  STORE_RETURN_IF_ERROR(impl_->RequeueAllUnits());
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases.clear();
  return static_cast<int>(count);
}

absl::StatusOr<JobRecovery> SqlStore::RecoverAbandonedJobs(int max_crashes) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  JobRecovery recovery;
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st, db.Prepare("UPDATE jobs SET crash_count = crash_count + 1 WHERE state = ?1"));
    st.BindInt64(1, static_cast<int>(JobState::kRunning));
    STORE_RETURN_IF_ERROR(st.Run());
  }
  std::vector<std::pair<std::string, int64_t>> poison;
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT id, crash_count FROM jobs WHERE state = ?1 AND crash_count > ?2"));
    st.BindInt64(1, static_cast<int>(JobState::kRunning)).BindInt64(2, max_crashes);
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      poison.emplace_back(st.ColumnText(0), st.ColumnInt64(1));
    }
  }
  const int64_t now = NowMs();
  for (const auto& [id, crashes] : poison) {
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare("UPDATE jobs SET state = ?1, finished_ms = ?2, error = ?3, lease_owner = '', "
                     "lease_expires_ms = 0 WHERE id = ?4"));
      st.BindInt64(1, static_cast<int>(JobState::kFailed))
          .BindInt64(2, now)
          .BindText(3, absl::StrCat("crashed the server ", crashes,
                                    " times (it was running each time the server process died); "
                                    "not resumed: resubmit with smaller settings"))
          .BindText(4, id);
      STORE_RETURN_IF_ERROR(st.Run());
    }
    STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(id));
  }
  recovery.failed = static_cast<int>(poison.size());
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("UPDATE jobs SET state = ?1, lease_owner = '', "
                                                    "lease_expires_ms = 0 WHERE state = ?2"));
    st.BindInt64(1, static_cast<int>(JobState::kQueued))
        .BindInt64(2, static_cast<int>(JobState::kRunning));
    STORE_RETURN_IF_ERROR(st.Run());
    recovery.requeued = static_cast<int>(db.Changes());
  }
  STORE_RETURN_IF_ERROR(impl_->RequeueAllUnits());
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases.clear();
  return recovery;
}

int64_t SqlStore::MaxBlobBytes() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->db->MaxBlobBytes();
}

absl::Status SqlStore::DeleteJob(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(id, &tenant));
  if (job.state == JobState::kQueued || job.state == JobState::kRunning) {
    return WithMetadata(WithReason(absl::FailedPreconditionError(
                                       absl::StrCat("job ", id, " is ", StateName(job.state),
                                                    "; cancel it or wait for it to finish")),
                                   kReasonJobState),
                        "job_id", id);
  }
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("SELECT id FROM models WHERE job_id = ?1"));
    st.BindText(1, id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      const std::string model = st.ColumnText(0);
      absl::Status refused = absl::FailedPreconditionError(
          absl::StrCat("job ", id, " produced model ", model, "; delete the model first"));
      refused = WithReason(std::move(refused), kReasonModelExists);
      refused = WithMetadata(std::move(refused), "job_id", id);
      return WithMetadata(std::move(refused), "model_id", model);
    }
  }
  // A retraining record naming this job is dropped only when it retrained in
  // place: the record of one that trained on a compacted copy is the privacy
  // ledger's lineage (RootDatasetOf reads its model and dataset, not the job),
  // so it stays, naming a job that no longer exists.
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("DELETE FROM retrainings WHERE job_id = ?1 AND dataset_id = "
                   "(SELECT m.dataset_id FROM models m WHERE m.id = retrainings.model_id)"));
    st.BindText(1, id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(id));
  {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare("DELETE FROM jobs WHERE id = ?1"));
    st.BindText(1, id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  return txn.Commit();
}

// ---- models

absl::StatusOr<ModelRecord> SqlStore::GetModel(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
  ModelRecord model;
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare(absl::StrCat("SELECT ", kModelColumns,
                                                   " FROM models WHERE id = ?1 AND tenant = ?2")));
    st.BindText(1, id).BindText(2, tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("model", id);
    int64_t seq = 0;
    STORE_ASSIGN_OR_RETURN(model, ReadModel(st, &seq));
  }
  STORE_RETURN_IF_ERROR(impl_->LoadBoxes(&model));
  STORE_ASSIGN_OR_RETURN(model.warnings, impl_->LoadWarnings(model.job_id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return model;
}

absl::StatusOr<Page<ModelRecord>> SqlStore::ListModels(const std::string& tenant, int page_size,
                                                       const std::string& page_token) {
  STORE_ASSIGN_OR_RETURN(const int limit, NormalizePageSize(page_size));
  STORE_ASSIGN_OR_RETURN(const int64_t after, DecodePageToken(PageKind::kModels, page_token));
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
  Page<ModelRecord> page;
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare(absl::StrCat("SELECT ", kModelColumns,
                                                   " FROM models WHERE tenant = ?1 AND seq > ?2 "
                                                   "ORDER BY seq LIMIT ?3")));
    st.BindText(1, tenant).BindInt64(2, after).BindInt64(3, limit + 1);
    int64_t last_seq = 0;
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      if (static_cast<int>(page.items.size()) == limit) {
        page.next_page_token = EncodePageToken(PageKind::kModels, last_seq);
        break;
      }
      STORE_ASSIGN_OR_RETURN(ModelRecord model, ReadModel(st, &last_seq));
      page.items.push_back(std::move(model));
    }
  }
  for (ModelRecord& model : page.items) {
    STORE_RETURN_IF_ERROR(impl_->LoadBoxes(&model));
    STORE_ASSIGN_OR_RETURN(model.warnings, impl_->LoadWarnings(model.job_id));
  }
  STORE_RETURN_IF_ERROR(txn.Commit());
  return page;
}

absl::Status SqlStore::DeleteModel(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  std::string model_dataset;
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st, db.Prepare("SELECT dataset_id FROM models WHERE id = ?1 AND tenant = ?2"));
    st.BindText(1, id).BindText(2, tenant);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return NotFound("model", id);
    model_dataset = st.ColumnText(0);
  }
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT r.job_id, r.dataset_id, COALESCE(j.state, 0) FROM retrainings r "
                   "LEFT JOIN jobs j ON j.id = r.job_id WHERE r.model_id = ?1"));
    st.BindText(1, id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      const std::string job_id = st.ColumnText(0);
      const std::string derived = st.ColumnText(1);
      const auto state = static_cast<JobState>(st.ColumnInt64(2));  // 0: job deleted
      if (state == JobState::kQueued || state == JobState::kRunning) {
        absl::Status refused = absl::FailedPreconditionError(
            absl::StrCat("model ", id, " has a ", StateName(state), " retraining, job ", job_id,
                         "; cancel the job or wait for it to finish"));
        refused = WithReason(std::move(refused), kReasonRetrainingInProgress);
        refused = WithMetadata(std::move(refused), "model_id", id);
        return WithMetadata(std::move(refused), "job_id", job_id);
      }
      // A retraining of servers before issue 17 trained on a compacted copy:
      // the privacy budget of that copy is its root's, found through this
      // model (RootDatasetOf). Deleting the link would give the copy a fresh
      // budget.
      if (derived != model_dataset) {
        absl::Status refused = absl::FailedPreconditionError(absl::StrCat(
            "model ", id, " links dataset ", derived, " to the privacy ledger of dataset ",
            model_dataset, " (its retraining trained on that copy); it cannot be deleted"));
        refused = WithReason(std::move(refused), kReasonPrivacyLineage);
        refused = WithMetadata(std::move(refused), "model_id", id);
        return WithMetadata(std::move(refused), "dataset_id", derived);
      }
    }
  }
  // The model's own ledgers go with it: its deletion ledger certifies this
  // model only, and the retraining record is no lineage step (checked above).
  // The legacy per-model privacy rows (schema 3) were moved to the dataset's
  // ledger by migration 6 and are no longer read; the dataset's ledger stays,
  // so a model trained again on the same data spends from the same budget.
  for (const char* sql :
       {"DELETE FROM deletions WHERE model_id = ?1", "DELETE FROM retrainings WHERE model_id = ?1",
        "DELETE FROM privacy_budgets WHERE model_id = ?1", "DELETE FROM models WHERE id = ?1"}) {
    STORE_ASSIGN_OR_RETURN(Statement st, db.Prepare(sql));
    st.BindText(1, id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  return txn.Commit();
}

// ---- unlearning

absl::StatusOr<Store::DeletionWriteResult> SqlStore::AppendDeletions(
    const std::string& tenant, const std::string& model_id, const std::string& requested_by,
    const RequestTag& tag, const DeletionDecider& decide) {
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  // One write transaction from the read of the ledger to the insert: another
  // process cannot slip a deletion in between (BEGIN IMMEDIATE).
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  DeletionWriteResult out;
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> first,
                         impl_->FindRequest(tenant, RequestKind::kDeletion, tag));
  if (first.has_value()) {
    // A retry: the first answer, and nothing recorded again.
    out.answer = *std::move(first);
    out.replayed = true;
    STORE_RETURN_IF_ERROR(txn.Commit());
    return out;
  }
  STORE_ASSIGN_OR_RETURN(const std::vector<DeletionRecord> ledger, impl_->LoadDeletions(model_id));
  std::vector<int64_t> accepted;
  for (const DeletionRecord& r : ledger) {
    if (r.accepted) accepted.push_back(r.row_id);
  }
  STORE_ASSIGN_OR_RETURN(DeletionWrite write, decide(accepted));
  // A refused row (recorded past max N) becomes accepted when a later, smaller
  // request fits; a refused request never downgrades an accepted row.
  STORE_ASSIGN_OR_RETURN(
      Statement st,
      db.Prepare("INSERT INTO deletions (model_id, tenant, row_id, requested_by, requested_ms, "
                 "accepted) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (model_id, row_id) DO "
                 "UPDATE SET accepted = CASE WHEN excluded.accepted > deletions.accepted THEN "
                 "excluded.accepted ELSE deletions.accepted END"));
  for (int64_t row : write.rows) {
    st.BindText(1, model_id)
        .BindText(2, tenant)
        .BindInt64(3, row)
        .BindText(4, requested_by)
        .BindInt64(5, now)
        .BindInt64(6, write.accepted ? 1 : 0);
    STORE_RETURN_IF_ERROR(st.Run());
    st.Reset();
  }
  out.answer = std::move(write.answer);
  STORE_RETURN_IF_ERROR(impl_->SaveRequest(tenant, RequestKind::kDeletion, tag, out.answer));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return out;
}

absl::StatusOr<std::vector<DeletionRecord>> SqlStore::ListDeletions(const std::string& tenant,
                                                                    const std::string& model_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  STORE_ASSIGN_OR_RETURN(std::vector<DeletionRecord> ledger, impl_->LoadDeletions(model_id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return ledger;
}

absl::StatusOr<Page<DeletionRecord>> SqlStore::ListDeletionPage(const std::string& tenant,
                                                                const std::string& model_id,
                                                                int page_size,
                                                                const std::string& page_token) {
  STORE_ASSIGN_OR_RETURN(const int limit, NormalizePageSize(page_size));
  STORE_ASSIGN_OR_RETURN(const int64_t first_row,
                         DecodePageToken(PageKind::kDeletions, page_token));
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  // One row more than the page tells whether another page follows.
  STORE_ASSIGN_OR_RETURN(std::vector<DeletionRecord> rows,
                         impl_->LoadDeletions(model_id, first_row, int64_t{limit} + 1));
  STORE_RETURN_IF_ERROR(txn.Commit());
  Page<DeletionRecord> page;
  if (static_cast<int64_t>(rows.size()) > limit) {
    page.next_page_token = EncodePageToken(PageKind::kDeletions, rows[limit].row_id);
    rows.resize(limit);
  }
  page.items = std::move(rows);
  return page;
}

absl::StatusOr<int64_t> SqlStore::CountAcceptedDeletions(const std::string& tenant,
                                                         const std::string& model_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  int64_t count = 0;
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT count(*) FROM deletions WHERE model_id = ?1 AND accepted = 1"));
    st.BindText(1, model_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) count = st.ColumnInt64(0);
  }
  STORE_RETURN_IF_ERROR(txn.Commit());
  return count;
}

absl::Status SqlStore::RecordRetraining(const std::string& tenant, const RetrainingRecord& record) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, record.model_id));
  STORE_RETURN_IF_ERROR(impl_->LoadJob(record.job_id, &tenant).status());
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("INSERT INTO retrainings (model_id, tenant, job_id, dataset_id, requested_ms) "
                   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (model_id) DO UPDATE SET tenant = "
                   "excluded.tenant, job_id = excluded.job_id, dataset_id = excluded.dataset_id, "
                   "requested_ms = excluded.requested_ms"));
    st.BindText(1, record.model_id)
        .BindText(2, tenant)
        .BindText(3, record.job_id)
        .BindText(4, record.dataset_id)
        .BindInt64(5, record.requested_ms != 0 ? record.requested_ms : NowMs());
    STORE_RETURN_IF_ERROR(st.Run());
  }
  return txn.Commit();
}

absl::StatusOr<std::optional<RetrainingRecord>> SqlStore::GetRetraining(
    const std::string& tenant, const std::string& model_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  std::optional<RetrainingRecord> out;
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT job_id, dataset_id, requested_ms FROM retrainings WHERE model_id = ?1"));
    st.BindText(1, model_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      RetrainingRecord r;
      r.model_id = model_id;
      r.job_id = st.ColumnText(0);
      r.dataset_id = st.ColumnText(1);
      r.requested_ms = st.ColumnInt64(2);
      out = std::move(r);
    }
  }
  STORE_RETURN_IF_ERROR(txn.Commit());
  return out;
}

absl::StatusOr<std::optional<std::string>> SqlStore::FindRequest(const std::string& tenant,
                                                                 RequestKind kind,
                                                                 const RequestTag& tag) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db, Mode::kRead));
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> found, impl_->FindRequest(tenant, kind, tag));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return found;
}

absl::StatusOr<PrivacyDebitResult> SqlStore::DebitPrivacyBudget(
    const std::string& tenant, const std::string& model_id, const PrivacyDebit& debit,
    const RequestTag& tag, const std::function<std::string(const PrivacySpendRecord&)>& answer) {
  STORE_RETURN_IF_ERROR(CheckPrivacyDebit(debit));
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  // BEGIN IMMEDIATE: the lookup of the request, the read of `spent` and the
  // writes of the new sum and of the answer are one step for every
  // connection to the file.
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  PrivacyDebitResult out;
  STORE_ASSIGN_OR_RETURN(out.record, impl_->LoadPrivacySpend(tenant, model_id, debit.client));
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> earlier,
                         impl_->FindRequest(tenant, RequestKind::kPrivatePredict, tag));
  if (earlier.has_value()) {
    out.response = *std::move(earlier);
    out.replayed = true;
    STORE_RETURN_IF_ERROR(txn.Commit());
    return out;
  }
  if (!DebitFits(out.record, debit)) return out;  // rolled back: nothing changed
  ApplyDebit(debit, now, &out.record);
  STORE_RETURN_IF_ERROR(impl_->StorePrivacySpend(tenant, out.record));
  out.debited = true;
  out.response = answer(out.record);
  STORE_RETURN_IF_ERROR(
      impl_->SaveRequest(tenant, RequestKind::kPrivatePredict, tag, out.response));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return out;
}

absl::StatusOr<PrivacySpendRecord> SqlStore::GetPrivacySpend(const std::string& tenant,
                                                             const std::string& model_id,
                                                             const std::string& client) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*impl_->db, Mode::kRead));
  STORE_RETURN_IF_ERROR(impl_->RequireModel(tenant, model_id));
  STORE_ASSIGN_OR_RETURN(PrivacySpendRecord record,
                         impl_->LoadPrivacySpend(tenant, model_id, client));
  STORE_RETURN_IF_ERROR(txn.Commit());
  return record;
}

// ---------------------------------------------------------------- job units
// Unit states as stored in job_units.state.
namespace {
constexpr int kUnitQueued = 1;
constexpr int kUnitRunning = 2;
constexpr int kUnitDone = 3;

std::string UnitKey(const std::string& job_id, int unit) { return absl::StrCat(job_id, "#", unit); }

absl::StatusOr<std::vector<int>> ParseUnitBudgets(const std::string& job_id, int unit,
                                                  const std::string& text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 0) {
      return absl::DataLossError(absl::StrCat(
          "job ", job_id, " unit ", unit, ": stored budget list \"", text, "\" does not parse"));
    }
    out.push_back(v);
  }
  return out;
}
}  // namespace

absl::Status SqlStore::SplitJob(const std::string& job_id,
                                const std::vector<std::vector<int>>& groups) {
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("job ", job_id, ": unit ", g, " of the split has no budget"));
    }
  }
  if (groups.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("job ", job_id, ": a split needs a unit"));
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_ASSIGN_OR_RETURN(const JobRecord job, impl_->LoadJob(job_id, nullptr, /*lock_row=*/true));
  STORE_RETURN_IF_ERROR(RequireRunning(job, "splitting it into units"));
  STORE_RETURN_IF_ERROR(impl_->RequireLease(job_id));
  int64_t existing = 0;
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("SELECT COUNT(*) FROM job_units WHERE job_id = ?1"));
    st.BindText(1, job_id);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) existing = st.ColumnInt64(0);
  }
  if (existing == 0) {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("INSERT INTO job_units (job_id, unit, budgets, state, job_seq) VALUES (?1, ?2, "
                   "?3, ?4, (SELECT seq FROM jobs WHERE id = ?1))"));
    for (size_t g = 0; g < groups.size(); ++g) {
      st.BindText(1, job_id)
          .BindInt64(2, static_cast<int64_t>(g))
          .BindText(3, absl::StrJoin(groups[g], ","))
          .BindInt64(4, kUnitQueued);
      STORE_RETURN_IF_ERROR(st.Run());
      st.Reset();
    }
  }
  // The job keeps RUNNING without a lease (lease_expires_ms 0 is never
  // "expired"), so ClaimNextQueuedJob leaves it to its units.
  STORE_RETURN_IF_ERROR(impl_->ClearLease(job_id));
  STORE_RETURN_IF_ERROR(txn.Commit());
  impl_->leases.erase(job_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<JobUnitRecord>> SqlStore::ClaimNextJobUnit() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRowLocks));
  const int64_t now = NowMs();
  while (true) {
    std::string job_id;
    int unit = 0;
    int state = kUnitQueued;
    int64_t crashes = 0;
    std::string budgets;
    std::string checkpoint;
    std::string result;
    {
      // The jobs are read in a subquery, so only the unit row is locked:
      // claimers skip each other's units, not each other's jobs.
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare(absl::StrCat(
              "SELECT job_id, unit, state, crash_count, budgets, checkpoint, result, "
              "CASE WHEN checkpoint IS NULL THEN 0 ELSE 1 END, "
              "CASE WHEN result IS NULL THEN 0 ELSE 1 END FROM job_units WHERE "
              "(state = ?1 OR (state = ?2 AND lease_expires_ms > 0 AND lease_expires_ms < ?3)) "
              "AND job_id IN (SELECT id FROM jobs WHERE state = ?4) ORDER BY job_seq, unit LIMIT 1",
              db.SkipLockedClause())));
      st.BindInt64(1, kUnitQueued)
          .BindInt64(2, kUnitRunning)
          .BindInt64(3, now)
          .BindInt64(4, static_cast<int>(JobState::kRunning));
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) {
        STORE_RETURN_IF_ERROR(txn.Commit());  // keeps a poisoned job's FAILED
        return std::optional<JobUnitRecord>();
      }
      job_id = st.ColumnText(0);
      unit = static_cast<int>(st.ColumnInt64(1));
      state = static_cast<int>(st.ColumnInt64(2));
      crashes = st.ColumnInt64(3);
      budgets = st.ColumnText(4);
      if (st.ColumnInt64(7) != 0) checkpoint = std::string(st.ColumnBlob(5));
      if (st.ColumnInt64(8) != 0) result = std::string(st.ColumnBlob(6));
    }
    const bool abandoned = state == kUnitRunning;
    STORE_ASSIGN_OR_RETURN(JobRecord job, impl_->LoadJob(job_id, nullptr));
    if (abandoned && crashes + 1 > impl_->max_crashes) {
      // As ClaimNextQueuedJob's poison guard, for the whole job: a unit
      // whose workers keep dying fails its job.
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare("UPDATE jobs SET state = ?1, finished_ms = ?2, error = ?3, lease_owner = '', "
                     "lease_expires_ms = 0 WHERE id = ?4 AND state = ?5"));
      st.BindInt64(1, static_cast<int>(JobState::kFailed))
          .BindInt64(2, now)
          .BindText(3, absl::StrCat("the worker of its unit ", unit, " died ", crashes + 1,
                                    " times while running it (its lease expired each time); "
                                    "not resumed: resubmit with smaller settings"))
          .BindText(4, job_id)
          .BindInt64(5, static_cast<int>(JobState::kRunning));
      STORE_RETURN_IF_ERROR(st.Run());
      STORE_RETURN_IF_ERROR(impl_->DeleteCheckpoint(job_id));
      STORE_RETURN_IF_ERROR(impl_->DeleteUnits(job_id));
      continue;
    }
    const std::string token = absl::StrCat(impl_->instance, ":", ++impl_->claims);
    {
      STORE_ASSIGN_OR_RETURN(
          Statement st,
          db.Prepare("UPDATE job_units SET state = ?1, lease_owner = ?2, lease_expires_ms = ?3, "
                     "crash_count = crash_count + ?4 WHERE job_id = ?5 AND unit = ?6"));
      st.BindInt64(1, kUnitRunning)
          .BindText(2, token)
          .BindInt64(3, now + impl_->lease_ms)
          .BindInt64(4, abandoned ? 1 : 0)
          .BindText(5, job_id)
          .BindInt64(6, unit);
      STORE_RETURN_IF_ERROR(st.Run());
    }
    JobUnitRecord out;
    out.job = std::move(job);
    out.unit = unit;
    STORE_ASSIGN_OR_RETURN(out.budget_indices, ParseUnitBudgets(job_id, unit, budgets));
    if (!checkpoint.empty()) {
      absl::StatusOr<agt::TrainState> cp = DecodeTrainState(checkpoint);
      if (!cp.ok()) {
        return InRecord(cp.status(), absl::StrCat("checkpoint of job ", job_id, " unit ", unit));
      }
      out.checkpoint = *std::move(cp);
    }
    if (!result.empty()) {
      absl::StatusOr<agt::TrainState> r = DecodeTrainState(result);
      if (!r.ok()) {
        return InRecord(r.status(), absl::StrCat("result of job ", job_id, " unit ", unit));
      }
      out.result = *std::move(r);
    }
    STORE_RETURN_IF_ERROR(txn.Commit());
    impl_->unit_leases[UnitKey(job_id, unit)] = token;
    return std::optional<JobUnitRecord>(std::move(out));
  }
}

namespace {
// The unit's lease check and renewal, in the caller's write transaction:
// NotFound when the unit is gone (its job ended), Aborted when another
// worker holds it now.
absl::Status RequireUnitLease(SqlDb& db, const std::map<std::string, std::string>& unit_leases,
                              const std::string& job_id, int unit, int64_t lease_until) {
  auto it = unit_leases.find(UnitKey(job_id, unit));
  STORE_ASSIGN_OR_RETURN(
      Statement st,
      db.Prepare(absl::StrCat("SELECT lease_owner FROM job_units WHERE job_id = ?1 AND unit = ?2",
                              db.RowLockClause())));
  st.BindText(1, job_id).BindInt64(2, unit);
  STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no unit ", unit,
                                            " (the job ended: completed, failed or cancelled)"));
  }
  if (it == unit_leases.end() || st.ColumnText(0) != it->second) {
    return absl::AbortedError(absl::StrCat(
        "job ", job_id, " unit ", unit,
        " was claimed by another worker after this worker's lease expired; this worker's work "
        "on it is discarded"));
  }
  st.Reset();
  STORE_ASSIGN_OR_RETURN(
      Statement up,
      db.Prepare("UPDATE job_units SET lease_expires_ms = ?1 WHERE job_id = ?2 AND unit = ?3"));
  up.BindInt64(1, lease_until).BindText(2, job_id).BindInt64(3, unit);
  return up.Run();
}

// The job's progress from its units' (store.h, UpdateJobUnitProgress).
absl::Status AggregateUnitProgress(SqlDb& db, const std::string& job_id,
                                   const JobProgressRecord& latest) {
  STORE_ASSIGN_OR_RETURN(
      Statement st,
      db.Prepare("SELECT unit, budgets, iteration, nominal_loss, widths, "
                 "CASE WHEN widths IS NULL THEN 0 ELSE 1 END FROM job_units WHERE job_id = ?1 "
                 "ORDER BY unit"));
  st.BindText(1, job_id);
  JobProgressRecord p = latest;
  p.iteration = latest.total_iterations;
  std::map<int, double> widths;  // by budget index
  while (true) {
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    const int unit = static_cast<int>(st.ColumnInt64(0));
    STORE_ASSIGN_OR_RETURN(std::vector<int> budgets,
                           ParseUnitBudgets(job_id, unit, st.ColumnText(1)));
    if (st.ColumnInt64(2) < p.iteration) {
      p.iteration = st.ColumnInt64(2);
      p.nominal_loss = st.ColumnDouble(3);
    }
    std::vector<double> w;
    if (st.ColumnInt64(5) != 0) {
      STORE_ASSIGN_OR_RETURN(w, DecodeDoubles(st.ColumnBlob(4)));
    }
    for (size_t k = 0; k < budgets.size(); ++k) {
      widths[budgets[k]] = k < w.size() ? w[k] : 0.0;
    }
  }
  p.total_width.clear();
  for (const auto& [index, width] : widths) p.total_width.push_back(width);
  STORE_ASSIGN_OR_RETURN(
      Statement up, db.Prepare(absl::StrCat("UPDATE jobs SET ", kSetProgress, " WHERE id = ?7")));
  BindProgress(up, p);
  up.BindText(7, job_id);
  return up.Run();
}
}  // namespace

absl::Status SqlStore::UpdateJobUnitProgress(const std::string& job_id, int unit,
                                             const JobProgressRecord& progress,
                                             int64_t dropped_rows_per_epoch) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(
      RequireUnitLease(db, impl_->unit_leases, job_id, unit, NowMs() + impl_->lease_ms));
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("UPDATE job_units SET iteration = ?1, nominal_loss = ?2, "
                                      "widths = ?3 WHERE job_id = ?4 AND unit = ?5"));
    st.BindInt64(1, progress.iteration)
        .BindDouble(2, progress.nominal_loss)
        .BindBlob(3, EncodeDoubles(progress.total_width))
        .BindText(4, job_id)
        .BindInt64(5, unit);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(AggregateUnitProgress(db, job_id, progress));
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("UPDATE jobs SET dropped_rows_per_epoch = ?1 WHERE id = ?2"));
    st.BindInt64(1, dropped_rows_per_epoch).BindText(2, job_id);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  return txn.Commit();
}

absl::Status SqlStore::SaveJobUnitCheckpoint(const std::string& job_id, int unit,
                                             const agt::TrainState& state,
                                             const JobProgressRecord& progress) {
  const std::string blob = EncodeTrainState(state);
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(
      RequireUnitLease(db, impl_->unit_leases, job_id, unit, NowMs() + impl_->lease_ms));
  {
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("UPDATE job_units SET iteration = ?1, nominal_loss = ?2, widths = ?3, "
                   "checkpoint = ?4 WHERE job_id = ?5 AND unit = ?6"));
    st.BindInt64(1, progress.iteration)
        .BindDouble(2, progress.nominal_loss)
        .BindBlob(3, EncodeDoubles(progress.total_width))
        .BindBlob(4, blob)
        .BindText(5, job_id)
        .BindInt64(6, unit);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(AggregateUnitProgress(db, job_id, progress));
  return txn.Commit();
}

absl::StatusOr<bool> SqlStore::CompleteJobUnit(const std::string& job_id, int unit,
                                               const agt::TrainState& state) {
  const std::string blob = EncodeTrainState(state);
  std::lock_guard<std::mutex> lock(impl_->mu);
  SqlDb& db = *impl_->db;
  STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kWrite));
  STORE_RETURN_IF_ERROR(
      RequireUnitLease(db, impl_->unit_leases, job_id, unit, NowMs() + impl_->lease_ms));
  int64_t pending = 0;
  {
    STORE_ASSIGN_OR_RETURN(Statement st,
                           db.Prepare("SELECT COUNT(*) FROM job_units WHERE job_id = ?1 AND "
                                      "unit <> ?2 AND result IS NULL"));
    st.BindText(1, job_id).BindInt64(2, unit);
    STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) pending = st.ColumnInt64(0);
  }
  const bool last = pending == 0;
  {
    // The last unit stays RUNNING under its lease until the job completes.
    STORE_ASSIGN_OR_RETURN(
        Statement st, db.Prepare("UPDATE job_units SET result = ?1, state = ?2, lease_owner = ?3, "
                                 "lease_expires_ms = ?4 WHERE job_id = ?5 AND unit = ?6"));
    st.BindBlob(1, blob)
        .BindInt64(2, last ? kUnitRunning : kUnitDone)
        .BindText(3, last ? impl_->unit_leases[UnitKey(job_id, unit)] : std::string())
        .BindInt64(4, last ? NowMs() + impl_->lease_ms : 0)
        .BindText(5, job_id)
        .BindInt64(6, unit);
    STORE_RETURN_IF_ERROR(st.Run());
  }
  STORE_RETURN_IF_ERROR(txn.Commit());
  if (!last) impl_->unit_leases.erase(UnitKey(job_id, unit));
  return last;
}

absl::StatusOr<std::vector<JobUnitResult>> SqlStore::LoadJobUnitResults(const std::string& job_id) {
  std::vector<std::pair<std::vector<int>, std::string>> rows;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    SqlDb& db = *impl_->db;
    STORE_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, Mode::kRead));
    STORE_ASSIGN_OR_RETURN(
        Statement st,
        db.Prepare("SELECT unit, budgets, result, CASE WHEN result IS NULL THEN 0 ELSE 1 END "
                   "FROM job_units WHERE job_id = ?1 ORDER BY unit"));
    st.BindText(1, job_id);
    while (true) {
      STORE_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      const int unit = static_cast<int>(st.ColumnInt64(0));
      if (st.ColumnInt64(3) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", job_id, " unit ", unit, " has no result yet"));
      }
      STORE_ASSIGN_OR_RETURN(std::vector<int> budgets,
                             ParseUnitBudgets(job_id, unit, st.ColumnText(1)));
      rows.emplace_back(std::move(budgets), std::string(st.ColumnBlob(2)));
    }
    STORE_RETURN_IF_ERROR(txn.Commit());
  }
  std::vector<JobUnitResult> out;
  for (auto& [budgets, blob] : rows) {
    absl::StatusOr<agt::TrainState> state = DecodeTrainState(blob);
    if (!state.ok()) return InRecord(state.status(), absl::StrCat("result of job ", job_id));
    out.push_back(JobUnitResult{std::move(budgets), *std::move(state)});
  }
  return out;
}

}  // namespace agt::server
