// Several agt-server processes on one PostgreSQL database (issue 19): API
// replicas (--role api) and workers (--role worker) started as real
// processes on loopback, the database a private PostgreSQL server the test
// starts (postgres_fixture.h; the cases skip without PostgreSQL). What must
// hold across processes: every job is trained by exactly one worker, a
// privacy budget is never overspent and a deletion never counted twice when
// the requests arrive through two replicas at once, and a job whose worker
// is killed (SIGKILL) is finished by another worker, from its checkpoint,
// with bounds bit-identical to a single-process run.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "server/service/server.h"
#include "tests/server/e2e_util.h"
#include "tests/server/postgres_fixture.h"
#include "tests/server/shared_db_servers.h"

namespace agt::e2e {
namespace {


// How many lines of a server's log name `event` for `job_id`.
int CountEvents(const std::string& log, const std::string& event, const std::string& job_id) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, absl::StrCat("\"", event, "\"")) &&
        absl::StrContains(line, job_id)) {
      ++n;
    }
  }
  return n;
}

class ReplicasE2eTest : public SharedDatabaseServers {};

TEST_F(ReplicasE2eTest, JobsSubmittedToAnApiReplicaAreEachTrainedByExactlyOneWorker) {
  ServerProcess* api = Start("api", "api");
  ServerProcess* w1 = Start("worker", "w1", {"--workers", "2"});
  ServerProcess* w2 = Start("worker", "w2", {"--workers", "2"});
  ASSERT_TRUE(api && w1 && w2);
  Client client(api->address());
  const agt::v1::Dataset dataset = UploadMoons(client, 200, 5);
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    agt::v1::Job job;
    agt::v1::TrainingJobSpec spec = MoonsSpec(dataset.id(), 3);
    spec.set_seed(100 + i);
    ASSERT_TRUE(Submit(client, spec, &job).ok());
    ids.push_back(job.id());
  }
  // A watch on the api replica follows a job trained by a worker to its end.
  std::vector<agt::v1::JobEvent> events;
  const grpc::Status watched = WatchAll(client, ids.back(), &events);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), agt::v1::JOB_STATE_SUCCEEDED);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].progress().iteration(), events[i - 1].progress().iteration());
  }
  for (const std::string& id : ids) {
    const agt::v1::Job done = WaitForFinal(client, id, "", std::chrono::seconds(120));
    EXPECT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << id << ": " << done.error();
  }
  const std::string api_log = api->Stderr(), log1 = w1->Stderr(), log2 = w2->Stderr();
  int by_w1 = 0;
  for (const std::string& id : ids) {
    const int started = CountEvents(log1, "job_started", id) + CountEvents(log2, "job_started", id);
    EXPECT_EQ(started, 1) << id << " was started " << started << " times";
    EXPECT_EQ(CountEvents(log1, "job_resumed", id) + CountEvents(log2, "job_resumed", id), 0);
    EXPECT_EQ(CountEvents(api_log, "job_started", id), 0) << "the api replica trained " << id;
    by_w1 += CountEvents(log1, "job_started", id);
  }
  std::printf("worker 1 trained %d of %zu jobs, worker 2 the rest\n", by_w1, ids.size());
  // A worker serves health probes only.
  Client worker(w1->address());
  EXPECT_TRUE(HealthServing(worker.channel.get()));
  agt::v1::ListJobsResponse listed;
  EXPECT_EQ(worker.training->ListJobs(Ctx().get(), {}, &listed).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ReplicasE2eTest, TwoApiReplicasNeverOverspendABudgetNorCountADeletionTwice) {
  ServerProcess* api1 = Start("api", "api1", {"--privacy-budget", "1"});
  ServerProcess* api2 = Start("api", "api2", {"--privacy-budget", "1"});
  ServerProcess* worker = Start("worker", "w");
  ASSERT_TRUE(api1 && api2 && worker);
  Client c1(api1->address()), c2(api2->address());
  const agt::v1::Dataset dataset = UploadMoons(c1, 100, 3);
  agt::v1::TrainingJobSpec substitution = MoonsSpec(dataset.id(), 2, 50, {1, 2, 4});
  substitution.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
  substitution.set_clip_gamma(1.0);
  const std::string private_model = TrainModel(c1, substitution);
  const std::string removal_model = TrainModel(c2, MoonsSpec(dataset.id(), 2, 20, {1, 2, 5}));
  ASSERT_FALSE(private_model.empty());
  ASSERT_FALSE(removal_model.empty());

  auto privacy1 = agt::v1::PrivacyService::NewStub(c1.channel);
  auto privacy2 = agt::v1::PrivacyService::NewStub(c2.channel);
  auto unlearning1 = agt::v1::UnlearningService::NewStub(c1.channel);
  auto unlearning2 = agt::v1::UnlearningService::NewStub(c2.channel);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 6;
  std::atomic<int> granted{0}, refused{0}, other{0}, deletion_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      agt::v1::PrivacyService::Stub* privacy = t % 2 == 0 ? privacy1.get() : privacy2.get();
      agt::v1::UnlearningService::Stub* unlearning =
          t % 2 == 0 ? unlearning1.get() : unlearning2.get();
      for (int i = 0; i < kPerThread; ++i) {
        agt::v1::PrivatePredictRequest request;
        request.set_model_id(private_model);
        request.mutable_inputs()->set_rows(1);
        request.mutable_inputs()->set_cols(2);
        request.mutable_inputs()->add_values(0.5);
        request.mutable_inputs()->add_values(0.25);
        request.set_epsilon(0.0625);
        agt::v1::PrivatePredictResponse r;
        const grpc::Status s = privacy->PrivatePredict(Ctx().get(), request, &r);
        if (s.ok()) {
          ++granted;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
        } else {
          ++other;
          ADD_FAILURE() << s.error_message();
        }
        // Overlapping deletions: rows {r, r+1} with r in 0..3, so 5 distinct
        // rows in all, which fit the largest budget whatever the batches.
        agt::v1::RequestDeletionRequest deletion;
        deletion.set_model_id(removal_model);
        deletion.add_row_ids((t + i) % 4);
        deletion.add_row_ids((t + i) % 4 + 1);
        agt::v1::RequestDeletionResponse deleted;
        const grpc::Status d = unlearning->RequestDeletion(Ctx().get(), deletion, &deleted);
        if (!d.ok() || !deleted.accepted()) {
          ++deletion_errors;
          ADD_FAILURE() << d.error_message() << " " << deleted.message();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(granted.load(), 16) << "16 x 1/16 = 1 exactly, through two replicas";
  EXPECT_EQ(refused.load(), kThreads * kPerThread - 16);
  agt::v1::GetPrivacyBudgetRequest budget_request;
  budget_request.set_model_id(private_model);
  agt::v1::GetPrivacyBudgetResponse budget;
  ASSERT_TRUE(privacy2->GetPrivacyBudget(Ctx().get(), budget_request, &budget).ok());
  EXPECT_EQ(budget.budget().spent_epsilon(), 1.0);
  EXPECT_EQ(budget.budget().releases(), 16);

  EXPECT_EQ(deletion_errors.load(), 0);
  agt::v1::GetUnlearningStatusRequest status_request;
  status_request.set_model_id(removal_model);
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(unlearning1->GetUnlearningStatus(Ctx().get(), status_request, &status).ok());
  EXPECT_EQ(status.deletions(), 5) << "rows 0..4, each counted once";
}

// The job of the kill test: long enough to be killed in the middle.
agt::v1::TrainingJobSpec KillSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 60, 50, {1, 2, 4});
  spec.clear_hidden_widths();
  spec.add_hidden_widths(32);
  spec.mutable_optimizer()->set_learning_rate(0.02);
  return spec;
}
constexpr int kKillRows = 600;
constexpr int64_t kKillSteps = kKillRows / 50 * 60;

