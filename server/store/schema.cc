#include "server/store/schema.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "server/store/privacy_ledger.h"

namespace agt::server {
namespace {

struct Migration {
  int version;  // user_version after this step
  const char* sql;  // may be empty
  // A data rewrite that SQL cannot express, run after `sql` in the same
  // transaction; nullptr if none.
  absl::Status (*rewrite)(SqlDb& db) = nullptr;
};

// Schema 4 (issue 14, bound methods split from interval products): a stored
// agt.v1.TrainingJobSpec whose bound_method is one of the legacy values 2
// (INTERVAL_EXACT) or 3 (INTERVAL_NGUYEN) becomes BOUND_METHOD_IBP (1) with
// interval_product EXACT (2) / NGUYEN (3). The numbers are written out so that
// this step means the same however the proto evolves. A spec that does not
// parse is left as it is (reading it is DataLoss, as before).
absl::Status UpgradeLegacyBoundMethods(SqlDb& db, const std::string& table) {
  std::vector<std::pair<int64_t, std::string>> rewritten;
  {
    absl::StatusOr<Statement> select = db.Prepare(absl::StrCat("SELECT seq, spec FROM ", table));
    if (!select.ok()) return select.status();
    for (;;) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      agt::v1::TrainingJobSpec spec;
      if (!spec.ParseFromString(std::string(select->ColumnBlob(1)))) continue;
      const int legacy = static_cast<int>(spec.bound_method());
      if (legacy != 2 && legacy != 3) continue;
      if (spec.interval_product() != agt::v1::INTERVAL_PRODUCT_UNSPECIFIED) continue;
      spec.set_bound_method(agt::v1::BOUND_METHOD_IBP);
      spec.set_interval_product(static_cast<agt::v1::IntervalProduct>(legacy));
      rewritten.emplace_back(select->ColumnInt64(0), spec.SerializeAsString());
    }
  }
  for (const auto& [seq, spec] : rewritten) {
    absl::StatusOr<Statement> update =
        db.Prepare(absl::StrCat("UPDATE ", table, " SET spec = ?1 WHERE seq = ?2"));
    if (!update.ok()) return update.status();
    if (absl::Status s = update->BindBlob(1, spec).BindInt64(2, seq).Run(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Conventions of the schema:
// - `seq INTEGER PRIMARY KEY AUTOINCREMENT` is the creation order (never
//   reused, so page tokens stay valid across deletions); `id` is the public id.
// - Tensors are blobs from store/blob.h (versioned, with shape and checksum).
// - Scalar doubles are declared without a type (BLOB affinity), so SQLite keeps
//   the 8-byte double as given; REAL affinity would store -0.0 as integer 0.
//   NaN is stored as NULL (SQLite's rule) and reads back as NaN.
// - Jobs refer to datasets by id without a foreign key: a finished job keeps
//   the id of a dataset that may since have been deleted. DeleteDataset checks
//   for QUEUED/RUNNING jobs itself.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE datasets (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  tenant       TEXT NOT NULL,
  name         TEXT NOT NULL,
  num_rows     INTEGER NOT NULL CHECK (num_rows >= 0),
  num_features INTEGER NOT NULL CHECK (num_features >= 0),
  num_classes  INTEGER NOT NULL CHECK (num_classes >= 0),
  checksum     TEXT NOT NULL,
  size_bytes   INTEGER NOT NULL,
  created_ms   INTEGER NOT NULL,
  features     BLOB NOT NULL,
  labels       BLOB NOT NULL
);
CREATE INDEX datasets_by_tenant ON datasets (tenant, seq);

CREATE TABLE jobs (
  seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
  id                     TEXT NOT NULL UNIQUE,
  tenant                 TEXT NOT NULL,
  dataset_id             TEXT NOT NULL,
  name                   TEXT NOT NULL,
  spec                   BLOB NOT NULL,
  state                  INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
  iteration              INTEGER NOT NULL,
  total_iterations       INTEGER NOT NULL,
  epoch                  INTEGER NOT NULL,
  nominal_loss,
  total_width            BLOB NOT NULL,
  eta_seconds,
  error                  TEXT NOT NULL,
  model_id               TEXT NOT NULL,
  dropped_rows_per_epoch INTEGER NOT NULL,
  cancel_requested       INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
  created_ms             INTEGER NOT NULL,
  started_ms             INTEGER NOT NULL,
  finished_ms            INTEGER NOT NULL
);
CREATE INDEX jobs_by_tenant ON jobs (tenant, seq);
CREATE INDEX jobs_by_tenant_state ON jobs (tenant, state, seq);
CREATE INDEX jobs_queue ON jobs (state, seq);
CREATE INDEX jobs_by_dataset ON jobs (dataset_id, state);

CREATE TABLE checkpoints (
  job_id   TEXT PRIMARY KEY REFERENCES jobs (id),
  step     INTEGER NOT NULL,
  state    BLOB NOT NULL,
  saved_ms INTEGER NOT NULL
);

CREATE TABLE models (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,
  id                TEXT NOT NULL UNIQUE,
  tenant            TEXT NOT NULL,
  job_id            TEXT NOT NULL UNIQUE REFERENCES jobs (id),
  dataset_id        TEXT NOT NULL,
  name              TEXT NOT NULL,
  spec              BLOB NOT NULL,
  architecture      BLOB NOT NULL,
  polynomial_degree INTEGER NOT NULL,
  input_features    INTEGER NOT NULL,
  num_classes       INTEGER NOT NULL,
  nominal           BLOB NOT NULL,
  created_ms        INTEGER NOT NULL
);
CREATE INDEX models_by_tenant ON models (tenant, seq);

CREATE TABLE model_boxes (
  model_id       TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  position       INTEGER NOT NULL CHECK (position >= 0),
  budget_n       INTEGER NOT NULL,
  budget_label_n INTEGER NOT NULL,
  lower          BLOB NOT NULL,
  upper          BLOB NOT NULL,
  total_width,
  max_width,
  PRIMARY KEY (model_id, position)
) WITHOUT ROWID;
)sql"},
    // Unlearning (paper section 10.1): the deletion ledger of a model (one row
    // per distinct training row requested; accepted = counted in d) and the
    // retraining job enqueued once d would pass the largest budget.
    {2, R"sql(
CREATE TABLE deletions (
  model_id     TEXT NOT NULL REFERENCES models (id),
  tenant       TEXT NOT NULL,
  row_id       INTEGER NOT NULL CHECK (row_id >= 0),
  requested_by TEXT NOT NULL,
  requested_ms INTEGER NOT NULL,
  accepted     INTEGER NOT NULL CHECK (accepted IN (0, 1)),
  PRIMARY KEY (model_id, row_id)
) WITHOUT ROWID;

CREATE TABLE retrainings (
  model_id     TEXT PRIMARY KEY REFERENCES models (id),
  tenant       TEXT NOT NULL,
  job_id       TEXT NOT NULL,
  dataset_id   TEXT NOT NULL,
  requested_ms INTEGER NOT NULL
);
)sql"},
    // Private prediction (paper section 10.2): epsilon spent per (model,
    // client) under sequential composition. The total is the server's
    // configuration, not stored, so an operator can change it.
    {3, R"sql(
CREATE TABLE privacy_budgets (
  model_id   TEXT NOT NULL REFERENCES models (id),
  client     TEXT NOT NULL,
  tenant     TEXT NOT NULL,
  spent      NOT NULL CHECK (spent >= 0),
  releases   INTEGER NOT NULL CHECK (releases >= 0),
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (model_id, client)
) WITHOUT ROWID;
)sql"},
    // Bound options (BoundMethod, IntervalProduct, RoundingMode): stored job
    // and model specs in the new form; no table changes.
    {4, "", &UpgradeStoredSpecs},
    // Idempotent requests (issue 17): the first answer to a client-chosen
    // request id, per (tenant, kind), written in the same transaction as the
    // request's effect, so a retry returns it and changes nothing.
    // `fingerprint` is a hash of the request's content: the same id with other
    // content is refused rather than answered with someone else's result.
    {5, R"sql(
CREATE TABLE requests (
  tenant      TEXT NOT NULL,
  kind        TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  response    BLOB NOT NULL,
  created_ms  INTEGER NOT NULL,
  PRIMARY KEY (tenant, kind, request_id)
) WITHOUT ROWID;
CREATE INDEX requests_by_age ON requests (created_ms);
)sql"},
    // Privacy ledger per (tenant, root dataset) in exact quanta of 2^-40
    // (issue 17; server/store/privacy_ledger.h): existing per-(model, client)
    // spends are moved there, rounded up.
    {6, kPrivacyLedgerSchemaSql, &MigratePrivacyBudgetsToDatasets},
    // Poison-job guard (issue 17): how many times a job was RUNNING when the
    // server process died (RecoverAbandonedJobs counts at startup; a graceful
    // stop does not). Past the limit the job is FAILED instead of resumed.
    {7, R"sql(
ALTER TABLE jobs ADD COLUMN crash_count INTEGER NOT NULL DEFAULT 0 CHECK (crash_count >= 0);
)sql"},
    // Vacuous certificates and width history (issue 18): the warnings a job
    // ends with (domain/vacuity.h; budget_n -1 = about every budget), shown
    // on the job and on its model; and the job's bounded per-iteration
    // history (jobs/width_history.h), one matrix blob per job with a row per
    // point: iteration, epoch, nominal loss, total width per budget.
    {8, R"sql(
CREATE TABLE job_warnings (
  job_id         TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  position       INTEGER NOT NULL CHECK (position >= 0),
  code           INTEGER NOT NULL,
  budget_n       INTEGER NOT NULL,
  budget_label_n INTEGER NOT NULL,
  message        TEXT NOT NULL,
  PRIMARY KEY (job_id, position)
) WITHOUT ROWID;

CREATE TABLE job_width_history (
  job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  stride INTEGER NOT NULL CHECK (stride >= 1),
  points BLOB NOT NULL
);
)sql"},
    // Shaped datasets (issue 15): the shape of one sample, "D" or "C,H,W"
    // (the product is num_features). '' for rows from before: [num_features].
    {9, R"sql(
ALTER TABLE datasets ADD COLUMN sample_shape TEXT NOT NULL DEFAULT '';
)sql"},
    // Job leases (issue 19): the worker that claimed a RUNNING job and until
    // when its claim holds unless renewed (Store::ClaimNextQueuedJob); a job
    // whose lease expired is claimed again by another worker and resumed
    // from its checkpoint. 0 = no lease (rows from before, requeued jobs).
    {10, R"sql(
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Model artifacts (issue 15, store/artifact_store.h): uploaded model
    // files, kept as the bytes received (checked against sha256 on read),
    // with the service's description of the parsed network (`summary`,
    // opaque to the store). Jobs copy what they need at submit, so nothing
    // refers to an artifact by foreign key.
    {11, R"sql(
CREATE TABLE model_artifacts (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT NOT NULL UNIQUE,
  tenant     TEXT NOT NULL,
  name       TEXT NOT NULL,
  format     INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  sha256     TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  summary    BLOB NOT NULL,
  content    BLOB NOT NULL
);
CREATE INDEX model_artifacts_by_tenant ON model_artifacts (tenant, seq);
)sql"},
    // Jobs split per budget group (issue 19, Store::SplitJob): one row per
    // unit, the budget indices it trains ("0,1"), its own lease and
    // checkpoint, its progress and, once trained, its result (the unit's
    // final TrainState), and the job's seq (claims take the oldest job's
    // units first). Dropped with the job's end (complete, fail, cancel).
    {12, R"sql(
CREATE TABLE job_units (
  job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  unit             INTEGER NOT NULL CHECK (unit >= 0),
  job_seq          INTEGER NOT NULL,
  budgets          TEXT NOT NULL,
  state            INTEGER NOT NULL,
  lease_owner      TEXT NOT NULL DEFAULT '',
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  crash_count      INTEGER NOT NULL DEFAULT 0,
  iteration        INTEGER NOT NULL DEFAULT 0,
  nominal_loss     REAL NOT NULL DEFAULT 0,
  widths           BLOB,
  checkpoint       BLOB,
  result           BLOB,
  PRIMARY KEY (job_id, unit)
);
)sql"},
    // The compute backend that ran a job and trained a model (issue 16):
    // "cpu", "cuda", ...; empty for jobs that never ran and for rows written
    // before this schema.
    {13, R"sql(
ALTER TABLE jobs ADD COLUMN backend TEXT NOT NULL DEFAULT '';
ALTER TABLE models ADD COLUMN backend TEXT NOT NULL DEFAULT '';
)sql"},
};

absl::StatusOr<std::string> QueryText(SqliteDb& db, const std::string& sql) {
  absl::StatusOr<Statement> st = db.Prepare(sql);
  if (!st.ok()) return st.status();
  absl::StatusOr<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("sqlite: \"", sql, "\" returned no row"));
  return st->ColumnText(0);
}

absl::Status CheckVersion(int64_t version, const std::string& path) {
  if (version > LatestSchemaVersion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database \"", path, "\" has schema version ", version, ", newer than the version ",
        LatestSchemaVersion(), " this server knows; use a newer agt-server"));
  }
  return absl::OkStatus();
}

