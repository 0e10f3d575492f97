// The server's persistent store: datasets, jobs (with checkpoints), trained
// models and the ledgers (deletions, privacy budgets), every record scoped to
// a tenant. `Store` is an interface with two implementations that know
// nothing of each other: SQLite (server/store/sqlite_store.h, one file in WAL
// mode, the embedded default) and PostgreSQL (server/store/postgres_store.h,
// several server processes on one database). Store::Open picks one from the
// --db argument.
//
// Contract of every implementation: every state change is one transaction (a
// crash leaves either the old or the new state, never a mix); the schema is
// migrated on Open (SQLite: PRAGMA user_version; PostgreSQL: a migration
// table); tensors are stored as versioned little-endian blobs with shape and
// checksum (store/blob.h) and verified on read (a corrupt blob is
// DataLossError, never silently wrong numbers). Lookups by id are scoped to a
// tenant: another tenant's id is NotFound, exactly like an unknown id.
//
// Isolation: each method is atomic and isolated from every other call on the
// same database, from this process or another one: writes that read before
// they decide exclude each other (SQLite: BEGIN IMMEDIATE; PostgreSQL: a
// database-wide transaction-scoped advisory lock), reads see one snapshot,
// and the job queue's claim relies on row locks (SKIP LOCKED) where the
// engine has them (server/store/sql_store.h). The store makes no domain decisions: where a write
// depends on what is stored (the deletion ledger, the privacy budget) it
// offers one primitive whose read, check and write are one transaction, and
// the domain layer (server/domain/ledgers.h) supplies the figures or the
// decision.
//
// Thread-safety: all methods may be called concurrently.
//
// State machine of a job: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED,
// plus QUEUED -> CANCELLED and RUNNING -> QUEUED (RequeueRunningJobs). Any other
// move is FailedPrecondition naming the job and both states; nothing changes.
// Methods that take a bare job_id (claim, progress, checkpoint, complete,
// fail, cancel) are for the job runner and are not tenant-scoped; every method
// that takes a tenant is. Errors from the database keep its message (SQLite
// BUSY -> Unavailable, CORRUPT -> DataLoss, FULL -> ResourceExhausted, else
// Internal; PostgreSQL: a lost connection -> Unavailable, else Internal).
#ifndef AGT_SERVER_STORE_STORE_H_
#define AGT_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"

