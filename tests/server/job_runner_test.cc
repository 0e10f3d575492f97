// The job runner over a real SQLite store in a temp dir: jobs train to the
// same model as a direct core training, cancel (queued and running), stop and
// resume bit-identically, recover RUNNING rows left by a crash from their
// checkpoints, fail with a cause, and stream progress to watchers.
#include "server/jobs/job_runner.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agt/v1/training.pb.h"
#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/job_spec.h"
#include "server/store/store.h"

namespace agt::server {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr auto kDeadline = std::chrono::seconds(40);

bool SameBits(const agt::Vector& a, const agt::Vector& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "agt-jobs-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    Reopen();
    data_ = agt::MakeMoons(1000, 0.15, 4);
    DatasetRecord ds;
    ds.tenant = "t1";
    ds.name = "moons";
    absl::StatusOr<DatasetRecord> d = store_->InsertDataset(ds, data_);
    ASSERT_TRUE(d.ok()) << d.status();
    dataset_ = *d;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Closes and reopens the SQLite file (what a restarted server does).
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(dir_ + "/agt.db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }

  // Small but not trivial: degree 2, two hidden layers, three budgets.
  agt::v1::TrainingJobSpec Spec(int epochs, uint64_t seed = 7) const {
    agt::v1::TrainingJobSpec s;
    s.set_name("moons job");
    s.set_dataset_id(dataset_.id);
    s.set_polynomial_degree(2);
    s.add_hidden_widths(24);
    s.add_hidden_widths(12);
    s.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
    s.set_batch_size(100);  // 10 steps per epoch
    s.set_epochs(epochs);
    // A decaying rate keeps the bounds finite over thousands of steps.
    s.mutable_optimizer()->set_learning_rate(0.05);
    s.mutable_optimizer()->set_lr_decay(0.5);
    s.mutable_optimizer()->set_momentum(0.5);  // velocities must survive checkpoints too
    s.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
    for (int n : {1, 3, 8}) s.add_budgets()->set_n(n);
    s.set_seed(seed);
    return s;
  }

  JobRecord Submit(const agt::v1::TrainingJobSpec& spec, const std::string& tenant = "t1") {
    JobRecord job;
    job.tenant = tenant;
    job.dataset_id = dataset_.id;
    job.name = spec.name();
    job.spec = spec.SerializeAsString();
    absl::StatusOr<JobRecord> j = store_->InsertJob(job);
    EXPECT_TRUE(j.ok()) << j.status();
    return *j;
  }

  JobRecord WaitFinal(const std::string& id) {
    const auto end = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < end) {
      absl::StatusOr<JobRecord> j = store_->GetJob("t1", id);
      EXPECT_TRUE(j.ok()) << j.status();
      if (!j.ok() || IsFinal(j->state)) return *j;
      std::this_thread::sleep_for(milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " did not finish in time";
    return *store_->GetJob("t1", id);
  }

  // Waits (through a watch) until the job has done at least `iterations`.
  void WaitForIteration(JobRunner* runner, const std::string& id, int64_t iterations) {
    absl::StatusOr<std::shared_ptr<JobWatch>> w = runner->Watch("t1", id);
    ASSERT_TRUE(w.ok()) << w.status();
    const auto end = std::chrono::steady_clock::now() + kDeadline;
    JobRecord snap;
    while (std::chrono::steady_clock::now() < end) {
      if ((*w)->Next(&snap, milliseconds(50))) {
        ASSERT_FALSE(IsFinal(snap.state)) << "the job ended before iteration " << iterations;
        if (snap.progress.iteration >= iterations) return;
      }
    }
    FAIL() << "no iteration " << iterations << " in time";
  }

  struct Direct {
    agt::TrainConfig config;
    agt::Dataset data;  // expanded
    agt::TrainState state;
  };
  // The uninterrupted reference: the core trained directly on the spec.
  Direct TrainDirect(const agt::v1::TrainingJobSpec& spec) const {
    Direct d;
    absl::StatusOr<ResolvedJob> r = ResolveJobSpec(spec, dataset_);
    EXPECT_TRUE(r.ok()) << r.status();
    d.config = r->config;
    d.data = data_;
    d.data.x = agt::PolynomialFeatures(d.data.x, r->polynomial_degree);
    absl::StatusOr<agt::TrainResult> res =
        agt::Train(d.config, d.data, agt::InitParameters(d.config.model, spec.seed()));
    EXPECT_TRUE(res.ok()) << res.status();
    d.state = res->state;
    return d;
  }

  void ExpectModel(const JobRecord& job, const agt::TrainState& expected) {
    ASSERT_EQ(job.state, JobState::kSucceeded) << job.error;
    absl::StatusOr<ModelRecord> m = store_->GetModel("t1", job.model_id);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->job_id, job.id);
    EXPECT_EQ(m->dataset_id, dataset_.id);
    EXPECT_EQ(m->polynomial_degree, 2);
    EXPECT_EQ(m->input_features, 2);
    EXPECT_EQ(m->num_classes, 2);
    EXPECT_EQ(m->architecture.Describe(), agt::ModelSpec::Mlp({5, 24, 12, 1}).Describe());
    EXPECT_TRUE(SameBits(m->nominal, expected.nominal)) << "nominal parameters differ";
    ASSERT_EQ(m->boxes.size(), expected.boxes.size());
    for (size_t j = 0; j < expected.boxes.size(); ++j) {
      EXPECT_TRUE(SameBits(m->boxes[j].box.lower, expected.boxes[j].lower)) << "box " << j;
      EXPECT_TRUE(SameBits(m->boxes[j].box.upper, expected.boxes[j].upper)) << "box " << j;
      EXPECT_EQ(m->boxes[j].total_width, expected.boxes[j].TotalWidth());
      EXPECT_EQ(m->boxes[j].max_width, expected.boxes[j].MaxWidth());
    }
    EXPECT_EQ(m->boxes[2].budget.n, 8);
    EXPECT_EQ(job.progress.iteration, job.progress.total_iterations);
    EXPECT_EQ(job.progress.eta_seconds, 0.0);
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  agt::Dataset data_;
  DatasetRecord dataset_;
};

TEST_F(JobRunnerTest, RunsAJobToSucceededWithTheModelOfADirectTraining) {
  const agt::v1::TrainingJobSpec spec = Spec(6);
  const JobRecord job = Submit(spec);
  JobRunner runner(store_.get(), {.workers = 1, .checkpoint_every_steps = 4});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  const JobRecord done = WaitFinal(job.id);
  ExpectModel(done, TrainDirect(spec).state);
  EXPECT_EQ(done.progress.total_iterations, 60);
  EXPECT_EQ(done.progress.total_width.size(), 3u);
  EXPECT_EQ(done.dropped_rows_per_epoch, 0);
  EXPECT_GT(done.started_ms, 0);
  EXPECT_GE(done.finished_ms, done.started_ms);
  // The checkpoint is dropped with completion.
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(job.id);
  ASSERT_TRUE(cp.ok());
  EXPECT_FALSE(cp->has_value());
}

TEST_F(JobRunnerTest, WatchersSeeIncreasingIterationsAndTheFinalState) {
  const JobRecord job = Submit(Spec(20));
  JobRunner runner(store_.get(), {});
  // Subscribed while the job is still queued (the runner is not started).
  absl::StatusOr<std::shared_ptr<JobWatch>> watch = runner.Watch("t1", job.id);
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  std::vector<JobRecord> seen;
  JobRecord snap;
  const auto end = std::chrono::steady_clock::now() + kDeadline;
  while (!(*watch)->Finished() && std::chrono::steady_clock::now() < end) {
    if ((*watch)->Next(&snap, milliseconds(100))) seen.push_back(snap);
  }
  ASSERT_TRUE((*watch)->Finished());
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen.front().state, JobState::kQueued);
  EXPECT_EQ(seen.back().state, JobState::kSucceeded);
  EXPECT_FALSE(seen.back().model_id.empty());
  EXPECT_EQ(seen.back().progress.iteration, 200);
  int stepping = 0, with_eta = 0;
  for (size_t i = 1; i < seen.size(); ++i) {
    // The first RUNNING snapshot may come before training is set up; every
    // one after a step carries the full progress.
    if (seen[i].state == JobState::kRunning && seen[i].progress.iteration > 0) {
      ++stepping;
      with_eta += seen[i].progress.eta_seconds > 0.0;
      EXPECT_EQ(seen[i].progress.total_iterations, 200);
      EXPECT_EQ(seen[i].progress.total_width.size(), 3u);
      EXPECT_EQ(seen[i].progress.epoch, (seen[i].progress.iteration - 1) / 10);
    }
    if (seen[i].state == seen[i - 1].state) {
      EXPECT_GE(seen[i].progress.iteration, seen[i - 1].progress.iteration);
    }
    EXPECT_GE(static_cast<int>(seen[i].state), static_cast<int>(seen[i - 1].state));
  }
  EXPECT_GE(stepping, 2);
  EXPECT_GE(with_eta, 1);
  EXPECT_FALSE((*watch)->Next(&snap, milliseconds(1)));
  // A watch on a finished job gets its final state, then ends.
  absl::StatusOr<std::shared_ptr<JobWatch>> late = runner.Watch("t1", job.id);
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE((*late)->Next(&snap, milliseconds(100)));
  EXPECT_EQ(snap.state, JobState::kSucceeded);
  EXPECT_FALSE((*late)->Next(&snap, milliseconds(1)));
  EXPECT_TRUE((*late)->Finished());
}

TEST_F(JobRunnerTest, CancelsAQueuedJobAtOnce) {
  const JobRecord job = Submit(Spec(3));
  JobRunner runner(store_.get(), {});  // not started: the job stays queued
  absl::StatusOr<std::shared_ptr<JobWatch>> watch = runner.Watch("t1", job.id);
  ASSERT_TRUE(watch.ok());
  absl::StatusOr<JobRecord> c = runner.Cancel("t1", job.id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state, JobState::kCancelled);
  JobRecord snap;
  ASSERT_TRUE((*watch)->Next(&snap, milliseconds(100)));
  EXPECT_EQ(snap.state, JobState::kQueued);
  ASSERT_TRUE((*watch)->Next(&snap, milliseconds(100)));
  EXPECT_EQ(snap.state, JobState::kCancelled);
  EXPECT_TRUE((*watch)->Finished());
  // Final: a second cancel is refused; nobody trains it after a start.
  EXPECT_EQ(runner.Cancel("t1", job.id).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(store_->GetJob("t1", job.id)->state, JobState::kCancelled);
}

TEST_F(JobRunnerTest, CancelsARunningJobBeforeItsNextStep) {
  const JobRecord job = Submit(Spec(10000));  // 100000 steps: far longer than the test
  JobRunner runner(store_.get(), {.checkpoint_every_steps = 5});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  WaitForIteration(&runner, job.id, 10);
  absl::StatusOr<std::shared_ptr<JobWatch>> watch = runner.Watch("t1", job.id);
  ASSERT_TRUE(watch.ok());
  absl::StatusOr<JobRecord> c = runner.Cancel("t1", job.id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state, JobState::kRunning);
  EXPECT_TRUE(c->cancel_requested);
  const JobRecord done = WaitFinal(job.id);
  EXPECT_EQ(done.state, JobState::kCancelled);
  EXPECT_TRUE(done.model_id.empty());
  EXPECT_LT(done.progress.iteration, 100000);
  JobRecord snap;
  bool final_seen = false;
  while ((*watch)->Next(&snap, milliseconds(500))) final_seen = snap.state == JobState::kCancelled;
  EXPECT_TRUE(final_seen);
  EXPECT_FALSE(store_->LoadCheckpoint(job.id)->has_value());
  // The worker unregisters the job just after publishing its final state.
  const auto end = std::chrono::steady_clock::now() + kDeadline;
  while (runner.running_jobs() != 0 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(runner.running_jobs(), 0);
}

TEST_F(JobRunnerTest, StopMidJobThenANewRunnerResumesBitIdentically) {
  const agt::v1::TrainingJobSpec spec = Spec(100);  // 1000 steps
  const JobRecord job = Submit(spec);
  {
    JobRunner runner(store_.get(), {.checkpoint_every_seconds = 60});  // only Stop checkpoints
    ASSERT_TRUE(runner.Start().ok());
    runner.Wake();
    WaitForIteration(&runner, job.id, 20);
    runner.Stop();
    runner.Stop();  // idempotent
  }
  absl::StatusOr<JobRecord> stopped = store_->GetJob("t1", job.id);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state, JobState::kQueued);
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(job.id);
  ASSERT_TRUE(cp.ok() && cp->has_value());
  const int64_t step = (*cp)->step;
  EXPECT_GE(step, 20);
  EXPECT_LT(step, 1000) << "the job finished before Stop; make it longer";
  EXPECT_EQ(stopped->progress.iteration, step);

  Reopen();  // a restarted server
  JobRunner resumed(store_.get(), {});
  ASSERT_TRUE(resumed.Start().ok());
  resumed.Wake();
  ExpectModel(WaitFinal(job.id), TrainDirect(spec).state);
}

// Another connection holds the file's write lock (BEGIN IMMEDIATE) for longer
// than SQLite's busy timeout while a job checkpoints every step: the
// checkpoints that time out are skipped, training goes on, and the job still
// ends with the model of an uninterrupted run.
TEST_F(JobRunnerTest, ABusyDatabaseSkipsCheckpointsWithoutFailingTheJob) {
  const agt::v1::TrainingJobSpec spec = Spec(20);  // 200 steps
  const JobRecord job = Submit(spec);
  JobRunner runner(store_.get(), {.checkpoint_every_seconds = 60, .checkpoint_every_steps = 1});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  WaitForIteration(&runner, job.id, 2);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/agt.db").c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 5000);  // the runner writes every step
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(6500));     // > the 5 s busy timeout
  absl::StatusOr<JobRecord> during = store_->GetJob("t1", job.id);  // readers are not blocked
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_EQ(during->state, JobState::kRunning);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ExpectModel(WaitFinal(job.id), TrainDirect(spec).state);
}

TEST_F(JobRunnerTest, RunningRowLeftByACrashResumesFromItsCheckpoint) {
  const agt::v1::TrainingJobSpec spec = Spec(4);  // 40 steps
  const JobRecord job = Submit(spec);
  // A worker of a dead process claimed the job and checkpointed it at step
  // 13. The checkpoint comes from a different seed, so a runner that ignored
  // it (and restarted from scratch) would end with different parameters.
  absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  Direct ref = TrainDirect(spec);
  absl::StatusOr<std::unique_ptr<agt::Trainer>> other =
      agt::Trainer::Create(ref.config, ref.data, agt::InitParameters(ref.config.model, 99));
  ASSERT_TRUE(other.ok());
  for (int i = 0; i < 13; ++i) ASSERT_TRUE((*other)->Step().ok());
  JobProgressRecord progress;
  progress.iteration = 13;
  progress.total_iterations = 40;
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, (*other)->state(), progress).ok());
  // What continuing from that checkpoint gives.
  absl::StatusOr<std::unique_ptr<agt::Trainer>> cont =
      agt::Trainer::Create(ref.config, ref.data, agt::InitParameters(ref.config.model, 7));
  ASSERT_TRUE(cont.ok());
  ASSERT_TRUE((*cont)->Restore((*other)->state()).ok());
  while (!(*cont)->done()) ASSERT_TRUE((*cont)->Step().ok());
  ASSERT_FALSE(SameBits((*cont)->state().nominal, ref.state.nominal));

