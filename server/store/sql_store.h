// The store's one implementation of store.h in SQL, over the seam of
// server/store/sql.h; the engine is chosen by the function that opens it
// (sqlite_store.h, postgres_store.h), and this class knows neither.
//
// How it keeps store.h's promises: one connection behind a mutex (the
// methods of one process are serialised); every write that reads before it
// decides runs in a kWrite transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL:
// a database-wide transaction-scoped advisory lock), so a read-decide-write
// never interleaves with another process's or replica's; reads run in a
// snapshot; the job queue's claim is a kRowLocks transaction whose SELECT
// skips rows other claimers hold (PostgreSQL: FOR UPDATE SKIP LOCKED), and
// every write that reads one job's state before changing it locks the row
// first (RowLockClause), so a claim and, say, a cancel of the same job are
// ordered. Leases: each SqlStore is one worker (a random instance name); a
// claim's token "<instance>:<n>" is stored in jobs.lease_owner and kept in
// memory, and the worker's later writes to the job check it (store.h).
// Units of split jobs (job_units) carry their own lease the same way; their
// claim locks the unit row only (the job is read in a subquery), so workers
// claiming units of one job skip each other's rows instead of the job's.
//
// Thread-safety: all methods may be called concurrently.
#ifndef AGT_SERVER_STORE_SQL_STORE_H_
#define AGT_SERVER_STORE_SQL_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/sql.h"
#include "server/store/store.h"

namespace agt::server {

class SqlStore final : public Store {
 public:
  // Takes over a connection whose schema is current (the engine's Open
  // function migrated it).
  explicit SqlStore(std::unique_ptr<SqlDb> db);
  ~SqlStore() override;

  absl::StatusOr<DatasetRecord> GetDataset(const std::string& tenant,
                                           const std::string& id) override;
  absl::StatusOr<agt::Dataset> LoadDatasetData(const std::string& tenant,
                                               const std::string& id) override;
  absl::StatusOr<Page<DatasetRecord>> ListDatasets(const std::string& tenant, int page_size,
                                                   const std::string& page_token) override;
  absl::Status DeleteDataset(const std::string& tenant, const std::string& id) override;
  absl::StatusOr<JobRecord> InsertJob(JobRecord record, const JobInsertOptions& options) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& tenant, const std::string& id) override;
  absl::StatusOr<Page<JobRecord>> ListJobs(const std::string& tenant, std::optional<JobState> state,
                                           int page_size, const std::string& page_token) override;
  absl::Status DeleteJob(const std::string& tenant, const std::string& id) override;
  absl::StatusOr<std::map<std::string, int64_t>> CountJobsByState() override;
  absl::StatusOr<std::optional<JobRecord>> ClaimNextQueuedJob() override;
  void SetJobLease(int64_t lease_ms, int max_crashes) override;
  absl::Status RenewJobLease(const std::string& job_id) override;
  absl::StatusOr<int> ReleaseJobLeases() override;
  absl::Status SplitJob(const std::string& job_id,
                        const std::vector<std::vector<int>>& groups) override;
  absl::StatusOr<std::optional<JobUnitRecord>> ClaimNextJobUnit() override;
  absl::Status UpdateJobUnitProgress(const std::string& job_id, int unit,
                                     const JobProgressRecord& progress,
                                     int64_t dropped_rows_per_epoch) override;
  absl::Status SaveJobUnitCheckpoint(const std::string& job_id, int unit,
                                     const agt::TrainState& state,
                                     const JobProgressRecord& progress) override;
  absl::StatusOr<bool> CompleteJobUnit(const std::string& job_id, int unit,
                                       const agt::TrainState& state) override;
  absl::StatusOr<std::vector<JobUnitResult>> LoadJobUnitResults(const std::string& job_id) override;
  absl::Status UpdateJobProgress(const std::string& job_id, const JobProgressRecord& progress,
                                 int64_t dropped_rows_per_epoch,
                                 const WidthHistoryRecord* history) override;
  absl::Status SaveCheckpoint(const std::string& job_id, const agt::TrainState& state,
                              const JobProgressRecord& progress,
                              const WidthHistoryRecord* history) override;
  absl::StatusOr<std::optional<agt::TrainState>> LoadCheckpoint(const std::string& job_id) override;
  absl::StatusOr<std::string> CompleteJob(const std::string& job_id, ModelRecord model,
                                          const JobProgressRecord& progress,
                                          const WidthHistoryRecord* history) override;
  absl::Status FailJob(const std::string& job_id, const std::string& error) override;
  absl::StatusOr<JobRecord> RequestCancel(const std::string& tenant,
                                          const std::string& id) override;
  absl::Status MarkCancelled(const std::string& job_id) override;
  absl::StatusOr<bool> IsCancelRequested(const std::string& job_id) override;
  absl::StatusOr<WidthHistoryRecord> GetWidthHistory(const std::string& job_id,
                                                     const std::string* tenant) override;
  absl::StatusOr<int> RequeueRunningJobs() override;
  absl::StatusOr<JobRecovery> RecoverAbandonedJobs(int max_crashes) override;
  int64_t MaxBlobBytes() override;
  absl::StatusOr<ModelRecord> GetModel(const std::string& tenant, const std::string& id) override;
  absl::StatusOr<Page<ModelRecord>> ListModels(const std::string& tenant, int page_size,
                                               const std::string& page_token) override;
  absl::Status DeleteModel(const std::string& tenant, const std::string& id) override;
  absl::StatusOr<DeletionWriteResult> AppendDeletions(const std::string& tenant,
                                                      const std::string& model_id,
                                                      const std::string& requested_by,
                                                      const RequestTag& tag,
                                                      const DeletionDecider& decide) override;
  absl::StatusOr<std::vector<DeletionRecord>> ListDeletions(const std::string& tenant,
                                                            const std::string& model_id) override;
  absl::StatusOr<Page<DeletionRecord>> ListDeletionPage(const std::string& tenant,
                                                        const std::string& model_id, int page_size,
                                                        const std::string& page_token) override;
  absl::StatusOr<int64_t> CountAcceptedDeletions(const std::string& tenant,
                                                 const std::string& model_id) override;
  absl::Status RecordRetraining(const std::string& tenant, const RetrainingRecord& record) override;
  absl::StatusOr<std::optional<RetrainingRecord>> GetRetraining(
      const std::string& tenant, const std::string& model_id) override;
  absl::StatusOr<std::optional<std::string>> FindRequest(const std::string& tenant,
                                                         RequestKind kind,
                                                         const RequestTag& tag) override;
  absl::StatusOr<PrivacyDebitResult> DebitPrivacyBudget(
      const std::string& tenant, const std::string& model_id, const PrivacyDebit& debit,
      const RequestTag& tag,
      const std::function<std::string(const PrivacySpendRecord&)>& answer) override;
  absl::StatusOr<PrivacySpendRecord> GetPrivacySpend(const std::string& tenant,
                                                     const std::string& model_id,
                                                     const std::string& client) override;

 protected:
  absl::StatusOr<DatasetRecord> DoInsertDataset(DatasetRecord record, const agt::Dataset& data,
                                                agt::Dataset* release,
                                                const DatasetInsertOptions& options) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_SQL_STORE_H_