// Refuses files written by a newer server or by another application, before
// anything is changed in them.
absl::Status CheckCompatible(SqliteDb& db, const std::string& path) {
  // One read snapshot: another process may be migrating the same fresh file,
  // and its version and tables must be seen together or not at all.
  absl::StatusOr<Transaction> snapshot = Transaction::Begin(db, Transaction::Mode::kRead);
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<int64_t> version = db.QueryInt64("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (absl::Status s = CheckVersion(*version, path); !s.ok()) return s;
  absl::StatusOr<int64_t> app = db.QueryInt64("PRAGMA application_id");
  if (!app.ok()) return app.status();
  if (*app != 0 && *app != kApplicationId) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database \"", path, "\" belongs to another application (application_id ", *app, ")"));
  }
  if (*version == 0) {
    absl::StatusOr<int64_t> objects = db.QueryInt64("SELECT count(*) FROM sqlite_schema");
    if (!objects.ok()) return objects.status();
    if (*objects != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("database \"", path, "\" has ", *objects,
                       " schema objects but no agt-server schema version; refusing to modify it"));
    }
  }
  return snapshot->Commit();
}

}  // namespace

absl::Status UpgradeStoredSpecs(SqlDb& db) {
  for (const char* table : {"jobs", "models"}) {
    if (absl::Status s = UpgradeLegacyBoundMethods(db, table); !s.ok()) return s;
  }
  return absl::OkStatus();
}