namespace agt::server {

// Job states as stored (the same numbers as agt.v1.JobState).
enum class JobState : int {
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
};
bool IsFinal(JobState state);
// "QUEUED", "RUNNING", ... (for messages).
std::string_view JobStateName(JobState state);

struct DatasetRecord {
  std::string id;
  std::string tenant;
  std::string name;
  int64_t num_rows = 0;
  int num_features = 0;
  int num_classes = 0;
  std::string checksum;  // SHA-256 hex of the stored blobs
  int64_t size_bytes = 0;
  int64_t created_ms = 0;  // Unix epoch milliseconds
  // The shape of one sample, [D] or [C, H, W], prod = num_features. Empty on
  // insert means [num_features]; records read back always have it.
  std::vector<int> sample_shape;
};

// Options of Store::InsertDataset.
struct DatasetInsertOptions {
  // Non-empty: the upload is idempotent (RequestKind::kUpload).
  std::string request_id;
  std::string request_fingerprint;
};

struct JobProgressRecord {
  int64_t iteration = 0;
  int64_t total_iterations = 0;
  int epoch = 0;
  double nominal_loss = 0.0;
  std::vector<double> total_width;
  double eta_seconds = 0.0;
  // The compute backend running the job ("cpu", "cuda"); stored when
  // non-empty (jobs.backend), kept otherwise.
  std::string backend;
};

// Why a finished job's certificates are probably vacuous (the same numbers
// as agt.v1.JobWarningCode; decided by domain/vacuity.h).
enum class JobWarningCode : int {
  kBoundsNonFinite = 1,
  kBoundsTooWide = 2,
  kNothingCertified = 3,
};

struct JobWarningRecord {
  JobWarningCode code = JobWarningCode::kBoundsTooWide;
  // The budget concerned; unset for a warning about every budget.
  std::optional<agt::Budget> budget;
  std::string message;
};

// One recorded iteration of a job's training (jobs/width_history.h decides
// which iterations are recorded).
struct WidthPointRecord {
  int64_t iteration = 0;  // 1-based: the state after this many steps
  int epoch = 0;
  double nominal_loss = 0.0;
  std::vector<double> total_width;  // per budget, in budget order
};

// A job's bounded history: points in increasing iteration order, recorded
// every `stride` iterations.
struct WidthHistoryRecord {
  int64_t stride = 1;
  std::vector<WidthPointRecord> points;
};

struct JobRecord {
  std::string id;
  std::string tenant;
  std::string dataset_id;
  std::string name;
  // The serialized agt.v1.TrainingJobSpec as submitted.
  std::string spec;
  JobState state = JobState::kQueued;
  JobProgressRecord progress;
  std::string error;
  std::string model_id;
  int64_t dropped_rows_per_epoch = 0;
  bool cancel_requested = false;
  int64_t created_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  // Times the job was RUNNING when the server process died without stopping
  // its jobs (counted by RecoverAbandonedJobs at the next start).
  int crash_count = 0;
  // SUCCEEDED: warnings stored with the model (CompleteJob); empty otherwise.
  std::vector<JobWarningRecord> warnings;
};

// Options of Store::InsertJob.
struct JobInsertOptions {
  // > 0: the tenant may have at most this many QUEUED or RUNNING jobs; one
  // more is ResourceExhausted (checked in the insert's transaction).
  int max_active_jobs_per_tenant = 0;
  // Non-empty: the submission is idempotent (RequestKind::kSubmitJob).
  std::string request_id;
  std::string request_fingerprint;
};

// What RecoverAbandonedJobs did.
struct JobRecovery {
  int requeued = 0;  // back to QUEUED, resumed from their checkpoints
  int failed = 0;    // FAILED: they were RUNNING in too many crashes
};

struct BoxRecord {
  agt::Budget budget;
  agt::ParameterBox box;
  double total_width = 0.0;
  double max_width = 0.0;
};

struct ModelRecord {
  std::string id;
  std::string tenant;
  std::string job_id;
  std::string dataset_id;
  std::string name;
  std::string spec;  // the job's serialized agt.v1.TrainingJobSpec
  agt::ModelSpec architecture;
  int polynomial_degree = 1;
  int input_features = 0;  // raw features, before expansion
  int num_classes = 0;
  agt::Vector nominal;
  std::vector<BoxRecord> boxes;  // in the job's budget order
  int64_t created_ms = 0;
  // The training job's warnings (stored once, with the job, by CompleteJob).
  std::vector<JobWarningRecord> warnings;
  // The compute backend that trained it ("cpu", "cuda"; empty before schema 13).
  std::string backend;
};

// One training row in a model's deletion ledger (paper section 10.1).
struct DeletionRecord {
  int64_t row_id = 0;
  std::string requested_by;  // the token's label, or the tenant in local mode
  int64_t requested_ms = 0;
  // Counted in d. False: the request came past max N (retraining required);
  // the row is still excluded from a retraining.
  bool accepted = false;
};

// The retraining of a model without its deleted rows (past max N, or asked
// for by an operator).
struct RetrainingRecord {
  std::string model_id;
  std::string job_id;
  // The dataset the retraining trains on: the model's own (the deleted rows
  // are removed in place, TrainingJobSpec.removed_rows). Retrainings made
  // before that name a derived, compacted dataset.
  std::string dataset_id;
  int64_t requested_ms = 0;
};

// What has been spent from one privacy budget. A budget belongs to a
// tenant's training data: one per (tenant, root dataset), drawn on by every
// model trained on that dataset or on a dataset derived from it (a
// retraining after deletions), and shared by every token of the tenant
// (server/store/privacy_ledger.h). Epsilons are kept exactly, as integer
// quanta of agt::kEpsilonQuantum = 2^-40 (core/privacy/budget.h).
struct PrivacySpendRecord {
  std::string dataset_id;    // the root dataset whose budget this is
  int64_t spent_quanta = 0;  // by every client of the tenant
  int64_t releases = 0;      // labels released, by every client
  int64_t updated_ms = 0;    // 0 when nothing was ever spent
  // The asking client's share of the above (for reporting; not a budget).
  std::string client;
  int64_t client_spent_quanta = 0;
  int64_t client_releases = 0;
};

// ---- idempotent requests
// The requests a client may retry with the same client-chosen request id: a
// retry returns the first answer and changes nothing (nothing is stored,
// charged or enqueued twice).
enum class RequestKind { kUpload, kSubmitJob, kDeletion, kPrivatePredict };
// "upload", "submit_job", "deletion", "private_predict" (as stored).
std::string_view RequestKindName(RequestKind kind);

// One request's idempotency key and what it asked. `fingerprint` is a hash
// of the request's content without the id (the caller computes it): a retry
// must carry the same, and the same id with another request is refused.
struct RequestTag {
  std::string id;  // empty: the request is not idempotent
  std::string fingerprint;
  bool empty() const { return id.empty(); }
};
inline constexpr size_t kMaxRequestIdLength = 128;
// Answers are kept this long; a retry after that is a new request.
inline constexpr int64_t kRequestRetentionMs = int64_t{7} * 24 * 3600 * 1000;
// OK for an empty id or 1..128 characters of [A-Za-z0-9._:-]; otherwise
// InvalidArgument naming the rule.
absl::Status ValidateRequestId(std::string_view id);

// A page of a listing: records in creation order, and the token to pass for
// the next page (empty on the last page).
//
// Listings take page_size 0 as kDefaultPageSize and cap it at kMaxPageSize; a
// negative page_size, or a page_token that is not the next_page_token of the
// same kind of listing, is InvalidArgument. Tokens stay valid across restarts
// and across insertions/deletions (a page never repeats a record).
inline constexpr int kDefaultPageSize = 100;  // as documented in the protos
inline constexpr int kMaxPageSize = 1000;
template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;
};

