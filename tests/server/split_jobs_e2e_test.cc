// Jobs split per budget group (issue 19, agt-server --split-budgets-per-unit):
// real agt-server processes on loopback. The claim under test: a job whose 8
// budgets are trained as units, by one process on an SQLite file or by three
// worker processes on one PostgreSQL database (postgres_fixture.h; those
// cases skip without PostgreSQL), stores a model bit for bit equal to an
// unsplit single-process run; each unit is trained by exactly one worker;
// a killed worker's unit is resumed by another from its checkpoint.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/server/e2e_util.h"
#include "tests/server/postgres_fixture.h"
#include "tests/server/shared_db_servers.h"

namespace agt::e2e {
namespace {

constexpr int kRows = 410;  // 10 rows dropped per epoch (the incomplete batch)
constexpr int kBatch = 50;
constexpr int kEpochs = 150;
constexpr int64_t kSteps = kRows / kBatch * kEpochs;

// 8 removal budgets, n = 1..8: long enough that units overlap in time on
// several workers.
agt::v1::TrainingJobSpec EightBudgetSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, kEpochs, kBatch, {1, 2, 3, 4, 5, 6, 7, 8});
  spec.clear_hidden_widths();
  spec.add_hidden_widths(32);
  spec.mutable_optimizer()->set_learning_rate(0.02);
  return spec;
}

// A model as exported: nominal parameters and every box with its budget,
// and what the job reported.
struct Bounds {
  int64_t dropped_rows_per_epoch = -1;
  std::vector<double> nominal;
  std::vector<int> budgets;
  std::vector<std::vector<double>> lower, upper;
};

Bounds Exported(Client& client, const agt::v1::Job& job) {
  agt::v1::ExportModelRequest request;
  request.set_model_id(job.model_id());
  agt::v1::ExportModelResponse response;
  const grpc::Status status = client.models->ExportModel(Ctx().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  Bounds b;
  b.dropped_rows_per_epoch = job.dropped_rows_per_epoch();
  b.nominal = Flatten(response.model().nominal());
  for (const agt::v1::BudgetBox& box : response.boxes()) {
    b.budgets.push_back(box.budget().n());
    b.lower.push_back(Flatten(box.lower()));
    b.upper.push_back(Flatten(box.upper()));
  }
  return b;
}

void ExpectBitIdentical(const Bounds& reference, const Bounds& got) {
  ASSERT_FALSE(reference.nominal.empty());
  EXPECT_EQ(reference.dropped_rows_per_epoch, 10);
  EXPECT_EQ(got.dropped_rows_per_epoch, reference.dropped_rows_per_epoch);
  EXPECT_TRUE(BitIdentical(reference.nominal, got.nominal)) << "nominal parameters differ";
  EXPECT_EQ(reference.budgets, got.budgets) << "boxes are not in the spec's budget order";
  ASSERT_EQ(reference.lower.size(), got.lower.size());
  for (size_t j = 0; j < reference.lower.size(); ++j) {
    EXPECT_TRUE(BitIdentical(reference.lower[j], got.lower[j])) << "lower bounds, box " << j;
    EXPECT_TRUE(BitIdentical(reference.upper[j], got.upper[j])) << "upper bounds, box " << j;
  }
}

// Log lines (JSON) naming `event` for `job_id`, and unit `unit` if >= 0.
int CountEvents(const std::string& log, const std::string& event, const std::string& job_id,
                int unit = -1) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, absl::StrCat("\"", event, "\"")) &&
        absl::StrContains(line, job_id) &&
        (unit < 0 || absl::StrContains(line, absl::StrCat("\"unit\":", unit)))) {
      ++n;
    }
  }
  return n;
}

// The reference: the job unsplit, one process on an SQLite file.
Bounds SingleProcessReference(const TempDir& dir, const std::string& name,
                              std::vector<std::string> extra = {}) {
  ServerProcess single;
  extra.insert(extra.end(), {"--log-format", "json"});
  EXPECT_TRUE(single.Start(ServerArgs(dir.File(name + ".db"), extra), dir.File(name + ".log")))
      << single.Stderr();
  Client client(single.address());
  const agt::v1::Dataset dataset = UploadMoons(client, kRows, 21);
  agt::v1::Job job;
  EXPECT_TRUE(Submit(client, EightBudgetSpec(dataset.id()), &job).ok());
  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(120));
  EXPECT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  Bounds b = done.model_id().empty() ? Bounds{} : Exported(client, done);
  EXPECT_EQ(single.Signal(SIGTERM), 0);
  return b;
}