struct Bounds {
  std::vector<double> nominal;
  std::vector<std::vector<double>> lower, upper;
};

Bounds Exported(Client& client, const std::string& model_id) {
  agt::v1::ExportModelRequest request;
  request.set_model_id(model_id);
  agt::v1::ExportModelResponse response;
  const grpc::Status status = client.models->ExportModel(Ctx().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  Bounds b;
  b.nominal = Flatten(response.model().nominal());
  for (const agt::v1::BudgetBox& box : response.boxes()) {
    b.lower.push_back(Flatten(box.lower()));
    b.upper.push_back(Flatten(box.upper()));
  }
  return b;
}

int64_t IterationOf(Client& client, const std::string& job_id) {
  agt::v1::GetJobRequest request;
  request.set_job_id(job_id);
  agt::v1::GetJobResponse response;
  if (!client.training->GetJob(Ctx().get(), request, &response).ok()) return -1;
  return response.job().progress().iteration();
}

TEST_F(ReplicasE2eTest, AKilledWorkersJobIsFinishedByAnotherWithIdenticalBounds) {
  // The reference: one process on an SQLite file, uninterrupted.
  Bounds reference;
  {
    ServerProcess single;
    ASSERT_TRUE(single.Start(ServerArgs(dir_.File("single.db")), dir_.File("single.log")))
        << single.Stderr();
    Client client(single.address());
    const agt::v1::Dataset dataset = UploadMoons(client, kKillRows, 21);
    const std::string model = TrainModel(client, KillSpec(dataset.id()));
    ASSERT_FALSE(model.empty());
    reference = Exported(client, model);
    EXPECT_EQ(single.Signal(SIGTERM), 0);
  }

  const std::vector<std::string> worker_flags = {"--job-lease-seconds", "2", "--checkpoint-steps",
                                                 "10"};
  ServerProcess* api = Start("api", "api");
  ServerProcess* w1 = Start("worker", "w1", worker_flags);
  ServerProcess* w2 = Start("worker", "w2", worker_flags);
  ASSERT_TRUE(api && w1 && w2);
  Client client(api->address());
  const agt::v1::Dataset dataset = UploadMoons(client, kKillRows, 21);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(client, KillSpec(dataset.id()), &job).ok());
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  int64_t seen = 0;
  while (Clock::now() < deadline && (seen = IterationOf(client, job.id())) < kKillSteps / 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(seen, kKillSteps / 3);
  ASSERT_LT(seen, kKillSteps) << "the job ended before the kill; make it longer";
  const bool on_w1 = CountEvents(w1->Stderr(), "job_started", job.id()) == 1;
  ServerProcess* victim = on_w1 ? w1 : w2;
  ServerProcess* survivor = on_w1 ? w2 : w1;
  ASSERT_EQ(CountEvents(victim->Stderr(), "job_started", job.id()), 1);
  EXPECT_EQ(victim->Signal(SIGKILL), 128 + SIGKILL);

  const agt::v1::Job done = WaitForFinal(client, job.id(), "", std::chrono::seconds(120));
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(CountEvents(survivor->Stderr(), "job_resumed", job.id()), 1)
      << "the survivor resumed it from its checkpoint";
  EXPECT_EQ(CountEvents(survivor->Stderr(), "job_started", job.id()), 0);
  std::printf("killed the worker at iteration >= %lld of %lld\n", static_cast<long long>(seen),
              static_cast<long long>(kKillSteps));
  const Bounds resumed = Exported(client, done.model_id());
  ASSERT_FALSE(reference.nominal.empty());
  EXPECT_TRUE(BitIdentical(reference.nominal, resumed.nominal)) << "nominal parameters differ";
  ASSERT_EQ(reference.lower.size(), resumed.lower.size());
  for (size_t j = 0; j < reference.lower.size(); ++j) {
    EXPECT_TRUE(BitIdentical(reference.lower[j], resumed.lower[j])) << "lower bounds, box " << j;
    EXPECT_TRUE(BitIdentical(reference.upper[j], resumed.upper[j])) << "upper bounds, box " << j;
  }
}

TEST(ReplicaRolesTest, AnSqliteFileHasOneServerWhichServesEveryRole) {
  TempDir dir;
  std::string out, err;
  const int code =
      RunServerCommand({"--listen", "127.0.0.1:0", "--db", dir.File("one.db"), "--role", "worker"},
                       "", &out, &err, dir);
  EXPECT_NE(code, 0);
  EXPECT_TRUE(absl::StrContains(err, "--role")) << err;
  EXPECT_TRUE(absl::StrContains(err, "postgresql://")) << err;
}

TEST(ReplicaRolesTest, PasswordsInTheDbUriAreNeverShown) {
  EXPECT_EQ(agt::server::RedactedDb("postgresql://agt:s3cret@db:5432/agt"),
            "postgresql://agt:***@db:5432/agt");
  EXPECT_EQ(agt::server::RedactedDb("postgresql://db/agt?user=agt&password=s3cret&sslmode=require"),
            "postgresql://db/agt?user=agt&password=***&sslmode=require");
  EXPECT_EQ(agt::server::RedactedDb("postgresql://agt@db/agt"), "postgresql://agt@db/agt");
  EXPECT_EQ(agt::server::RedactedDb("/data/agt:1@x.db"), "/data/agt:1@x.db");  // a file
}

TEST(ReplicaRolesTest, RolesParseAndOthersAreRefused) {
  EXPECT_EQ(*agt::server::ParseServerRole("api"), agt::server::ServerRole::kApi);
  EXPECT_EQ(*agt::server::ParseServerRole("worker"), agt::server::ServerRole::kWorker);
  EXPECT_EQ(*agt::server::ParseServerRole("all"), agt::server::ServerRole::kAll);
  const absl::StatusOr<agt::server::ServerRole> bad = agt::server::ParseServerRole("both");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "both")) << bad.status();
}

}  // namespace
}  // namespace agt::e2e