// What a deletion decider returns (Store::AppendDeletions): the rows to
// record, whether they are accepted (counted in d), and the answer stored
// with the request's tag.
struct DeletionWrite {
  std::vector<int64_t> rows;
  bool accepted = false;
  std::string answer;
};
// Decides a deletion request from the model's accepted rows (in row order).
// Called inside the store's transaction, so it must not call the store; it
// must be a pure function of its argument, because an implementation may
// call it again when it retries the transaction (the last call's answer is
// the one committed). An error aborts the transaction and is returned.
using DeletionDecider =
    std::function<absl::StatusOr<DeletionWrite>(const std::vector<int64_t>& accepted_rows)>;

// A conditional debit of a privacy budget (Store::DebitPrivacyBudget). The
// figures are the domain's (core/privacy/budget.h): the store only checks
// spent + quanta <= limit_quanta, in integers, in the debit's transaction.
struct PrivacyDebit {
  std::string client;        // who asks (recorded in its share)
  int64_t limit_quanta = 0;  // the total the sum may reach (>= 0)
  int64_t quanta = 0;        // the debit (>= 1)
  int64_t releases = 0;      // labels released (>= 1)
};

struct PrivacyDebitResult {
  // debited: the budget after the debit; refused or replayed: as it is now.
  PrivacySpendRecord record;
  bool debited = false;   // false: it would not fit, and nothing changed
  bool replayed = false;  // a retry of an earlier request; nothing changed
  std::string response;   // the answer stored with the debit, or the earlier one
};

// ---- jobs split per budget group (issue 19)
// Each budget's parameter box is independent of the others' and the nominal
// trajectory is deterministic, so a job may be trained as units: unit u
// trains the nominal trajectory and the boxes of its budget indices only.
// Units are claimed and leased like jobs; the worker that finishes the last
// unit assembles the model and completes the job (CompleteJob).
struct JobUnitRecord {
  JobRecord job;  // the job as claimed (RUNNING)
  int unit = 0;
  // Indices into the spec's budgets, increasing.
  std::vector<int> budget_indices;
  // The unit's last checkpoint (its TrainState has one box per index).
  std::optional<agt::TrainState> checkpoint;
  // Set when the unit was trained already and its worker died before it
  // completed the job: the claimer goes straight to the completion.
  std::optional<agt::TrainState> result;
};