TEST(SplitJobsE2eTest, ASplitJobOnOneSqliteProcessIsBitIdenticalToTheUnsplitJob) {
  TempDir dir;
  const auto t0 = Clock::now();
  const Bounds reference = SingleProcessReference(dir, "whole");
  const double whole_seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  ServerProcess split;
  ASSERT_TRUE(split.Start(
      ServerArgs(dir.File("split.db"), {"--split-budgets-per-unit", "3", "--checkpoint-steps", "25",
                                        "--log-format", "json"}),
      dir.File("split.log")))
      << split.Stderr();
  Client client(split.address());
  const agt::v1::Dataset dataset = UploadMoons(client, kRows, 21);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, EightBudgetSpec(dataset.id()), &job).ok());
  // A watch follows the units' aggregate to the end, never backwards.
  std::vector<agt::v1::JobEvent> events;
  const grpc::Status watched = WatchAll(client, job.id(), &events);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), agt::v1::JOB_STATE_SUCCEEDED);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].progress().iteration(), events[i - 1].progress().iteration());
  }
  const agt::v1::Job done = WaitForFinal(client, job.id());
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.progress().iteration(), kSteps);
  EXPECT_EQ(done.progress().total_width_size(), 8);
  ExpectBitIdentical(reference, Exported(client, done));
  const std::string log = split.Stderr();
  EXPECT_EQ(CountEvents(log, "job_split", job.id()), 1);
  for (int unit = 0; unit < 3; ++unit) {  // {0,1,2}, {3,4,5}, {6,7}
    EXPECT_EQ(CountEvents(log, "job_started", job.id(), unit), 1) << "unit " << unit;
    EXPECT_EQ(CountEvents(log, "job_unit_finished", job.id(), unit), 1) << "unit " << unit;
  }
  EXPECT_EQ(CountEvents(log, "job_finished", job.id()), 1);
  std::printf("unsplit run (with server start) %.2f s\n", whole_seconds);
}

TEST(SplitJobsE2eTest, CancellingASplitJobStopsEveryUnit) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      ServerArgs(dir.File("cancel.db"),
                 {"--split-budgets-per-unit", "1", "--workers", "2", "--log-format", "json"}),
      dir.File("cancel.log")))
      << server.Stderr();
  Client client(server.address());
  const agt::v1::Dataset dataset = UploadMoons(client, 200, 3);
  agt::v1::TrainingJobSpec spec = LongRunningSpec(dataset.id());
  spec.add_budgets()->set_n(2);
  spec.add_budgets()->set_n(3);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, spec, &job).ok());
  // Both workers train a unit (two of the three) before the cancel.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline &&
         (CountEvents(server.Stderr(), "job_started", job.id(), 0) == 0 ||
          CountEvents(server.Stderr(), "job_started", job.id(), 1) == 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(CountEvents(server.Stderr(), "job_started", job.id(), 1), 1);
  agt::v1::CancelJobRequest request;
  request.set_job_id(job.id());
  agt::v1::CancelJobResponse response;
  ASSERT_TRUE(client.training->CancelJob(Ctx().get(), request, &response).ok());
  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(20));
  EXPECT_EQ(done.state(), agt::v1::JOB_STATE_CANCELLED) << done.error();
  // No unit goes on (nor the third starts) after the job ended.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(CountEvents(server.Stderr(), "job_unit_finished", job.id()), 0);
  EXPECT_EQ(CountEvents(server.Stderr(), "job_started", job.id(), 2), 0);
  const agt::v1::Job after = WaitForFinal(client, job.id());
  EXPECT_EQ(after.state(), agt::v1::JOB_STATE_CANCELLED);
}

