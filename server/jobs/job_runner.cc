#include "server/jobs/job_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agt/v1/training.pb.h"
#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "server/domain/job_spec.h"
#include "server/domain/vacuity.h"
#include "server/jobs/width_history.h"
#include "server/observability/log.h"

namespace agt::server {
namespace {

using Clock = std::chrono::steady_clock;

// Tries at a job's final write (model, failure, cancellation) while the
// database is busy.
constexpr int kBusyAttempts = 5;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void LogError(const std::string& what) { Log(LogLevel::kError, "job_error", {{"msg", what}}); }

// A job's lifecycle event (observability/log.h; server/README.md "Logs").
void LogJob(LogLevel level, const char* event, const JobRecord& job, nlohmann::json fields = {}) {
  if (!fields.is_object()) fields = nlohmann::json::object();
  fields["job"] = job.id;
  fields["tenant"] = job.tenant;
  Log(level, event, std::move(fields));
}

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Runs a job's final store write again while the database is busy (another
// process holding its write lock; each try already waits out SQLite's busy
// timeout), so that a finished job is not lost to it, nor left RUNNING.
template <typename Write>
auto RetryWhileBusy(const std::string& what, const Write& write) {
  auto result = write();
  for (int attempt = 1; attempt < kBusyAttempts && absl::IsUnavailable(StatusOf(result));
       ++attempt) {
    LogError(
        absl::StrCat(what, ", attempt ", attempt, ": ", StatusOf(result).ToString(), "; retrying"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    result = write();
  }
  return result;
}

WidthPointRecord PointOf(const JobProgressRecord& progress) {
  return WidthPointRecord{progress.iteration, progress.epoch, progress.nominal_loss,
                          progress.total_width};
}

int StateRank(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return 0;
    case JobState::kRunning:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

// ---------------------------------------------------------------- JobWatch

bool JobWatch::Before(const JobRecord& a, const JobRecord& b) {
  if (StateRank(a.state) != StateRank(b.state)) return StateRank(a.state) < StateRank(b.state);
  return a.progress.iteration < b.progress.iteration;
}

void JobWatch::Push(const JobRecord& snapshot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || final_seen_) return;
    if (IsFinal(snapshot.state)) {
      final_ = snapshot;
      final_seen_ = true;
    } else {
      if (last_.has_value() && Before(snapshot, *last_)) return;
      pending_ = snapshot;
    }
    last_ = snapshot;
  }
  cv_.notify_all();
}

bool JobWatch::Next(JobRecord* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout,
               [&] { return closed_ || pending_.has_value() || final_.has_value(); });
  if (closed_) return false;
  if (pending_.has_value()) {
    *out = *std::move(pending_);
    pending_.reset();
    return true;
  }
  if (final_.has_value()) {
    *out = *std::move(final_);
    final_.reset();
    closed_ = true;  // the final state was delivered: the stream ends
    return true;
  }
  return false;
}

bool JobWatch::Finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void JobWatch::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    pending_.reset();
    final_.reset();
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------- JobRunner

struct JobRunner::RunningJob {
  std::atomic<bool> cancel{false};
};

JobRunner::JobRunner(Store* store, JobRunnerOptions options) : store_(store), options_(options) {}

JobRunner::~JobRunner() { Stop(); }

absl::Status JobRunner::Start() {
  if (options_.workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat("workers: ", options_.workers, " must be >= 1"));
  }
  if (!(options_.checkpoint_every_seconds > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint_every_seconds: must be > 0, got ",
                                                   options_.checkpoint_every_seconds));
  }
  if (options_.checkpoint_every_steps < 0 || options_.threads_per_job < 0 ||
      options_.max_crashes < 0) {
    return absl::InvalidArgumentError(
        "checkpoint_every_steps, threads_per_job and max_crashes must be >= 0");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stopped_) {
    return absl::FailedPreconditionError("the job runner was already started");
  }
  store_->SetJobLease(options_.lease_ms, options_.max_crashes);
  if (!options_.shared_database) {
    absl::StatusOr<JobRecovery> recovered = store_->RecoverAbandonedJobs(options_.max_crashes);
    if (!recovered.ok()) return recovered.status();
    if (recovered->failed > 0) {
      LogError(absl::StrCat(recovered->failed, " job(s) were running in more than ",
                            options_.max_crashes,
                            " server crashes and were marked FAILED instead of resumed"));
    }
  }
  started_ = true;
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void JobRunner::Stop() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_.store(true, std::memory_order_release);
    workers.swap(workers_);
  }
  wake_cv_.notify_all();
  poll_cv_.notify_all();
  for (std::thread& t : workers) t.join();
  if (watch_poller_.joinable()) watch_poller_.join();
  // Workers left their jobs RUNNING with a fresh checkpoint; put them back.
  if (!workers.empty()) {
    absl::StatusOr<int> n =
        options_.shared_database ? store_->ReleaseJobLeases() : store_->RequeueRunningJobs();
    if (!n.ok()) {
      LogError(absl::StrCat("requeue at stop: ", n.status().ToString()));
    }
  }
  // After the workers' last publications: end every stream.
  std::map<std::string, std::vector<std::weak_ptr<JobWatch>>> watchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    watchers.swap(watchers_);
  }
  for (auto& [id, list] : watchers) {
    for (std::weak_ptr<JobWatch>& w : list) {
      if (std::shared_ptr<JobWatch> watch = w.lock()) watch->Close();
    }
  }
}