// A trained unit's result (Store::LoadJobUnitResults).
struct JobUnitResult {
  std::vector<int> budget_indices;
  agt::TrainState state;
};

// A claim's lease unless Store::SetJobLease says otherwise.
inline constexpr int64_t kDefaultJobLeaseMs = 60'000;

// The interface of the store. Every method's guarantees hold for both
// implementations; where they differ, the comment says so. Default arguments
// are on the interface only (callers hold a Store).
class Store {
 public:
  // The factory: `target` "postgresql://..." or "postgres://..." (a libpq
  // connection URI) opens PostgresStore; anything else is the path of an
  // SQLite file (SqliteStore, created if needed). Either migrates the schema
  // to the current version. A database written by a newer server is
  // FailedPrecondition and is left untouched, as is an SQLite file of another
  // application. A PostgreSQL URI on a build without libpq is
  // FailedPrecondition saying so.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& target);
  // True when `target` names a PostgreSQL database (see Open).
  static bool IsPostgresTarget(const std::string& target);
  virtual ~Store() = default;

  // The current schema version (the same numbering in both implementations).
  static int SchemaVersion();

  // ---- datasets
  // Stores a new dataset; record.id, created_ms, checksum and size_bytes are
  // filled in by the store and returned, and num_rows, num_features and
  // num_classes are taken from `data`. InvalidArgument if data.y does not have
  // one label per row. The doubles are stored bit for bit; the store does not
  // judge their values (the caller validates).
  //
  // With options.request_id set (RequestKind::kUpload), a retry is answered
  // with the dataset the first upload stored (its current record; NotFound
  // if it was deleted since) and nothing is inserted; the same id with
  // another fingerprint is InvalidArgument. The answer is stored in the
  // insert's transaction, so a crash leaves both or neither.
  absl::StatusOr<DatasetRecord> InsertDataset(DatasetRecord record, const agt::Dataset& data,
                                              const DatasetInsertOptions& options = {});
  // The same, taking the data over: it is released as soon as it is encoded,
  // before the insert, so the doubles are not held twice with their blobs.
  absl::StatusOr<DatasetRecord> InsertDataset(DatasetRecord record, agt::Dataset&& data,
                                              const DatasetInsertOptions& options = {});
  virtual absl::StatusOr<DatasetRecord> GetDataset(const std::string& tenant,
                                                   const std::string& id) = 0;
  // DataLoss if a blob or the dataset checksum does not verify.
  virtual absl::StatusOr<agt::Dataset> LoadDatasetData(const std::string& tenant,
                                                       const std::string& id) = 0;
  virtual absl::StatusOr<Page<DatasetRecord>> ListDatasets(const std::string& tenant, int page_size,
                                                           const std::string& page_token) = 0;
  // FailedPrecondition while a QUEUED or RUNNING job uses the dataset. Jobs
  // and models made from it keep its id.
  virtual absl::Status DeleteDataset(const std::string& tenant, const std::string& id) = 0;