TEST(SplitJobsE2eTest, AFailingUnitFailsTheJobNamingTheUnit) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      ServerArgs(dir.File("fail.db"),
                 {"--split-budgets-per-unit", "1", "--workers", "2", "--log-format", "json"}),
      dir.File("fail.log")))
      << server.Stderr();
  Client client(server.address());
  const agt::v1::Dataset dataset = UploadMoons(client, 200, 3);
  // At this large learning rate the n = 1 box (unit 1) becomes non-finite at
  // step 578 of the 1600; the n = 0 box (unit 0) is the nominal trajectory,
  // which stays finite to the end (budgets {0} alone train to SUCCEEDED), so
  // the job's error must be unit 1's whichever unit runs first.
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset.id(), 400, 50, {0, 1});
  spec.mutable_optimizer()->set_learning_rate(2.0);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, spec, &job).ok());
  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(60));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_FAILED) << "the n = 1 box did not diverge";
  EXPECT_TRUE(absl::StrContains(done.error(), "unit 1 (budget indices 1)")) << done.error();
  EXPECT_TRUE(absl::StrContains(done.error(), "non-finite")) << done.error();
  EXPECT_EQ(CountEvents(server.Stderr(), "job_finished", job.id()), 0);
}

// The job's iteration (its least advanced unit's), -1 when GetJob fails.
int64_t IterationOf(Client& client, const std::string& job_id) {
  agt::v1::GetJobRequest request;
  request.set_job_id(job_id);
  agt::v1::GetJobResponse response;
  if (!client.training->GetJob(Ctx().get(), request, &response).ok()) return -1;
  return response.job().progress().iteration();
}

// Waits (bounded) until every unit of the job is past `steps`.
int64_t WaitForIteration(Client& client, const std::string& job_id, int64_t steps) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  int64_t seen = 0;
  while (Clock::now() < deadline && (seen = IterationOf(client, job_id)) < steps) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return seen;
}

TEST(SplitJobsE2eTest, AfterAKillAndARestartTheUnitsResumeAndTheModelIsTheUnsplitOne) {
  TempDir dir;
  const Bounds reference = SingleProcessReference(dir, "whole");
  const std::vector<std::string> flags = {"--split-budgets-per-unit", "3",  "--workers",    "3",
                                          "--checkpoint-steps",       "10", "--log-format", "json"};
  std::string job_id;
  {
    ServerProcess first;
    ASSERT_TRUE(first.Start(ServerArgs(dir.File("split.db"), flags), dir.File("first.log")))
        << first.Stderr();
    Client client(first.address());
    const agt::v1::Dataset dataset = UploadMoons(client, kRows, 21);
    agt::v1::Job job;
    ASSERT_TRUE(Submit(client, EightBudgetSpec(dataset.id()), &job).ok());
    job_id = job.id();
    const int64_t seen = WaitForIteration(client, job_id, kSteps / 3);
    ASSERT_GE(seen, kSteps / 3);
    ASSERT_LT(seen, kSteps) << "the job ended before the kill; make it longer";
    EXPECT_EQ(first.Signal(SIGKILL), 128 + SIGKILL);
  }
  ServerProcess second;
  ASSERT_TRUE(second.Start(ServerArgs(dir.File("split.db"), flags), dir.File("second.log")))
      << second.Stderr();
  Client client(second.address());
  const agt::v1::Job done = WaitForFinal(client, job_id, "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  const std::string log = second.Stderr();
  for (int unit = 0; unit < 3; ++unit) {
    EXPECT_EQ(CountEvents(log, "job_resumed", job_id, unit), 1) << "unit " << unit;
    EXPECT_EQ(CountEvents(log, "job_started", job_id, unit), 0) << "unit " << unit;
  }
  ExpectBitIdentical(reference, Exported(client, done));
}

class SplitJobsOnPostgresTest : public SharedDatabaseServers {};

TEST_F(SplitJobsOnPostgresTest, ThreeWorkersTrainEachUnitOnceAndTheModelIsTheUnsplitOne) {
  const Bounds reference = SingleProcessReference(dir_, "whole");
  const std::vector<std::string> flags = {"--split-budgets-per-unit", "2"};
  ServerProcess* api = Start("api", "api");
  std::vector<ServerProcess*> workers = {Start("worker", "w1", flags), Start("worker", "w2", flags),
                                         Start("worker", "w3", flags)};
  ASSERT_TRUE(api && workers[0] && workers[1] && workers[2]);
  Client client(api->address());
  const agt::v1::Dataset dataset = UploadMoons(client, kRows, 21);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, EightBudgetSpec(dataset.id()), &job).ok());
  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  ExpectBitIdentical(reference, Exported(client, done));
  std::vector<std::string> logs;
  for (ServerProcess* w : workers) logs.push_back(w->Stderr());
  int splits = 0, finished = 0;
  std::set<int> trainers;  // workers that trained a unit
  for (int unit = 0; unit < 4; ++unit) {
    int started = 0, ended = 0;
    for (size_t w = 0; w < logs.size(); ++w) {
      const int here = CountEvents(logs[w], "job_started", job.id(), unit);
      started += here;
      ended += CountEvents(logs[w], "job_unit_finished", job.id(), unit);
      EXPECT_EQ(CountEvents(logs[w], "job_resumed", job.id(), unit), 0);
      if (here > 0) trainers.insert(static_cast<int>(w));
    }
    EXPECT_EQ(started, 1) << "unit " << unit << " was started " << started << " times";
    EXPECT_EQ(ended, 1) << "unit " << unit;
  }
  for (const std::string& log : logs) {
    splits += CountEvents(log, "job_split", job.id());
    finished += CountEvents(log, "job_finished", job.id());
  }
  EXPECT_EQ(splits, 1);
  EXPECT_EQ(finished, 1) << "exactly one worker stored the model";
  EXPECT_GE(trainers.size(), 2u) << "the units were not spread over the workers";
  EXPECT_EQ(CountEvents(api->Stderr(), "job_started", job.id()), 0);
  std::printf("%zu of 3 workers trained the 4 units\n", trainers.size());
}

