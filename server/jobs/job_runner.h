// The job runner: a pool of worker threads that takes QUEUED jobs from the
// store, trains them with the core (AGT, Algorithm 1), checkpoints them
// periodically, and stores the trained model; plus cancellation and progress
// watching.
//
// Persistence contract: the store is the only source of truth. A job's state
// changes only through Store transactions (claim, progress, checkpoint,
// complete / fail / cancel), so a crash at any point leaves a consistent row;
// Start() sends RUNNING rows left by a dead process back to the queue and
// workers resume them from their last checkpoint. Because the core's Trainer
// is deterministic and Restore continues exactly, a resumed job ends with
// bounds bit-identical to an uninterrupted run.
//
// Failure: any error while running a job (stored spec or dataset unreadable,
// spec invalid, bounds diverged, the model cannot be stored) marks it FAILED
// with a message naming the cause; the worker goes on with the next job.
// Poison-job guard: so does an exception escaping the job's training
// (std::bad_alloc when the job cannot get its memory, or any other; also from
// the trainer's own threads), so one job never takes the process down; a job
// the admission check (domain/admission.h) refuses under the runner's limits
// when it is claimed is FAILED without being trained; and a job that was
// RUNNING in more than max_crashes process deaths is FAILED at Start()
// instead of resumed (Store::RecoverAbandonedJobs). A
// periodic checkpoint that cannot be written is logged and retried at the
// next interval (training goes on), and storing the model is retried while
// the database is busy (another process holding its write lock).
//
// History and warnings: while a job trains the worker keeps its bounded
// width history (jobs/width_history.h), written with the job's progress,
// checkpoint and completion writes and restored on resume; when it finishes,
// the boxes are checked for vacuous certificates (domain/vacuity.h) and the
// warnings are stored with the model (Store::CompleteJob), so the final
// snapshot watchers get carries them.
//
// Split jobs (JobRunnerOptions::split_budgets_per_unit): each budget's box is
// independent of the others' and the nominal trajectory is deterministic, so
// a job can be trained as units of budget groups by several workers; workers
// take units before new jobs, so a split job's units finish first. A unit
// is leased, checkpointed and resumed as a job is; the last unit to finish
// assembles the model (checking that every unit's nominal parameters are
// the same bits), a unit's failure fails the job, a cancel of the job stops
// every unit at its next progress write.
//
// Thread-safety: all public methods may be called from any thread.
#ifndef AGT_SERVER_JOBS_JOB_RUNNER_H_
#define AGT_SERVER_JOBS_JOB_RUNNER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/cuda/backends.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/domain/admission.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"

namespace agt::server {

struct JobRunnerOptions {
  // Worker threads, i.e. jobs trained at the same time (>= 1).
  int workers = 1;
  // Save a checkpoint at least this often (seconds of training, > 0) ...
  double checkpoint_every_seconds = 2.0;
  // ... and, when > 0, also every this many steps.
  int64_t checkpoint_every_steps = 0;
  // Threads inside one job's trainer (TrainConfig::threads; 0 = hardware
  // concurrency). Results do not depend on it.
  int threads_per_job = 0;
  // The compute backend of jobs whose spec leaves it UNSPECIFIED
  // (--backend; core/cuda/backends.h).
  agt::BackendChoice backend = agt::BackendChoice::kAuto;
  // Progress is written to the store at most this often (it is always written
  // with checkpoints and at the end); watchers get every step.
  double progress_every_seconds = 0.2;
  // How often an idle worker polls the queue when nobody calls Wake().
  double idle_poll_seconds = 1.0;
  // Start(): a job RUNNING in more than this many process deaths is FAILED
  // instead of resumed (>= 0).
  int max_crashes = 2;
  // Checked again when a job is claimed (the server may have been restarted
  // with smaller limits since it was queued); threads_per_job is taken from
  // above. Default: no memory limit.
  JobLimits limits = {};
  // Optional (not owned, must outlive the runner): training iterations, step
  // times and the bound widths of running jobs (observability/metrics.h).
  Metrics* metrics = nullptr;
  // Several servers share the database (PostgreSQL, --role worker|all
  // replicas): Start() does not send RUNNING jobs back to the queue (their
  // workers may be alive; a dead worker's job is claimed again once its
  // lease expires, Store::ClaimNextQueuedJob) and Stop() requeues only this
  // runner's jobs (Store::ReleaseJobLeases). False: one server per database
  // (SQLite, whose file lock guarantees it).
  bool shared_database = false;
  // How long a claim holds without renewal (every progress write renews it):
  // a dead worker's job waits this long before another worker resumes it.
  int64_t lease_ms = kDefaultJobLeaseMs;
  // > 0: a job with more budgets than this is split per budget group when
  // it is claimed (Store::SplitJob): units of this many consecutive budgets
  // (the last may have fewer), each trained by whichever worker claims it
  // (this process's or another's on the same database); the worker that
  // finishes the last unit stores the model, bit for bit the unsplit one.
  // 0: jobs are trained whole. A split job keeps no width history.
  int split_budgets_per_unit = 0;
};

// A stream of snapshots of one job for one watcher. The first snapshot is
// the job's state when Watch was called (or a newer one). The queue is
// bounded: while the watcher is slow only the latest progress snapshot is
// kept, and the final state (SUCCEEDED, FAILED, CANCELLED) is always
// delivered, after which nothing more is. Non-final snapshots never go
// backwards (state, then iteration, never decrease).
class JobWatch {
 public:
  JobWatch() = default;
  JobWatch(const JobWatch&) = delete;
  JobWatch& operator=(const JobWatch&) = delete;

