// Admission control for training jobs (issue 17): an up-front estimate of a
// job's peak memory, checkpoint size and work, computed from its resolved
// configuration and its dataset's shape, and the check against the server's
// limits that every path which enqueues a job calls (SubmitTrainingJob, the
// retraining the unlearning service enqueues, and the job runner again when
// it claims a job, in case the limits changed since).
//
// What is counted (from what core/backend/cpu_backend.cc and
// core/aggregate/aggregate.cc really allocate), in bytes of float64:
//   aggregators  per budget: 2 streaming top-k sides x min(k, b - k) slots
//                per parameter, plus 6 vectors of P (sums, thresholds), and
//                the nominal mean (P): 8 P (2 min(k, b-k) + 6) per budget;
//   passes       the factored per-sample bounds of the whole batch (or of
//                factor_rows rows, TrainConfig::factor_rows), held for every
//                pass at once (nominal + one per budget, two per budget under
//                bounded poisoning): per dense layer b (4 out + 3 in);
//                the boxed weights of every budget (6 P); the in-flight
//                256-row chunks of the forward/backward passes and the
//                phase-2 blocks, per thread;
//   state        the parameter state (nominal, the boxes, velocities) with the
//                step's directions and temporaries, and the checkpoint being
//                encoded and bound into SQLite (two more copies of it);
//   dataset      the stored rows as loaded (blob and matrix) and expanded.
//   slack        what the parts do not see: the allocator keeping memory that
//                the passes' temporaries freed (up to as much again as the
//                passes), 5% of the aggregators, 25% of state and dataset,
//                32 MB for the trainer's threads and arenas.
// The sum is meant as an upper bound on the job's peak resident memory for
// dense models, checked against real runs of several shapes in
// tests/server/admission_test.cc (estimate / measured between 1 and 4), not a
// prediction of it: the process's own baseline (code, gRPC, SQLite's page
// cache) is not included.
//
// Soundness of the limit: a job whose estimate is within
// max_job_memory_bytes may still fail to allocate when other jobs or
// requests use the machine; the job runner then marks it FAILED (poison-job
// guard, jobs/job_runner.h) instead of the process dying.
//
// Thread-safety: pure functions, except MachineMemoryBytes (reads /proc and
// /sys).
#ifndef AGT_SERVER_DOMAIN_ADMISSION_H_
#define AGT_SERVER_DOMAIN_ADMISSION_H_

#include <cstdint>
#include <string>

#include "core/cuda/backends.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/train/config.h"
#include "server/domain/job_spec.h"
#include "server/store/store.h"

namespace agt::server {

struct JobEstimate {
  int64_t aggregator_bytes = 0;
  int64_t pass_bytes = 0;
  int64_t state_bytes = 0;
  int64_t dataset_bytes = 0;
  // Freed-but-kept memory of the passes' temporaries, allocation rounding,
  // the trainer's threads: what the measured peaks showed beyond the parts.
  int64_t slack_bytes = 0;
  int64_t peak_bytes = 0;  // the sum of the five above
  // The encoded checkpoint (core TrainState: nominal, boxes, velocities): the
  // largest single blob the job writes to the store.
  int64_t checkpoint_bytes = 0;
  // Element operations of the whole run (all steps): a measure of work for
  // messages and logs, not a time.
  double work_ops = 0.0;
  int64_t total_steps = 0;
  // Trainer threads the estimate assumes (>= 1; per-thread scratch counts
  // for each), and the TrainConfig::factor_rows it assumes (0 = the whole
  // batch's factors at once). AdmitJob may lower the first and set the
  // second to make a job fit; the runner trains with both.
  int threads = 1;
  int factor_rows = 0;

  // "38.2 GB (aggregators 33.9 GB, passes 931.4 MB, parameter state 605.5 MB,
  // dataset 144.0 KB, allocator and runtime slack 2.8 GB)".
  std::string Describe() const;
};

// The server's limits on one job.
struct JobLimits {
  // Largest estimated peak memory of one job; 0 = no limit.
  int64_t max_job_memory_bytes = 0;
  // Where the limit came from, for messages: "--max-job-memory" or the
  // default's derivation ("default: 75% of 23.4 GB / 1 worker").
  std::string max_job_memory_source = "--max-job-memory";
  // Largest blob the store can hold (SQLite's SQLITE_LIMIT_LENGTH,
  // Store::MaxBlobBytes); 0 = no limit.
  int64_t max_blob_bytes = 0;
  // Threads one job's trainer uses (the runner's threads_per_job; 0 = the
  // hardware concurrency): per-thread scratch is counted for each.
  int threads_per_job = 0;
};

// The server's admission limits for every job it enqueues (submitted, or a
// retraining after deletions).
struct JobAdmission {
  JobLimits limits;
  int max_jobs_per_tenant = 0;  // QUEUED + RUNNING; 0 = no limit
  // The compute backend of specs that leave it UNSPECIFIED (--backend).
  agt::BackendChoice default_backend = agt::BackendChoice::kAuto;
  // True when this process trains the jobs it accepts (--role all): a job
  // that needs CUDA is then refused at submit when no GPU is visible here.
  // An API-only server cannot see its workers' devices: a worker without a
  // GPU fails such a job, saying so.
  bool checks_backend_at_submit = true;
};

// The estimate for `config` (validated, dense or conv layers) trained on
// `num_rows` rows of `raw_features` features (before polynomial expansion;
// the expanded width is config.model.InputDim()).
JobEstimate EstimateJob(const agt::TrainConfig& config, int64_t num_rows, int raw_features,
                        int threads_per_job);

// OK when the estimate fits; otherwise ResourceExhausted naming the figure,
// its parts and the limit, e.g. "job needs an estimated 33.8 GB (aggregators
// 33.6 GB, ...); the server's --max-job-memory is 16.0 GB: ...", or naming the
// checkpoint size and SQLite's blob limit.
absl::Status CheckJobFits(const JobEstimate& estimate, const JobLimits& limits);

// EstimateJob for a job resolved against its dataset, then CheckJobFits:
// the one call every path that enqueues or starts a job makes. Returns the
// estimate when it fits. A job that does not fit as configured is made to
// fit when it can, cheapest first: one trainer thread (each holds its own
// in-flight chunks and blocks), then factors held 256 x threads rows at a
// time (TrainConfig::factor_rows: the passes' memory no longer grows with the
// batch), then both; the returned estimate says which (`threads`,
// `factor_rows`), and the runner trains so. Results do not depend on either.
// Otherwise the error is the configuration's as given.
absl::StatusOr<JobEstimate> AdmitJob(const ResolvedJob& job, const DatasetRecord& dataset,
                                     const JobLimits& limits);

// The machine's memory for jobs: MemTotal from /proc/meminfo, or the cgroup
// memory limit when it is lower (containers). Unavailable if neither can be
// read.
absl::StatusOr<int64_t> MachineMemoryBytes();

// The default --max-job-memory: 75% of the machine's memory divided by the
// number of workers (jobs trained at once). Sets *source to a description.
int64_t DefaultMaxJobMemory(int64_t machine_bytes, int workers, std::string* source);

// "1.5 GB", "800 MB", "12 KB", "512 B" (decimal units, one decimal).
std::string FormatBytes(int64_t bytes);

// Parses a memory size: bytes, or a number with K, M, G, T (decimal, "B"
// optional) or KiB, MiB, GiB, TiB (binary): "512M", "16GB", "1.5G", "2GiB".
// InvalidArgument naming the text.
absl::StatusOr<int64_t> ParseByteSize(const std::string& text);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_ADMISSION_H_