  Reopen();
  EXPECT_EQ(store_->GetJob("t1", job.id)->state, JobState::kRunning);
  JobRunner runner(store_.get(), {});
  ASSERT_TRUE(runner.Start().ok());  // requeues the RUNNING row
  runner.Wake();
  ExpectModel(WaitFinal(job.id), (*cont)->state());
}

TEST_F(JobRunnerTest, RunningRowWithoutCheckpointRestartsAndMatchesADirectRun) {
  const agt::v1::TrainingJobSpec spec = Spec(4);
  const JobRecord job = Submit(spec);
  ASSERT_TRUE(store_->ClaimNextQueuedJob().ok());
  Reopen();
  JobRunner runner(store_.get(), {});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  ExpectModel(WaitFinal(job.id), TrainDirect(spec).state);
}

TEST_F(JobRunnerTest, SeveralJobsWithTwoWorkersRunTwoAtATime) {
  std::vector<agt::v1::TrainingJobSpec> specs;
  std::vector<JobRecord> jobs;
  for (uint64_t seed : {1, 2, 3, 4}) {
    specs.push_back(Spec(20, seed));
    jobs.push_back(Submit(specs.back()));
  }
  JobRunner runner(store_.get(), {.workers = 2});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  int max_running = 0;
  const auto end = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < end) {
    max_running = std::max(max_running, runner.running_jobs());
    absl::StatusOr<Page<JobRecord>> done = store_->ListJobs("t1", JobState::kSucceeded, 100, "");
    ASSERT_TRUE(done.ok());
    if (done->items.size() == jobs.size()) break;
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(max_running, 2);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectModel(WaitFinal(jobs[i].id), TrainDirect(specs[i]).state);
  }
}