  // ---- jobs
  // Stores a new QUEUED job; id and created_ms are filled in and returned
  // (state, error, model_id, cancel_requested, started/finished are reset).
  // NotFound unless record.dataset_id is a dataset of record.tenant, checked in
  // the same transaction as the insert (so DeleteDataset cannot race it).
  //
  // With options.request_id set, a retry is answered with the job the first
  // submission created (its current record) and nothing is inserted; the
  // same id with another fingerprint is InvalidArgument. The answer is stored
  // in the insert's transaction, so a crash leaves both or neither. The
  // per-tenant limit (ResourceExhausted naming the count and the limit) is
  // checked after the retry lookup: a retry is answered even at the limit.
  virtual absl::StatusOr<JobRecord> InsertJob(JobRecord record,
                                              const JobInsertOptions& options = {}) = 0;
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& tenant, const std::string& id) = 0;
  // state == nullopt: all states.
  virtual absl::StatusOr<Page<JobRecord>> ListJobs(const std::string& tenant,
                                                   std::optional<JobState> state, int page_size,
                                                   const std::string& page_token) = 0;
  // Deletes a finished job (SUCCEEDED, FAILED or CANCELLED) and its
  // checkpoint, in one transaction. NotFound for an unknown or foreign job.
  // FailedPrecondition, changing nothing, while it is QUEUED or RUNNING
  // (cancel it first) and while the model it produced exists (delete the
  // model first). A retraining record that names the job is dropped with it
  // when the retraining was in place; one that trained on a compacted copy
  // stays (it is the privacy ledger's lineage, see DeleteModel). A retried
  // submission with the job's request id is then NotFound, as for datasets.
  virtual absl::Status DeleteJob(const std::string& tenant, const std::string& id) = 0;
  // Jobs of all tenants by state name (JobStateName), every state present
  // (0 when none), for the metrics' agt_jobs gauge.
  virtual absl::StatusOr<std::map<std::string, int64_t>> CountJobsByState() = 0;
  // Atomically moves the oldest claimable job (any tenant) to RUNNING,
  // setting started_ms and a lease held by this Store object, and returns
  // it; nullopt when there is none. Claimable: QUEUED, or RUNNING with an
  // expired lease (its worker stopped renewing it: it died); such a job is
  // resumed from its last checkpoint, and its crash_count goes up by one,
  // past SetJobLease's max_crashes it becomes FAILED (as in
  // RecoverAbandonedJobs) and the next one is tried. Oldest = first
  // inserted, so a requeued job keeps its place. Two callers, in this
  // process or in another one on the same database, never get the same job
  // (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so claimers do not wait
  // for each other).
  virtual absl::StatusOr<std::optional<JobRecord>> ClaimNextQueuedJob() = 0;
  // ---- job leases (several workers on one database)
  // The lease of a claim lasts lease_ms (> 0; default kDefaultJobLeaseMs)
  // and is renewed by every UpdateJobProgress and SaveCheckpoint of the job
  // and by RenewJobLease. While this Store holds a job's lease, its worker
  // calls on the job (progress, checkpoint, complete, fail, cancelled) are
  // refused with Aborted, changing nothing, once another worker has claimed
  // the job after the lease expired: a worker presumed dead cannot overwrite
  // its successor's work.
  virtual void SetJobLease(int64_t lease_ms, int max_crashes) = 0;
  // Extends this Store's lease on a RUNNING job. Aborted when the lease was
  // lost (another worker claimed the job), NotFound for an unknown job.
  virtual absl::Status RenewJobLease(const std::string& job_id) = 0;
  // A graceful stop of one worker among several: its leased RUNNING jobs go
  // back to QUEUED, keeping their checkpoints (other workers' jobs are left
  // alone, unlike RequeueRunningJobs). Returns how many.
  virtual absl::StatusOr<int> ReleaseJobLeases() = 0;
  // ---- units of a split job (JobUnitRecord)
  // Splits a RUNNING job this Store claimed into units, one per group of
  // budget indices (each non-empty, together every index once): in one
  // transaction, inserts the units QUEUED (unless the job has units already,
  // after a restart: they are kept, with their checkpoints and results) and
  // gives up the job's lease, so that the job stays RUNNING, is not claimed
  // as a job again, and ends only through its units (CompleteJob, FailJob,
  // MarkCancelled, each of which drops them). Aborted as for the job's other
  // worker calls; FailedPrecondition unless RUNNING; InvalidArgument for an
  // empty group.
  virtual absl::Status SplitJob(const std::string& job_id,
                                const std::vector<std::vector<int>>& groups) = 0;
  // Atomically claims the first claimable unit of a RUNNING job (QUEUED, or
  // RUNNING with an expired lease: resumed from its checkpoint, one crash
  // more; past SetJobLease's max_crashes its job becomes FAILED and the next
  // unit is tried), leased as ClaimNextQueuedJob's claims, with the same
  // guarantee: two callers never get the same unit (PostgreSQL: SKIP
  // LOCKED). nullopt when there is none.
  virtual absl::StatusOr<std::optional<JobUnitRecord>> ClaimNextJobUnit() = 0;
  // The unit's progress (progress.total_width: its own budgets, in its
  // order), renewing its lease; in the same transaction the job's progress
  // becomes the aggregate of its units' (iteration: the least; widths: each
  // budget's from its unit, in the spec's order; dropped_rows_per_epoch as
  // given, the same for every unit). NotFound when the unit is gone (its
  // job ended: failed, cancelled by another worker), Aborted when its lease
  // was lost (another worker claimed it), changing nothing.
  virtual absl::Status UpdateJobUnitProgress(const std::string& job_id, int unit,
                                             const JobProgressRecord& progress,
                                             int64_t dropped_rows_per_epoch) = 0;
  // The same, saving `state` as the unit's checkpoint too.
  virtual absl::Status SaveJobUnitCheckpoint(const std::string& job_id, int unit,
                                             const agt::TrainState& state,
                                             const JobProgressRecord& progress) = 0;
  // Stores the unit's final state. Returns true when every other unit of the
  // job has its result: this worker then completes the job (it keeps the
  // unit's lease, so that if it dies another worker claims the unit, gets
  // its result back and completes). Otherwise the unit is done and its lease
  // is released. Concurrent completions are serialised, so exactly one
  // caller gets true. NotFound / Aborted as UpdateJobUnitProgress.
  virtual absl::StatusOr<bool> CompleteJobUnit(const std::string& job_id, int unit,
                                               const agt::TrainState& state) = 0;
  // Every unit's result, in unit order. FailedPrecondition when a unit has
  // none yet; DataLoss if one does not verify.
  virtual absl::StatusOr<std::vector<JobUnitResult>> LoadJobUnitResults(
      const std::string& job_id) = 0;

  // Progress of a RUNNING job (not a state change of its own).
  // FailedPrecondition unless the job is RUNNING; NotFound for unknown ids.
  // A non-null `history` replaces the job's width history in the same
  // transaction (so the runner adds no write of its own for it).
  virtual absl::Status UpdateJobProgress(const std::string& job_id,
                                         const JobProgressRecord& progress,
                                         int64_t dropped_rows_per_epoch,
                                         const WidthHistoryRecord* history = nullptr) = 0;
  // Saves a checkpoint (replacing the previous one) and the progress, and a
  // non-null `history`, in one transaction. FailedPrecondition unless the job
  // is RUNNING.
  virtual absl::Status SaveCheckpoint(const std::string& job_id, const agt::TrainState& state,
                                      const JobProgressRecord& progress,
                                      const WidthHistoryRecord* history = nullptr) = 0;
  // The last checkpoint of a job, if any. NotFound for an unknown job,
  // DataLoss if the stored state does not verify.
  virtual absl::StatusOr<std::optional<agt::TrainState>> LoadCheckpoint(
      const std::string& job_id) = 0;
  // In one transaction: stores the model (id and created_ms filled in), marks
  // the job SUCCEEDED with its model_id and final progress, drops the
  // checkpoint. Returns the model id. The job must be RUNNING. model.tenant,
  // job_id and dataset_id are taken from the job when empty (InvalidArgument
  // when set and different), an empty model.spec from the job's spec; every
  // box must have as many bounds as model.nominal (InvalidArgument).
  // model.warnings are stored as the job's warnings (read back on both the
  // job and the model), and a non-null `history` as its final width history,
  // in the same transaction.
  virtual absl::StatusOr<std::string> CompleteJob(const std::string& job_id, ModelRecord model,
                                                  const JobProgressRecord& progress,
                                                  const WidthHistoryRecord* history = nullptr) = 0;
  // RUNNING -> FAILED with `error`; the checkpoint is dropped.
  virtual absl::Status FailJob(const std::string& job_id, const std::string& error) = 0;
  // QUEUED: becomes CANCELLED at once. RUNNING: cancel_requested is set (the
  // worker stops before its next step and calls MarkCancelled). Final states:
  // FailedPrecondition. Returns the job after the change (cancel_requested
  // is true in both cases).
  virtual absl::StatusOr<JobRecord> RequestCancel(const std::string& tenant,
                                                  const std::string& id) = 0;
  // RUNNING (or QUEUED) -> CANCELLED; the checkpoint is dropped.
  virtual absl::Status MarkCancelled(const std::string& job_id) = 0;
  // NotFound for an unknown job.
  virtual absl::StatusOr<bool> IsCancelRequested(const std::string& job_id) = 0;
  // The job's width history (stride 1 and no points when none was written).
  // NotFound for an unknown job, or one of another tenant when `tenant` is
  // given; DataLoss if the stored blob does not verify or does not match.
  virtual absl::StatusOr<WidthHistoryRecord> GetWidthHistory(const std::string& job_id,
                                                             const std::string* tenant) = 0;
  // At startup: every RUNNING job (its worker died with the last process)
  // goes back to QUEUED, keeping its checkpoint. Returns how many.
  // Used by a graceful stop (the runner checkpointed its jobs); counts no
  // crash.
  virtual absl::StatusOr<int> RequeueRunningJobs() = 0;
  // At startup (poison-job guard): every RUNNING job was abandoned by a
  // process that died; its crash_count goes up by one, and a job whose count
  // now exceeds `max_crashes` becomes FAILED ("crashed the server N times;
  // resubmit with smaller settings", checkpoint dropped) instead of going
  // back to QUEUED. One transaction.
  virtual absl::StatusOr<JobRecovery> RecoverAbandonedJobs(int max_crashes) = 0;
  // The largest blob (or text) the database accepts, in bytes (SQLite's
  // SQLITE_LIMIT_LENGTH; PostgreSQL's 1 GB field limit); larger writes fail.
  virtual int64_t MaxBlobBytes() = 0;

  // ---- models
  // With its boxes, in budget order. DataLoss if a blob does not verify.
  virtual absl::StatusOr<ModelRecord> GetModel(const std::string& tenant,
                                               const std::string& id) = 0;
  virtual absl::StatusOr<Page<ModelRecord>> ListModels(const std::string& tenant, int page_size,
                                                       const std::string& page_token) = 0;
  // Deletes the model with its boxes, its deletion ledger and its retraining
  // record, in one transaction. What stays: the job that made it (its
  // model_id then names a deleted model) and the privacy ledger of its
  // dataset (budgets belong to the training data, so a model trained again
  // on the same data spends from the same budget). NotFound for an unknown or
  // foreign model. FailedPrecondition, changing nothing, while a retraining
  // of the model is QUEUED or RUNNING, and for a model whose retraining
  // trained on a compacted copy of its dataset (servers before issue 17):
  // the copy's privacy budget is found through the model (RootDatasetOf).
  virtual absl::Status DeleteModel(const std::string& tenant, const std::string& id) = 0;

  // ---- unlearning (deletion ledger)
  // Records a deletion request in one write transaction: reads the model's
  // accepted rows, calls `decide` with them (the domain's decision,
  // server/domain/ledgers.h) and inserts the rows it returns, accepted iff it
  // says so. A row already in the ledger is left as it is, except that a
  // refused row becomes accepted when an accepted write names it again (an
  // accepted row is never downgraded). Concurrent calls (threads,
  // processes, replicas on one PostgreSQL) are serialised: the read, the
  // decision and the write are one write transaction that excludes every
  // other (SQLite: BEGIN IMMEDIATE; PostgreSQL: the database's write
  // advisory lock), so the decision always sees every row committed before
  // it and a row is never counted twice or lost.
  // NotFound for an unknown or foreign model; an error of `decide` leaves the
  // ledger unchanged and is returned.
  //
  // Idempotent with a non-empty `tag` (kind kDeletion): in the same
  // transaction, an answer stored for tag.id is returned (replayed) without
  // calling `decide`, and nothing changes; otherwise the decider's answer is
  // stored with the tag alongside the effect. InvalidArgument when tag.id was
  // used with another fingerprint.
  struct DeletionWriteResult {
    bool replayed = false;
    std::string answer;  // the decider's, or the first answer of a retry
  };
  virtual absl::StatusOr<DeletionWriteResult> AppendDeletions(const std::string& tenant,
                                                              const std::string& model_id,
                                                              const std::string& requested_by,
                                                              const RequestTag& tag,
                                                              const DeletionDecider& decide) = 0;
  // The model's ledger in row order. NotFound for an unknown or foreign model.
  virtual absl::StatusOr<std::vector<DeletionRecord>> ListDeletions(
      const std::string& tenant, const std::string& model_id) = 0;
  // One page of the model's ledger in row order (page_size and page_token as
  // for the other listings; the token holds the next row id). NotFound as
  // ListDeletions.
  virtual absl::StatusOr<Page<DeletionRecord>> ListDeletionPage(const std::string& tenant,
                                                                const std::string& model_id,
                                                                int page_size,
                                                                const std::string& page_token) = 0;
  // d: the number of accepted rows. NotFound as ListDeletions.
  virtual absl::StatusOr<int64_t> CountAcceptedDeletions(const std::string& tenant,
                                                         const std::string& model_id) = 0;
  // Records (replacing any earlier one) the retraining job of a model.
  // NotFound unless the model and the job belong to `tenant`.
  virtual absl::Status RecordRetraining(const std::string& tenant,
                                        const RetrainingRecord& record) = 0;
  // The model's retraining, if any. NotFound for an unknown or foreign model.
  virtual absl::StatusOr<std::optional<RetrainingRecord>> GetRetraining(
      const std::string& tenant, const std::string& model_id) = 0;

  // ---- idempotent requests
  // The answer stored for an earlier request of `kind` with tag.id, or
  // nullopt when there is none (or tag is empty). InvalidArgument when that
  // id was used for a request with another fingerprint. Methods that carry
  // out a request store its answer in the transaction of its effect
  // (the implementation's SaveRequest), so checking here first is only a fast path: the
  // effect's transaction checks again.
  virtual absl::StatusOr<std::optional<std::string>> FindRequest(const std::string& tenant,
                                                                 RequestKind kind,
                                                                 const RequestTag& tag) = 0;

  // ---- private prediction (privacy budget ledger)
  // A conditional debit: adds debit.quanta and debit.releases to the budget
  // of (tenant, root dataset of model `model_id`) and to the client's share
  // iff spent + quanta <= debit.limit_quanta (integers; nothing rounds), and
  // records the answer, in one write transaction:
  // - if `tag` names an earlier private prediction of the tenant (same id
  //   and fingerprint), returns its stored answer with replayed = true and
  //   changes nothing (the same id with another fingerprint is
  //   InvalidArgument);
  // - else, when the debit does not fit, returns debited = false with the
  //   budget as it is, and changes nothing (the domain words the refusal);
  // - else debits, calls `answer` with the record after the debit and stores
  //   what it returns as the answer to `tag` (if not empty), then commits.
  // So a debit is on disk iff its answer is: a crash before the commit
  // debits nothing and stores nothing. Why a conditional debit rather than a
  // read-decide-write callback (as AppendDeletions): the condition is one
  // comparison of integers the caller computed, which any implementation can
  // check on the row it writes in the transaction that writes it, whatever
  // its locking (today both engines run it as one write transaction that
  // excludes every other: SQLite's BEGIN IMMEDIATE, PostgreSQL's write
  // advisory lock; a per-budget row lock or a single UPDATE ... WHERE spent
  // + quanta <= limit would keep the same contract), so concurrent debits
  // from any number of replicas never pass the limit, and the domain's
  // arithmetic never runs inside the store.
  // `answer` runs inside the transaction and must not call the store.
  // InvalidArgument for quanta or releases < 1 or limit < 0; NotFound for an
  // unknown or foreign model.
  virtual absl::StatusOr<PrivacyDebitResult> DebitPrivacyBudget(
      const std::string& tenant, const std::string& model_id, const PrivacyDebit& debit,
      const RequestTag& tag,
      const std::function<std::string(const PrivacySpendRecord&)>& answer) = 0;
  // The budget that model `model_id` draws on, with `client`'s share (zeros
  // if nothing was spent yet). NotFound for an unknown or foreign model.
  virtual absl::StatusOr<PrivacySpendRecord> GetPrivacySpend(const std::string& tenant,
                                                             const std::string& model_id,
                                                             const std::string& client) = 0;

 protected:
  // InsertDataset; `release`, if set, is emptied once `data` (the same
  // object) is encoded.
  virtual absl::StatusOr<DatasetRecord> DoInsertDataset(DatasetRecord record,
                                                        const agt::Dataset& data,
                                                        agt::Dataset* release,
                                                        const DatasetInsertOptions& options) = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_STORE_H_