int LatestSchemaVersion() { return std::end(kMigrations)[-1].version; }

absl::Status ConfigureConnection(SqliteDb& db, const std::string& path) {
  // First, so that everything after it waits for other processes' locks.
  if (absl::Status s = db.Exec("PRAGMA busy_timeout = 5000"); !s.ok()) return s;
  if (absl::Status s = CheckCompatible(db, path); !s.ok()) return s;
  // Switching to WAL needs an exclusive lock, and SQLite may answer BUSY
  // without waiting (its deadlock avoidance) while another process opens the
  // same fresh file: retry for up to the busy timeout.
  absl::StatusOr<std::string> mode = QueryText(db, "PRAGMA journal_mode = WAL");
  for (int attempt = 0;
       !mode.ok() && mode.status().code() == absl::StatusCode::kUnavailable && attempt < 500;
       ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    mode = QueryText(db, "PRAGMA journal_mode = WAL");
  }
  if (!mode.ok()) return mode.status();
  // An in-memory database (":memory:") reports "memory"; files must be WAL.
  if (absl::AsciiStrToLower(*mode) != "wal" && path != ":memory:") {
    return absl::FailedPreconditionError(
        absl::StrCat("database \"", path, "\" cannot use WAL mode (journal_mode is ", *mode, ")"));
  }
  if (absl::Status s = db.Exec("PRAGMA foreign_keys = ON"); !s.ok()) return s;
  // FULL: a committed transaction survives power loss, not only a crash.
  return db.Exec("PRAGMA synchronous = FULL");
}