TEST_F(JobRunnerTest, FailingJobsAreMarkedFailedWithTheCauseAndTheRunnerGoesOn) {
  agt::v1::TrainingJobSpec diverge = Spec(50);
  diverge.mutable_optimizer()->set_momentum(0);
  diverge.mutable_optimizer()->set_lr_decay(0);
  diverge.mutable_optimizer()->set_learning_rate(1e200);
  const JobRecord a = Submit(diverge);
  agt::v1::TrainingJobSpec too_big = Spec(2);
  too_big.set_batch_size(5000);
  const JobRecord b = Submit(too_big);
  JobRecord garbage;
  garbage.tenant = "t1";
  garbage.dataset_id = dataset_.id;
  garbage.spec = "\xff\xff\xff";
  const JobRecord c = *store_->InsertJob(garbage);
  const agt::v1::TrainingJobSpec fine = Spec(2);
  const JobRecord d = Submit(fine);

  JobRunner runner(store_.get(), {});
  ASSERT_TRUE(runner.Start().ok());
  runner.Wake();
  const JobRecord fa = WaitFinal(a.id);
  EXPECT_EQ(fa.state, JobState::kFailed);
  EXPECT_THAT(fa.error, HasSubstr("diverged"));
  const JobRecord fb = WaitFinal(b.id);
  EXPECT_EQ(fb.state, JobState::kFailed);
  EXPECT_THAT(fb.error, HasSubstr("invalid spec: spec.batch_size: 5000 exceeds the 1000 rows"));
  const JobRecord fc = WaitFinal(c.id);
  EXPECT_EQ(fc.state, JobState::kFailed);
  EXPECT_THAT(fc.error, HasSubstr("does not parse"));
  ExpectModel(WaitFinal(d.id), TrainDirect(fine).state);
}