void JobRunner::StartWatchPolling() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_ || watch_poller_.joinable()) return;
  watch_poller_ = std::thread([this] { WatchPollLoop(); });
}

void JobRunner::WatchPollLoop() {
  const auto every = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.01, options_.idle_poll_seconds)));
  // What was last published per job, so that an unchanged job sends no
  // event: (state, iteration, cancel_requested).
  std::map<std::string, std::tuple<JobState, int64_t, bool>> published;
  while (!stopping()) {
    std::vector<std::pair<std::string, std::string>> watched;  // (job, tenant)
    {
      std::unique_lock<std::mutex> lock(mu_);
      poll_cv_.wait_for(lock, every, [&] { return stopping(); });
      if (stopping()) return;
      for (auto it = watched_tenants_.begin(); it != watched_tenants_.end();) {
        if (watchers_.count(it->first) == 0) {
          it = watched_tenants_.erase(it);  // every watch of it ended
          continue;
        }
        // Jobs trained here publish every step themselves.
        if (running_.count(it->first) == 0) watched.emplace_back(it->first, it->second);
        ++it;
      }
    }
    for (const auto& [job_id, tenant] : watched) {
      absl::StatusOr<JobRecord> now = store_->GetJob(tenant, job_id);
      if (!now.ok()) continue;
      const auto key = std::make_tuple(now->state, now->progress.iteration, now->cancel_requested);
      auto [it, inserted] = published.emplace(job_id, key);
      if (!inserted && it->second == key) continue;
      it->second = key;
      Publish(*now);
      if (IsFinal(now->state)) published.erase(job_id);
    }
  }
}

void JobRunner::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++wake_generation_;
  }
  wake_cv_.notify_one();
}

int JobRunner::running_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(running_.size());
}

absl::StatusOr<JobRecord> JobRunner::Cancel(const std::string& tenant, const std::string& job_id) {
  absl::StatusOr<JobRecord> job = store_->RequestCancel(tenant, job_id);
  if (!job.ok()) return job;
  if (IsFinal(job->state)) {
    Publish(*job);  // a queued job was cancelled at once
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = running_.find(job_id); it != running_.end()) {
      it->second->cancel.store(true, std::memory_order_release);
    }
    // Not registered yet: the worker reads cancel_requested from the store
    // right after registering, so the request is not missed.
  }
  return job;
}