  // Waits up to `timeout` for the next snapshot. Returns true and fills *out
  // when one arrives. Returns false on timeout (Finished() is false: call
  // again) or when the stream has ended (Finished() is true: the final state
  // was delivered, Close() was called, or the runner stopped).
  bool Next(JobRecord* out, std::chrono::milliseconds timeout);
  // True once Next will never return a snapshot again.
  bool Finished() const;
  // Ends the stream (e.g. the client went away); wakes a waiting Next.
  void Close();

  // For the runner: offers a snapshot (dropped if it would go backwards or
  // after the final state).
  void Push(const JobRecord& snapshot);

 private:
  static bool Before(const JobRecord& a, const JobRecord& b);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<JobRecord> pending_;  // latest non-final snapshot not yet delivered
  std::optional<JobRecord> final_;    // the final snapshot, not yet delivered
  std::optional<JobRecord> last_;     // the last snapshot accepted
  bool final_seen_ = false;           // a final snapshot was accepted
  bool closed_ = false;               // Close() or everything delivered
};

class JobRunner {
 public:
  // `store` is not owned and must outlive the runner.
  JobRunner(Store* store, JobRunnerOptions options);
  // Calls Stop().
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Store::RecoverAbandonedJobs (jobs of a previous process go back to the
  // queue, keeping their checkpoints, unless they crashed it too often),
  // then starts the workers. A server calls it once it serves RPCs, so that
  // a job that would crash it can still be seen and cancelled. Fails
  // (InvalidArgument) on bad options, (FailedPrecondition) if called twice,
  // or with the store's error.
  absl::Status Start();

  // Graceful stop: every running job stops at its current step boundary,
  // saves a checkpoint there and goes back to QUEUED; workers are joined and
  // every watch is closed. Nothing is lost: a later runner on the same store
  // resumes the jobs. Idempotent; safe before Start().
  void Stop();

  // Several servers on one database: the jobs watched here may be trained
  // by another process, whose steps this runner never sees. Starts a thread
  // that reads every watched job from the store each idle_poll_seconds and
  // publishes what changed (the final state included), so a watch on an API
  // replica follows the job at that rate. Stop() ends it. Needs no Start()
  // (an API replica trains nothing). Idempotent.
  void StartWatchPolling();

  // A job was queued: wakes an idle worker at once (otherwise workers poll
  // every idle_poll_seconds).
  void Wake();

  // Cancels a job of `tenant`: a QUEUED job becomes CANCELLED at once; a
  // RUNNING job is flagged (in the store and in memory) and its worker stops
  // before its next step and marks it CANCELLED. Returns the job after the
  // request (a RUNNING job is returned RUNNING with cancel_requested set).
  // NotFound for an unknown or foreign id, FailedPrecondition for a job in a
  // final state (the store's errors).
  absl::StatusOr<JobRecord> Cancel(const std::string& tenant, const std::string& job_id);

  // Watches a job of `tenant` (NotFound for an unknown or foreign id). The
  // watch gets the current state first, then every progress step (latest
  // only while slow), then the final state. The runner keeps only a weak
  // reference: dropping the watch (or Close()) unsubscribes.
  absl::StatusOr<std::shared_ptr<JobWatch>> Watch(const std::string& tenant,
                                                  const std::string& job_id);

  // Jobs being trained right now (for tests and diagnostics).
  int running_jobs() const;

  // The admission limits this runner trains under (threads_per_job filled
  // in), for services that enqueue jobs: AdmitJob(resolved, dataset,
  // runner->job_limits()) before InsertJob refuses up front what the runner
  // would fail at claim.
  JobLimits job_limits() const {
    JobLimits limits = options_.limits;
    limits.threads_per_job = options_.threads_per_job;
    return limits;
  }

 private:
  struct RunningJob;

  void WorkerLoop();
  void WatchPollLoop();
  // TrainJob behind the poison-job guard (exceptions mark the job FAILED).
  // `unit`: one unit of a split job (null: the whole job).
  void RunJob(JobRecord job, const JobUnitRecord* unit = nullptr);
  // *phase says what it is doing, for the guard's message.
  void TrainJob(JobRecord job, const JobUnitRecord* unit, std::string* phase);
  // Publishes a snapshot to the job's watchers; a final snapshot also
  // removes them.
  void Publish(const JobRecord& snapshot);
  // Reads the job from the store and publishes it (after a final change).
  void PublishFromStore(const JobRecord& job);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  Store* const store_;
  const JobRunnerOptions options_;

  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable wake_cv_;
  bool started_ = false;
  bool stopped_ = false;
  int64_t wake_generation_ = 0;
  std::vector<std::thread> workers_;
  std::map<std::string, std::shared_ptr<RunningJob>> running_;            // by job id
  std::map<std::string, std::vector<std::weak_ptr<JobWatch>>> watchers_;  // by job id
  std::map<std::string, std::string> watched_tenants_;                    // by job id
  std::thread watch_poller_;
  std::condition_variable poll_cv_;  // wakes the poller at Stop()
};

}  // namespace agt::server

#endif  // AGT_SERVER_JOBS_JOB_RUNNER_H_