TEST_F(SplitJobsOnPostgresTest, AKilledWorkersUnitIsResumedByAnotherWithIdenticalBounds) {
  const Bounds reference = SingleProcessReference(dir_, "whole");
  // Three units ({0,1,2}, {3,4,5}, {6,7}) on three workers: all run at once.
  const std::vector<std::string> flags = {
      "--split-budgets-per-unit", "3", "--job-lease-seconds", "2", "--checkpoint-steps", "10"};
  ServerProcess* api = Start("api", "api");
  std::vector<ServerProcess*> workers = {Start("worker", "w1", flags), Start("worker", "w2", flags),
                                         Start("worker", "w3", flags)};
  ASSERT_TRUE(api && workers[0] && workers[1] && workers[2]);
  Client client(api->address());
  const agt::v1::Dataset dataset = UploadMoons(client, kRows, 21);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, EightBudgetSpec(dataset.id()), &job).ok());
  // The job's iteration is its least advanced unit's: past a third, every
  // unit has checkpoints.
  const int64_t seen = WaitForIteration(client, job.id(), kSteps / 3);
  ASSERT_GE(seen, kSteps / 3);
  // The victim: a worker training a unit it has not finished.
  ServerProcess* victim = nullptr;
  int victim_unit = -1;
  for (ServerProcess* w : workers) {
    const std::string log = w->Stderr();
    for (int unit = 0; unit < 3 && victim == nullptr; ++unit) {
      if (CountEvents(log, "job_started", job.id(), unit) == 1 &&
          CountEvents(log, "job_unit_finished", job.id(), unit) == 0) {
        victim = w;
        victim_unit = unit;
      }
    }
    if (victim != nullptr) break;
  }
  ASSERT_NE(victim, nullptr) << "every unit finished before the kill; make the job longer";
  EXPECT_EQ(victim->Signal(SIGKILL), 128 + SIGKILL);

  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  int resumed = 0;
  for (ServerProcess* w : workers) {
    if (w != victim) resumed += CountEvents(w->Stderr(), "job_resumed", job.id(), victim_unit);
  }
  EXPECT_EQ(resumed, 1) << "unit " << victim_unit << " resumed from its checkpoint by a survivor";
  std::printf("killed the worker of unit %d at job iteration >= %lld of %lld\n", victim_unit,
              static_cast<long long>(seen), static_cast<long long>(kSteps));
  ExpectBitIdentical(reference, Exported(client, done));
}

}  // namespace
}  // namespace agt::e2e