absl::StatusOr<std::shared_ptr<JobWatch>> JobRunner::Watch(const std::string& tenant,
                                                           const std::string& job_id) {
  auto watch = std::make_shared<JobWatch>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      return absl::UnavailableError("the job runner is stopping");
    }
    // Subscribe before reading the current state, so a final change between
    // the read and the subscription cannot be missed.
    watched_tenants_[job_id] = tenant;
    std::vector<std::weak_ptr<JobWatch>>& list = watchers_[job_id];
    std::erase_if(list, [](const std::weak_ptr<JobWatch>& w) { return w.expired(); });
    list.push_back(watch);
  }
  absl::StatusOr<JobRecord> job = store_->GetJob(tenant, job_id);
  if (!job.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = watchers_.find(job_id); it != watchers_.end()) {
      std::erase_if(it->second, [&](const std::weak_ptr<JobWatch>& w) {
        return w.expired() || w.lock() == watch;
      });
      if (it->second.empty()) watchers_.erase(it);
    }
    return job.status();
  }
  watch->Push(*job);
  if (IsFinal(job->state)) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = watchers_.find(job_id); it != watchers_.end()) {
      std::erase_if(it->second, [&](const std::weak_ptr<JobWatch>& w) {
        return w.expired() || w.lock() == watch;
      });
      if (it->second.empty()) watchers_.erase(it);
    }
  }
  return watch;
}

void JobRunner::Publish(const JobRecord& snapshot) {
  std::vector<std::shared_ptr<JobWatch>> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = watchers_.find(snapshot.id);
    if (it == watchers_.end()) return;
    for (const std::weak_ptr<JobWatch>& w : it->second) {
      if (std::shared_ptr<JobWatch> watch = w.lock(); watch && !watch->Finished()) {
        targets.push_back(std::move(watch));
      }
    }
    if (IsFinal(snapshot.state) || targets.empty()) {
      watchers_.erase(it);
    } else if (targets.size() != it->second.size()) {
      it->second.assign(targets.begin(), targets.end());
    }
  }
  for (const std::shared_ptr<JobWatch>& watch : targets) watch->Push(snapshot);
}

void JobRunner::PublishFromStore(const JobRecord& job) {
  absl::StatusOr<JobRecord> now = store_->GetJob(job.tenant, job.id);
  if (now.ok()) {
    Publish(*now);
  } else {
    LogError(absl::StrCat("job ", job.id, ": reading it back: ", now.status().ToString()));
  }
}

void JobRunner::WorkerLoop() {
  const auto idle = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.001, options_.idle_poll_seconds)));
  while (!stopping()) {
    int64_t generation;
    {
      std::lock_guard<std::mutex> lock(mu_);
      generation = wake_generation_;
    }
    // Units of split jobs first: they finish jobs already started.
    absl::StatusOr<std::optional<JobUnitRecord>> unit = store_->ClaimNextJobUnit();
    if (unit.ok() && unit->has_value()) {
      const JobUnitRecord record = **std::move(unit);
      RunJob(record.job, &record);
      continue;
    }
    if (!unit.ok()) LogError(absl::StrCat("unit claim: ", unit.status().ToString()));
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
    if (claimed.ok() && claimed->has_value()) {
      RunJob(**std::move(claimed));
      continue;
    }
    if (!claimed.ok()) LogError(absl::StrCat("claim: ", claimed.status().ToString()));
    std::unique_lock<std::mutex> lock(mu_);
    wake_cv_.wait_for(lock, idle, [&] { return stopping() || wake_generation_ != generation; });
  }
}

void JobRunner::RunJob(JobRecord job, const JobUnitRecord* unit) {
  const std::string id = job.id, tenant = job.tenant;
  std::string why;
  std::string phase = "starting";
  try {
    TrainJob(std::move(job), unit, &phase);
    return;
  } catch (const std::bad_alloc&) {
    why = absl::StrCat(
        "out of memory: an allocation failed while ", phase,
        " (std::bad_alloc); the job needs more memory than the server could give it: resubmit "
        "with smaller settings (fewer or smaller budgets, a smaller batch or model)");
  } catch (const std::exception& e) {
    why = absl::StrCat("the job failed with an exception while ", phase, ": ", e.what());
  } catch (...) {
    why = absl::StrCat("the job failed with an unknown exception while ", phase);
  }
  // TrainJob's memory is released by now.
  Log(LogLevel::kError, "job_failed", {{"job", id}, {"tenant", tenant}, {"error", why}});
  if (absl::Status s = RetryWhileBusy(absl::StrCat("job ", id, ": FailJob"),
                                      [&] { return store_->FailJob(id, why); });
      !s.ok()) {
    LogError(absl::StrCat("job ", id, ": FailJob: ", s.ToString()));
  }
  absl::StatusOr<JobRecord> now = store_->GetJob(tenant, id);
  if (now.ok()) Publish(*now);
}