TEST_F(JobRunnerTest, TenantsAndUnknownIdsAreNotFound) {
  const JobRecord job = Submit(Spec(2));
  JobRunner runner(store_.get(), {});
  EXPECT_EQ(runner.Watch("t2", job.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runner.Watch("t1", "job-missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runner.Cancel("t2", job.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("t1", job.id)->state, JobState::kQueued);
}

TEST_F(JobRunnerTest, StartValidatesOptionsAndRunsOnce) {
  JobRunner bad(store_.get(), {.workers = 0});
  EXPECT_EQ(bad.Start().code(), absl::StatusCode::kInvalidArgument);
  JobRunner bad_cp(store_.get(), {.checkpoint_every_seconds = 0});
  EXPECT_EQ(bad_cp.Start().code(), absl::StatusCode::kInvalidArgument);
  JobRunner runner(store_.get(), {});
  runner.Stop();  // before Start: harmless
  EXPECT_EQ(runner.Start().code(), absl::StatusCode::kFailedPrecondition);
  JobRunner twice(store_.get(), {});
  EXPECT_TRUE(twice.Start().ok());
  EXPECT_EQ(twice.Start().code(), absl::StatusCode::kFailedPrecondition);
  twice.Stop();
  EXPECT_EQ(twice.Watch("t1", "x").status().code(), absl::StatusCode::kUnavailable);
}

// ---- JobWatch on its own

JobRecord Snap(JobState state, int64_t iteration) {
  JobRecord r;
  r.id = "job-1";
  r.state = state;
  r.progress.iteration = iteration;
  return r;
}

TEST(JobWatch, ASlowWatcherGetsTheLatestProgressAndAlwaysTheFinalState) {
  JobWatch w;
  JobRecord out;
  EXPECT_FALSE(w.Next(&out, milliseconds(1)));
  EXPECT_FALSE(w.Finished());  // a timeout, not the end
  for (int i = 1; i <= 100; ++i) w.Push(Snap(JobState::kRunning, i));
  w.Push(Snap(JobState::kSucceeded, 100));
  w.Push(Snap(JobState::kRunning, 101));  // after the final state: dropped
  ASSERT_TRUE(w.Next(&out, milliseconds(1)));
  EXPECT_EQ(out.state, JobState::kRunning);
  EXPECT_EQ(out.progress.iteration, 100);
  ASSERT_TRUE(w.Next(&out, milliseconds(1)));
  EXPECT_EQ(out.state, JobState::kSucceeded);
  EXPECT_FALSE(w.Next(&out, milliseconds(1)));
  EXPECT_TRUE(w.Finished());
}

TEST(JobWatch, SnapshotsNeverGoBackwards) {
  JobWatch w;
  JobRecord out;
  w.Push(Snap(JobState::kRunning, 10));
  ASSERT_TRUE(w.Next(&out, milliseconds(1)));
  w.Push(Snap(JobState::kRunning, 8));  // older progress (e.g. a stale store read)
  w.Push(Snap(JobState::kQueued, 0));   // an older state
  EXPECT_FALSE(w.Next(&out, milliseconds(1)));
  w.Push(Snap(JobState::kRunning, 11));
  ASSERT_TRUE(w.Next(&out, milliseconds(1)));
  EXPECT_EQ(out.progress.iteration, 11);
}

TEST(JobWatch, CloseWakesAWaiterAndEndsTheStream) {
  JobWatch w;
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    w.Close();
  });
  JobRecord out;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(w.Next(&out, milliseconds(5000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(w.Finished());
  closer.join();
  w.Push(Snap(JobState::kRunning, 1));
  EXPECT_FALSE(w.Next(&out, milliseconds(1)));
}

}  // namespace
}  // namespace agt::server