absl::Status MigrateSchema(SqliteDb& db, const std::string& path) {
  for (const Migration& step : kMigrations) {
    absl::StatusOr<Transaction> txn = Transaction::Begin(db, Transaction::Mode::kWrite);
    if (!txn.ok()) return txn.status();
    // Re-read under the write lock: another process may have migrated.
    absl::StatusOr<int64_t> version = db.QueryInt64("PRAGMA user_version");
    if (!version.ok()) return version.status();
    if (absl::Status s = CheckVersion(*version, path); !s.ok()) return s;
    if (*version >= step.version) continue;  // rolled back (nothing written)
    if (*version != step.version - 1) {
      return absl::InternalError(absl::StrCat("database \"", path, "\" is at schema version ",
                                              *version, "; no migration leads to ",
                                              step.version - 1));
    }
    absl::Status applied = *step.sql != '\0' ? db.Exec(step.sql) : absl::OkStatus();
    if (applied.ok() && step.rewrite != nullptr) applied = step.rewrite(db);
    if (!applied.ok()) {
      return absl::Status(applied.code(), absl::StrCat("migration to schema version ", step.version,
                                                       " failed: ", applied.message()));
    }
    if (absl::Status s = db.Exec(absl::StrCat("PRAGMA user_version = ", step.version)); !s.ok()) {
      return s;
    }
    if (*version == 0) {
      if (absl::Status s = db.Exec(absl::StrCat("PRAGMA application_id = ", kApplicationId));
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = txn->Commit(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace agt::server