void JobRunner::TrainJob(JobRecord job, const JobUnitRecord* unit, std::string* phase) {
  auto running = std::make_shared<RunningJob>();
  // A unit registers under "<job>#<unit>": several units of one job may run
  // here, and the watch poller keeps following the job (its other units run
  // elsewhere). Cancel reaches units through the store (progress writes).
  const std::string running_key = unit == nullptr ? job.id : absl::StrCat(job.id, "#", unit->unit);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_[running_key] = running;
  }
  struct Unregister {
    JobRunner* runner;
    const std::string& key;
    const std::string& id;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(runner->mu_);
      runner->running_.erase(key);
      if (runner->options_.metrics != nullptr) runner->options_.metrics->JobEnded(id);
    }
  } unregister{this, running_key, job.id};
  // Metrics are per job; a unit trains a part of its budgets.
  Metrics* const metrics = unit == nullptr ? options_.metrics : nullptr;
  // Before any final state is stored: a client that sees the job end (and
  // then scrapes) finds no gauges of it. Unregister drops them again (a
  // no-op then) for the paths that end otherwise (stop, exceptions).
  auto end_metrics = [&] {
    if (metrics != nullptr) metrics->JobEnded(job.id);
  };

  auto fail = [&](const std::string& cause) {
    // A unit's failure is the job's; the message says which unit (budgets).
    const std::string why =
        unit == nullptr ? cause
                        : absl::StrCat("unit ", unit->unit, " (budget indices ",
                                       absl::StrJoin(unit->budget_indices, ","), "): ", cause);
    end_metrics();
    LogJob(LogLevel::kError, "job_failed", job, {{"error", why}});
    if (absl::Status s = RetryWhileBusy(absl::StrCat("job ", job.id, ": FailJob"),
                                        [&] { return store_->FailJob(job.id, why); });
        !s.ok()) {
      LogError(absl::StrCat("job ", job.id, ": FailJob: ", s.ToString(), " (cause: ", why, ")"));
    }
    PublishFromStore(job);
  };
  auto cancel = [&] {
    end_metrics();
    LogJob(LogLevel::kInfo, "job_cancelled", job);
    if (absl::Status s = RetryWhileBusy(absl::StrCat("job ", job.id, ": MarkCancelled"),
                                        [&] { return store_->MarkCancelled(job.id); });
        !s.ok()) {
      LogError(absl::StrCat("job ", job.id, ": MarkCancelled: ", s.ToString()));
    }
    PublishFromStore(job);
  };

  Publish(job);
  // A cancel request that came before this worker registered the job.
  if (absl::StatusOr<bool> c = store_->IsCancelRequested(job.id); c.ok() && *c) {
    return cancel();
  }

  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(job.spec)) return fail("the stored job spec does not parse");
  absl::StatusOr<DatasetRecord> dataset = store_->GetDataset(job.tenant, job.dataset_id);
  if (!dataset.ok()) {
    return fail(absl::StrCat("dataset ", job.dataset_id, ": ", dataset.status().message()));
  }
  absl::StatusOr<ResolvedJob> resolved = ResolveJobSpec(spec, *dataset);
  if (!resolved.ok()) return fail(absl::StrCat("invalid spec: ", resolved.status().message()));
  absl::StatusOr<JobEstimate> admitted = AdmitJob(*resolved, *dataset, job_limits());
  if (!admitted.ok()) return fail(std::string(admitted.status().message()));
  LogJob(LogLevel::kInfo, "job_admitted", job,
         {{"msg", absl::StrFormat("estimated peak memory %s on %d thread(s), factors of %d rows at "
                                  "a time (0 = the whole batch), %.3g element operations",
                                  admitted->Describe(), admitted->threads, admitted->factor_rows,
                                  admitted->work_ops)},
          {"threads", admitted->threads},
          {"factor_rows", admitted->factor_rows}});
  const size_t num_budgets = resolved->config.budgets.size();
  if (unit == nullptr && options_.split_budgets_per_unit > 0 &&
      num_budgets > static_cast<size_t>(options_.split_budgets_per_unit)) {
    *phase = "splitting the job into units";
    std::vector<std::vector<int>> groups;
    for (size_t j = 0; j < num_budgets; ++j) {
      if (j % options_.split_budgets_per_unit == 0) groups.emplace_back();
      groups.back().push_back(static_cast<int>(j));
    }
    if (absl::Status s = store_->SplitJob(job.id, groups); !s.ok()) {
      if (absl::IsAborted(s)) return;  // another worker has the job now
      return fail(absl::StrCat("splitting the job into units: ", s.message()));
    }
    LogJob(LogLevel::kInfo, "job_split", job,
           {{"units", groups.size()}, {"budgets_per_unit", options_.split_budgets_per_unit}});
    wake_cv_.notify_all();  // idle workers here take units at once
    return;
  }
  if (unit != nullptr) {
    for (int index : unit->budget_indices) {
      if (index < 0 || static_cast<size_t>(index) >= num_budgets) {
        return fail(absl::StrCat("unit ", unit->unit, " names budget index ", index,
                                 " but the spec has ", num_budgets, " budgets"));
      }
    }
  }
  *phase = "loading the dataset";
  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData(job.tenant, job.dataset_id);
  if (!data.ok()) {
    return fail(absl::StrCat("dataset ", job.dataset_id, ": ", data.status().message()));
  }
  // Raw rows (the certifier expands them itself) for the vacuity check at
  // the end; taken before the expansion below.
  const agt::Dataset vacuity_sample =
      resolved->num_classes > 0 ? VacuitySample(*data) : agt::Dataset{};
  if (resolved->polynomial_degree > 1) {
    *phase = "expanding the polynomial features";
    data->x = agt::PolynomialFeatures(data->x, resolved->polynomial_degree);
  }
  *phase = "setting up the trainer (aggregators, parameter boxes)";
  agt::TrainConfig config = resolved->config;
  // The admission's thread count and factor grouping: fewer threads, or
  // factors held a few chunks at a time, when only that fits (results are
  // the same either way).
  config.threads = admitted->threads;
  config.factor_rows = admitted->factor_rows;
  // A unit trains the nominal trajectory and its budgets' boxes only.
  const std::vector<agt::Budget> all_budgets = config.budgets;
  if (unit != nullptr) {
    config.budgets.clear();
    for (int index : unit->budget_indices) config.budgets.push_back(all_budgets[index]);
  }
  // A fine-tuned artifact starts from the file's parameters (stored in the
  // spec at submit), anything else from the seeded initialisation.
  const agt::Vector init = resolved->initial_parameters.has_value()
                               ? *resolved->initial_parameters
                               : agt::InitParameters(config.model, spec.seed());
  // The compute backend: the spec's, or this server's --backend.
  const agt::BackendChoice choice = BackendChoiceOf(spec.backend(), options_.backend);
  absl::StatusOr<std::unique_ptr<agt::ComputeBackend>> backend =
      agt::MakeBackend(choice, config.threads);
  if (!backend.ok()) return fail(absl::StrCat("compute backend: ", backend.status().message()));
  const std::string backend_name = (*backend)->name();
  absl::StatusOr<std::unique_ptr<agt::Trainer>> created =
      agt::Trainer::Create(config, *data, init, *std::move(backend));
  if (!created.ok()) return fail(absl::StrCat("training setup: ", created.status().message()));
  agt::Trainer& trainer = **created;

  // A unit's checkpoint came with its claim; a unit trained already (its
  // worker died before completing the job) restores its result and goes
  // straight to the completion.
  absl::StatusOr<std::optional<agt::TrainState>> checkpoint =
      unit == nullptr ? store_->LoadCheckpoint(job.id)
                      : absl::StatusOr<std::optional<agt::TrainState>>(
                            unit->result.has_value() ? unit->result : unit->checkpoint);
  if (!checkpoint.ok()) {
    return fail(absl::StrCat("loading the checkpoint: ", checkpoint.status().message()));
  }
  if (checkpoint->has_value()) {
    if (absl::Status s = trainer.Restore(**checkpoint); !s.ok()) {
      return fail(absl::StrCat("restoring the checkpoint: ", s.message()));
    }
  }

  // The history goes on from the checkpoint (points recorded after it are
  // recorded again as the steps are redone); a fresh job starts empty.
  WidthHistory history;
  if (unit != nullptr) {
    history.Restore(WidthHistoryRecord{}, 0);  // a split job keeps none
  } else {
    absl::StatusOr<WidthHistoryRecord> stored = store_->GetWidthHistory(job.id, nullptr);
    if (stored.ok()) {
      history.Restore(*std::move(stored), trainer.state().step);
    } else {
      // The history is for people: a corrupt one is started again, not fatal.
      LogError(absl::StrCat("job ", job.id, ": width history not restored (started again): ",
                            stored.status().ToString()));
      history.Restore(WidthHistoryRecord{}, 0);
    }
  }
  int64_t history_written = -1;  // history.version() last written
  auto history_to_write = [&]() -> const WidthHistoryRecord* {
    return history.version() != history_written ? &history.record() : nullptr;
  };

  // Progress reflects the state the trainer is in (fresh or restored).
  JobProgressRecord& progress = job.progress;
  progress.backend = backend_name;
  progress.iteration = trainer.state().step;
  progress.total_iterations = trainer.total_steps();
  progress.epoch = progress.iteration > 0
                       ? static_cast<int>((progress.iteration - 1) / trainer.batches_per_epoch())
                       : 0;
  progress.eta_seconds = 0.0;
  progress.total_width.clear();
  for (const agt::ParameterBox& b : trainer.state().boxes) {
    progress.total_width.push_back(b.TotalWidth());
  }
  job.dropped_rows_per_epoch = trainer.dropped_rows_per_epoch();
  job.state = JobState::kRunning;
  // A unit writes its own progress (the store aggregates the job's).
  auto write_progress = [&]() -> absl::Status {
    if (unit != nullptr) {
      return store_->UpdateJobUnitProgress(job.id, unit->unit, progress,
                                           job.dropped_rows_per_epoch);
    }
    return store_->UpdateJobProgress(job.id, progress, job.dropped_rows_per_epoch,
                                     history_to_write());
  };
  if (absl::Status s = write_progress(); !s.ok()) {
    LogError(absl::StrCat("job ", job.id, ": progress: ", s.ToString()));
  } else {
    history_written = history.version();
  }
  if (unit == nullptr) Publish(job);
  {
    nlohmann::json fields = {{"iteration", progress.iteration},
                             {"total_iterations", progress.total_iterations}};
    if (unit != nullptr) fields["unit"] = unit->unit;
    LogJob(LogLevel::kInfo, checkpoint->has_value() ? "job_resumed" : "job_started", job,
           std::move(fields));
  }
  std::vector<MetricsBudget> metric_budgets;
  for (const agt::Budget& b : config.budgets) metric_budgets.push_back({b.n, b.label_n});

  const Clock::time_point session_start = Clock::now();
  const int64_t session_first_step = trainer.state().step;
  Clock::time_point last_checkpoint = session_start;
  Clock::time_point last_progress = session_start;
  int64_t last_checkpoint_step = trainer.state().step;

  auto save_checkpoint = [&]() -> absl::Status {
    *phase = absl::StrCat("saving the checkpoint at iteration ", trainer.state().step);
    const int64_t version = history.version();
    absl::Status s =
        unit != nullptr
            ? store_->SaveJobUnitCheckpoint(job.id, unit->unit, trainer.state(), progress)
            : store_->SaveCheckpoint(job.id, trainer.state(), progress, history_to_write());
    if (s.ok()) history_written = version;
    last_checkpoint = Clock::now();
    last_progress = last_checkpoint;
    last_checkpoint_step = trainer.state().step;
    return s;
  };

  // Another worker claimed the job after this one's lease expired (this
  // process stalled longer than the lease): its work is the job's now, so
  // this one stops without writing anything.
  auto lost_lease = [&](const absl::Status& why) {
    end_metrics();
    LogJob(LogLevel::kWarn, "job_lease_lost", job,
           {{"iteration", trainer.state().step}, {"msg", std::string(why.message())}});
  };

  while (!trainer.done()) {
    if (running->cancel.load(std::memory_order_acquire)) return cancel();
    if (stopping()) {
      // Graceful stop: keep the work done so far; Stop() requeues the job.
      if (trainer.state().step > last_checkpoint_step) {
        if (absl::Status s = save_checkpoint(); !s.ok()) {
          LogError(absl::StrCat("job ", job.id, ": checkpoint at stop: ", s.ToString()));
        }
      }
      LogJob(
          LogLevel::kInfo, "job_stopped", job,
          {{"iteration", trainer.state().step}, {"msg", "server stopping; the job stays queued"}});
      return;
    }
    *phase = absl::StrCat("training step ", trainer.state().step + 1);
    const Clock::time_point step_start = Clock::now();
    absl::StatusOr<agt::ProgressEvent> ev = trainer.Step();
    if (ev.ok() && metrics != nullptr) {
      metrics->TrainingIteration(job.id, SecondsSince(step_start), metric_budgets, ev->total_width);
    }
    if (!ev.ok()) {
      return fail(absl::StrCat("training failed at iteration ", trainer.state().step + 1, ": ",
                               ev.status().message()));
    }
    progress.iteration = ev->iteration;
    progress.total_iterations = ev->total_iterations;
    progress.epoch = ev->epoch;
    progress.nominal_loss = ev->nominal_loss;
    progress.total_width = ev->total_width;
    const double elapsed = SecondsSince(session_start);
    const int64_t done_here = ev->iteration - session_first_step;
    progress.eta_seconds =
        done_here > 0 ? elapsed / done_here * (ev->total_iterations - ev->iteration) : 0.0;
    history.Offer(PointOf(progress));
    if (unit == nullptr) Publish(job);  // a unit's watchers see the job (below)

    if (trainer.done()) break;
    const bool by_time = SecondsSince(last_checkpoint) >= options_.checkpoint_every_seconds;
    const bool by_steps = options_.checkpoint_every_steps > 0 &&
                          ev->iteration - last_checkpoint_step >= options_.checkpoint_every_steps;
    if (by_time || by_steps) {
      // A checkpoint only bounds the work a crash can lose: when one cannot
      // be written (another process holding the file, a full disk), training
      // goes on from memory and the next interval tries again.
      if (absl::Status s = save_checkpoint(); absl::IsAborted(s) || absl::IsNotFound(s)) {
        return lost_lease(s);
      } else if (!s.ok()) {
        LogError(absl::StrCat(
            "job ", job.id, ": checkpoint at iteration ", ev->iteration,
            " not saved (training goes on; retried at the next interval): ", s.ToString()));
      }
    } else if (SecondsSince(last_progress) >= options_.progress_every_seconds) {
      last_progress = Clock::now();
      const int64_t version = history.version();
      if (absl::Status s = write_progress(); absl::IsAborted(s) || absl::IsNotFound(s)) {
        return lost_lease(s);
      } else if (!s.ok()) {
        LogError(absl::StrCat("job ", job.id, ": progress: ", s.ToString()));
      } else {
        history_written = version;
        if (unit != nullptr) PublishFromStore(job);  // the aggregate
      }
      // Fallback for cancel requests that bypassed this runner.
      if (absl::StatusOr<bool> c = store_->IsCancelRequested(job.id); c.ok() && *c) {
        return cancel();
      }
    }
  }

  *phase = "storing the model";
  agt::TrainState assembled;
  if (unit != nullptr) {
    *phase = "storing the unit's result";
    absl::StatusOr<bool> last = RetryWhileBusy(
        absl::StrCat("job ", job.id, " unit ", unit->unit, ": storing its result"),
        [&] { return store_->CompleteJobUnit(job.id, unit->unit, trainer.state()); });
    if (absl::IsAborted(last.status()) || absl::IsNotFound(last.status())) {
      return lost_lease(last.status());
    }
    if (!last.ok()) {
      return fail(
          absl::StrCat("storing the result of unit ", unit->unit, ": ", last.status().message()));
    }
    LogJob(LogLevel::kInfo, "job_unit_finished", job,
           {{"unit", unit->unit}, {"completes_job", *last}});
    if (!*last) return PublishFromStore(job);
    // The last unit: every box from its unit, in the spec's order. The
    // nominal trajectory is deterministic, so every unit's is the same bits;
    // one that is not means the runs were not the same training.
    *phase = "assembling the units' results";
    absl::StatusOr<std::vector<JobUnitResult>> results = store_->LoadJobUnitResults(job.id);
    if (!results.ok()) {
      return fail(absl::StrCat("loading the units' results: ", results.status().message()));
    }
    assembled.step = trainer.state().step;
    assembled.nominal = trainer.state().nominal;
    assembled.boxes.resize(all_budgets.size());
    std::vector<bool> seen(all_budgets.size(), false);
    for (const JobUnitResult& r : *results) {
      if (r.state.boxes.size() != r.budget_indices.size() ||
          r.state.nominal.size() != assembled.nominal.size() ||
          std::memcmp(r.state.nominal.data(), assembled.nominal.data(),
                      sizeof(double) * static_cast<size_t>(assembled.nominal.size())) != 0) {
        return fail(
            "the units' results disagree (nominal parameters or box count): the units "
            "did not train the same trajectory");
      }
      for (size_t k = 0; k < r.budget_indices.size(); ++k) {
        const int index = r.budget_indices[k];
        if (index < 0 || static_cast<size_t>(index) >= all_budgets.size() || seen[index]) {
          return fail(absl::StrCat("the units' results name budget index ", index,
                                   " twice or "
                                   "out of range"));
        }
        seen[index] = true;
        assembled.boxes[index] = r.state.boxes[k];
      }
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
      return fail("the units' results miss a budget");
    }
    config.budgets = all_budgets;
    progress.total_width.clear();
    for (const agt::ParameterBox& b : assembled.boxes)
      progress.total_width.push_back(b.TotalWidth());
  }
  const agt::TrainState& state = unit != nullptr ? assembled : trainer.state();
  *phase = "storing the model";
  ModelRecord model;
  model.tenant = job.tenant;
  model.job_id = job.id;
  model.dataset_id = job.dataset_id;
  model.name = spec.name().empty() ? job.name : spec.name();
  model.spec = job.spec;
  model.architecture = config.model;
  model.polynomial_degree = resolved->polynomial_degree;
  model.input_features = resolved->input_features;
  model.num_classes = resolved->num_classes;
  model.nominal = state.nominal;
  model.backend = backend_name;
  for (size_t j = 0; j < config.budgets.size(); ++j) {
    BoxRecord box;
    box.budget = config.budgets[j];
    box.box = state.boxes[j];
    box.total_width = state.boxes[j].TotalWidth();
    box.max_width = state.boxes[j].MaxWidth();
    model.boxes.push_back(std::move(box));
  }
  *phase = "checking the bounds for vacuous certificates";
  // Bounded work: at most kVacuitySampleRows rows through the forward bound
  // pass of every box, in chunks like any CertifyDataset call (no more than
  // the forward passes of one epoch of the training just done), so a stop
  // request waits for it rather than storing the model unchecked.
  absl::StatusOr<std::vector<JobWarningRecord>> warnings = VacuityWarnings(model, vacuity_sample);
  if (warnings.ok()) {
    model.warnings = *std::move(warnings);
  } else {
    LogError(
        absl::StrCat("job ", job.id, ": vacuity check not done: ", warnings.status().ToString()));
  }
  for (const JobWarningRecord& w : model.warnings) {
    nlohmann::json fields = {{"msg", w.message}};
    if (w.budget.has_value()) fields["budget_n"] = w.budget->n;
    LogJob(LogLevel::kWarn, "job_warning", job, std::move(fields));
  }
  end_metrics();
  *phase = "storing the model";
  progress.eta_seconds = 0.0;
  history.Finish(PointOf(progress));
  absl::StatusOr<std::string> model_id =
      RetryWhileBusy(absl::StrCat("job ", job.id, ": storing the model"), [&] {
        return store_->CompleteJob(job.id, model, progress,
                                   unit != nullptr ? nullptr : &history.record());
      });
  if (!model_id.ok()) {
    return fail(absl::StrCat("storing the model: ", model_id.status().message()));
  }
  if (!model.warnings.empty() && options_.metrics != nullptr) options_.metrics->JobVacuous();
  LogJob(LogLevel::kInfo, "job_finished", job,
         {{"model", *model_id}, {"iterations", progress.iteration}});
  PublishFromStore(job);
}

}  // namespace agt::server
