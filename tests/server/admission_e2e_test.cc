// Admission control and the poison-job guard of the real server (issue 17,
// finding 1), each test on its own agt-server child process on loopback with
// a real SQLite file:
// - the job of the finding (moons, hidden [2048, 2048], batch 1000, removal
//   n = 500: ~34 GB of aggregators) is refused up front with
//   RESOURCE_EXHAUSTED naming the estimate and --max-job-memory;
// - forced past admission (--max-job-memory 1T) on a server whose address
//   space is limited (RLIMIT_AS), its allocation really fails: the job is
//   FAILED with the reason, the process lives on and serves another tenant,
//   and after a restart the server serves and does not resume it; the same
//   for an allocation that fails inside a training step (the trainer's
//   thread pool);
// - a job RUNNING in 3 kill -9 crashes is FAILED at the next start, not
//   resumed (a SIGTERM stop in between does not count);
// - --max-jobs-per-tenant counts a tenant's QUEUED + RUNNING jobs only;
// - a retried submission id gives the first job and enqueues nothing, also
//   after kill -9, and kill -9 during many idempotent submissions leaves one
//   job per id.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "tests/server/e2e_util.h"
#include "tests/server/rpc_error_details.h"

namespace agt::e2e {
namespace {

constexpr char kAcme[] = "acme-trainer-token";
constexpr char kBeta[] = "beta-trainer-token";

// The finding's job.
agt::v1::TrainingJobSpec OversizedSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 1, 1000, {500});
  spec.set_name("oversized");
  spec.clear_hidden_widths();
  spec.add_hidden_widths(2048);
  spec.add_hidden_widths(2048);
  return spec;
}

grpc::Status SubmitWithId(Client& client, const agt::v1::TrainingJobSpec& spec,
                          const std::string& request_id, agt::v1::Job* job,
                          const std::string& token = "") {
  agt::v1::SubmitTrainingJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  agt::v1::SubmitTrainingJobResponse response;
  grpc::Status status =
      client.training->SubmitTrainingJob(Ctx(token, std::chrono::seconds(10)).get(), request,
                                         &response);
  if (status.ok() && job != nullptr) *job = response.job();
  return status;
}

agt::v1::Job GetJob(Client& client, const std::string& id, const std::string& token = "") {
  agt::v1::GetJobRequest request;
  request.set_job_id(id);
  agt::v1::GetJobResponse response;
  const grpc::Status status = client.training->GetJob(Ctx(token).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.job();
}

std::vector<agt::v1::Job> ListJobs(Client& client, const std::string& token = "") {
  std::vector<agt::v1::Job> all;
  agt::v1::ListJobsRequest request;
  request.set_page_size(1000);
  while (true) {
    agt::v1::ListJobsResponse response;
    const grpc::Status status = client.training->ListJobs(Ctx(token).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    all.insert(all.end(), response.jobs().begin(), response.jobs().end());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return all;
}

// Polls until the job is RUNNING (true) or final / timeout (false).
bool WaitRunning(Client& client, const std::string& id, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const agt::v1::Job job = GetJob(client, id);
    if (job.state() == agt::v1::JOB_STATE_RUNNING && job.progress().iteration() > 0) return true;
    if (job.state() != agt::v1::JOB_STATE_QUEUED && job.state() != agt::v1::JOB_STATE_RUNNING) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// 1 000 rows of 300 features: a degree-2 polynomial of them is 45 450 inputs.
std::string WideCsv() {
  std::string csv;
  const agt::Dataset wide = agt::MakeBlobs(1000, 300, 2, 1.0, 2.0, 9);
  for (int j = 0; j < 300; ++j) absl::StrAppend(&csv, "x", j, ",");
  csv += "y\n";
  for (agt::Index i = 0; i < wide.size(); ++i) {
    for (int j = 0; j < 300; ++j) absl::StrAppendFormat(&csv, "%.6g,", wide.x(i, j));
    absl::StrAppend(&csv, static_cast<int>(wide.y[i]), "\n");
  }
  return csv;
}

// The linear model on those inputs, one batch of all 1 000 rows, three
// removal budgets: 4 passes of 1 000 x 45 450 x 3 doubles of factors (4.4 GB)
// when the whole batch's factors are held at once.
agt::v1::TrainingJobSpec WidePolynomialSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_id, 1, 1000, {10, 20, 30});
  spec.clear_hidden_widths();
  spec.set_polynomial_degree(2);
  return spec;
}

void Cancel(Client& client, const std::string& id, const std::string& token = "") {
  agt::v1::CancelJobRequest request;
  request.set_job_id(id);
  agt::v1::CancelJobResponse response;
  const grpc::Status status = client.training->CancelJob(Ctx(token).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

class AdmissionE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.File("tokens"),
              absl::StrCat(TokenLine(kAcme, "trainer", "acme"), TokenLine(kBeta, "trainer", "beta")));
  }
  // Starts a fresh server process on the test's database.
  void StartServer(std::vector<std::string> extra, bool tokens = false, rlim_t address_space = 0) {
    server_ = std::make_unique<ServerProcess>();
    server_->set_address_space_limit(address_space);
    if (tokens) {
      extra.push_back("--tokens");
      extra.push_back(dir_.File("tokens"));
    }
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--db", dir_.File("t.db")};
    if (std::find(extra.begin(), extra.end(), "--threads-per-job") == extra.end()) {
      args.insert(args.end(), {"--threads-per-job", "1"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(server_->Start(args, dir_.File("server.log")))
        << ReadFileText(dir_.File("server.log"));
    client_ = std::make_unique<Client>(server_->address());
  }
  void Crash() { EXPECT_EQ(server_->Signal(SIGKILL), 128 + SIGKILL); }
  void Stop() { EXPECT_EQ(server_->Signal(SIGTERM), 0) << server_->Stderr(); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(AdmissionE2eTest, TheFindingsJobIsRefusedUpFrontNamingTheEstimateAndTheLimit) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-job-memory", "8G"}));
  const agt::v1::Dataset moons = UploadMoons(*client_, 2000, 1);
  agt::v1::Job job;
  const grpc::Status status = Submit(*client_, OversizedSpec(moons.id()), &job);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "job needs an estimated 3"))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "aggregators 33."))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "--max-job-memory is 8.0 GB"))
      << status.error_message();
  // Machine-readable too: reason JOB_MEMORY_LIMIT and a QuotaFailure with the message.
  const RpcErrorDetails details = ReadRpcErrorDetails(status);
  EXPECT_EQ(details.reason, "JOB_MEMORY_LIMIT");
  EXPECT_EQ(details.quota_subject, "server/job_memory");
  EXPECT_EQ(details.quota_description, status.error_message());
  EXPECT_TRUE(ListJobs(*client_).empty()) << "a refused job must not be queued";
  // A job that fits is accepted by the same server.
  EXPECT_FALSE(TrainModel(*client_, MoonsSpec(moons.id(), 1)).empty());
}

TEST_F(AdmissionE2eTest, AnAllocationFailureFailsOnlyThatJobWhileAnotherTenantIsServed) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory does not fit an address-space limit";
#endif
  // 4 GiB of address space: the aggregators' first 16.8 GB block cannot be
  // had; the server itself needs well under 1 GiB (a few malloc arenas, so
  // that many cores do not reserve it all in arenas).
  setenv("MALLOC_ARENA_MAX", "4", 1);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-job-memory", "1T", "--threads-per-job", "2"},
                                      /*tokens=*/true, rlim_t{4} << 30));
  unsetenv("MALLOC_ARENA_MAX");
  const agt::v1::Dataset moons = UploadMoons(*client_, 2000, 1, kAcme);
  agt::v1::Job oversized;
  ASSERT_TRUE(Submit(*client_, OversizedSpec(moons.id()), &oversized, kAcme).ok());
  const agt::v1::Job failed = WaitForFinal(*client_, oversized.id(), kAcme);
  EXPECT_EQ(failed.state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(failed.error(), "out of memory")) << failed.error();
  EXPECT_TRUE(absl::StrContains(failed.error(), "setting up the trainer")) << failed.error();
  EXPECT_EQ(kill(server_->pid(), 0), 0) << "the server process died";

  // Another tenant is served by the same process: upload, train, read.
  const agt::v1::Dataset beta_data = UploadMoons(*client_, 200, 2, kBeta);
  const std::string beta_model = TrainModel(*client_, MoonsSpec(beta_data.id(), 2), kBeta);
  EXPECT_FALSE(beta_model.empty());

  // An allocation that fails inside a training step, on the trainer's
  // threads: a degree-2 polynomial of 300 features is 45 450 inputs per row,
  // and every pass holds the batch's factors (about 4 GB in all).
  agt::v1::Dataset wide;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("wide", 2), WideCsv(), &wide, kAcme).ok());
  const agt::v1::TrainingJobSpec poly = WidePolynomialSpec(wide.id());
  agt::v1::Job poly_job;
  ASSERT_TRUE(Submit(*client_, poly, &poly_job, kAcme).ok());
  const agt::v1::Job poly_failed = WaitForFinal(*client_, poly_job.id(), kAcme);
  EXPECT_EQ(poly_failed.state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(poly_failed.error(), "out of memory")) << poly_failed.error();
  EXPECT_TRUE(absl::StrContains(poly_failed.error(), "training step 1")) << poly_failed.error();
  EXPECT_EQ(kill(server_->pid(), 0), 0) << "the server process died";
  EXPECT_EQ(ListJobs(*client_, kBeta).size(), 1u);

  // A restart serves, and the failed jobs stay FAILED (nothing resumes).
  Stop();
  ASSERT_NO_FATAL_FAILURE(StartServer({}, /*tokens=*/true));
  EXPECT_TRUE(HealthServing(client_->channel.get()));
  for (const std::string& id : {oversized.id(), poly_job.id()}) {
    const agt::v1::Job after = GetJob(*client_, id, kAcme);
    EXPECT_EQ(after.state(), agt::v1::JOB_STATE_FAILED) << id;
    EXPECT_TRUE(absl::StrContains(after.error(), "out of memory")) << after.error();
  }
  agt::v1::GetModelRequest get;
  get.set_model_id(beta_model);
  agt::v1::GetModelResponse model;
  EXPECT_TRUE(client_->models->GetModel(Ctx(kBeta).get(), get, &model).ok());
}

// Made to fit rather than refused: the wide polynomial job, whose whole-batch
// passes do not fit the server's 8 GB limit (nor its 5 GiB address space),
// is admitted with its factors held 256 rows at a time, and succeeds there.
TEST_F(AdmissionE2eTest, AJobWhosePassesDoNotFitWholeIsTrainedInGroupsAndSucceeds) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory does not fit an address-space limit";
#endif
  setenv("MALLOC_ARENA_MAX", "4", 1);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-job-memory", "8G"}, /*tokens=*/false,
                                      rlim_t{5} << 30));
  unsetenv("MALLOC_ARENA_MAX");
  agt::v1::Dataset wide;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("wide", 2), WideCsv(), &wide).ok());
  agt::v1::Job job;
  const grpc::Status submitted = Submit(*client_, WidePolynomialSpec(wide.id()), &job);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  const agt::v1::Job done = WaitForFinal(*client_, job.id(), "", std::chrono::seconds(120));
  EXPECT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_TRUE(absl::StrContains(server_->Stderr(), "factors of 256 rows at a time"))
      << server_->Stderr();
}

TEST_F(AdmissionE2eTest, AJobRunningInThreeCrashesIsFailedNotResumed) {
  ASSERT_NO_FATAL_FAILURE(StartServer({}));
  const agt::v1::Dataset moons = UploadMoons(*client_, 200, 1);
  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(moons.id()), &job).ok());
  for (int crash = 1; crash <= 3; ++crash) {
    ASSERT_TRUE(WaitRunning(*client_, job.id(), std::chrono::seconds(30)))
        << "crash " << crash << ": " << GetJob(*client_, job.id()).error();
    Crash();
    ASSERT_NO_FATAL_FAILURE(StartServer({}));
    if (crash == 2) {
      // Clean stops in between count nothing: the job resumes again.
      for (int stop = 0; stop < 2; ++stop) {
        ASSERT_TRUE(WaitRunning(*client_, job.id(), std::chrono::seconds(30)));
        Stop();
        ASSERT_NO_FATAL_FAILURE(StartServer({}));
      }
    }
  }
  const agt::v1::Job after = GetJob(*client_, job.id());
  EXPECT_EQ(after.state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(after.error(), "crashed the server 3 times")) << after.error();
  EXPECT_TRUE(absl::StrContains(after.error(), "resubmit with smaller settings")) << after.error();
  // It is not picked up later either, and the server trains other jobs.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(GetJob(*client_, job.id()).state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_FALSE(TrainModel(*client_, MoonsSpec(moons.id(), 1)).empty());
}

TEST_F(AdmissionE2eTest, TheTenantLimitCountsQueuedAndRunningJobsOnly) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-jobs-per-tenant", "2"}, /*tokens=*/true));
  const agt::v1::Dataset acme = UploadMoons(*client_, 200, 1, kAcme);
  const agt::v1::Dataset beta = UploadMoons(*client_, 200, 2, kBeta);
  agt::v1::Job first, second, third;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(acme.id()), &first, kAcme).ok());
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(acme.id()), &second, kAcme).ok());
  const grpc::Status refused = Submit(*client_, LongRunningSpec(acme.id()), &third, kAcme);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "has 2 QUEUED or RUNNING jobs"))
      << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "--max-jobs-per-tenant is 2"))
      << refused.error_message();
  // The other tenant has its own count.
  agt::v1::Job beta_job;
  EXPECT_TRUE(Submit(*client_, MoonsSpec(beta.id(), 1), &beta_job, kBeta).ok());
  // A job that ends frees its place.
  Cancel(*client_, first.id(), kAcme);
  EXPECT_EQ(WaitForFinal(*client_, first.id(), kAcme).state(), agt::v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(acme.id()), &third, kAcme).ok());
  EXPECT_EQ(ListJobs(*client_, kAcme).size(), 3u);
  Cancel(*client_, second.id(), kAcme);
  Cancel(*client_, third.id(), kAcme);
}

TEST_F(AdmissionE2eTest, ARetriedSubmissionIdReturnsTheFirstJobAlsoAfterACrash) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-jobs-per-tenant", "1"}));
  const agt::v1::Dataset moons = UploadMoons(*client_, 200, 1);
  const agt::v1::TrainingJobSpec spec = LongRunningSpec(moons.id());
  agt::v1::Job first, again;
  ASSERT_TRUE(SubmitWithId(*client_, spec, "submit-1", &first).ok());
  // At the tenant's limit, the retry is still answered, with the same job.
  ASSERT_TRUE(SubmitWithId(*client_, spec, "submit-1", &again).ok());
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(ListJobs(*client_).size(), 1u);
  // The same id with another spec, and malformed ids, are refused.
  agt::v1::TrainingJobSpec other = spec;
  other.set_seed(99);
  EXPECT_EQ(SubmitWithId(*client_, other, "submit-1", nullptr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SubmitWithId(*client_, spec, "bad id!", nullptr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SubmitWithId(*client_, spec, std::string(129, 'a'), nullptr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(WaitRunning(*client_, first.id(), std::chrono::seconds(30)));
  Crash();
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-jobs-per-tenant", "1"}));
  ASSERT_TRUE(SubmitWithId(*client_, spec, "submit-1", &again).ok());
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(ListJobs(*client_).size(), 1u);
  Cancel(*client_, first.id());
  EXPECT_EQ(WaitForFinal(*client_, first.id()).state(), agt::v1::JOB_STATE_CANCELLED);
  // After the job ended, the retry still names it (and enqueues nothing); a
  // new id is a new job.
  ASSERT_TRUE(SubmitWithId(*client_, spec, "submit-1", &again).ok());
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(again.state(), agt::v1::JOB_STATE_CANCELLED);
  agt::v1::Job second;
  ASSERT_TRUE(SubmitWithId(*client_, MoonsSpec(moons.id(), 1), "submit-2", &second).ok());
  EXPECT_NE(second.id(), first.id());
  EXPECT_EQ(ListJobs(*client_).size(), 2u);
}

TEST_F(AdmissionE2eTest, KillDuringIdempotentSubmissionsLeavesOneJobPerId) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-jobs-per-tenant", "0"}));
  const agt::v1::Dataset moons = UploadMoons(*client_, 200, 1);
  const agt::v1::TrainingJobSpec spec = MoonsSpec(moons.id(), 1);
  std::mutex mu;
  std::map<std::string, std::string> acknowledged;  // request id -> job id
  std::set<std::string> attempted;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      Client client(server_->address());
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = absl::StrCat("kill-", t, "-", i);
        {
          std::lock_guard<std::mutex> lock(mu);
          attempted.insert(id);
        }
        agt::v1::Job job;
        if (!SubmitWithId(client, spec, id, &job).ok()) break;  // the server died
        std::lock_guard<std::mutex> lock(mu);
        acknowledged[id] = job.id();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  Crash();
  stop = true;
  for (std::thread& c : clients) c.join();
  ASSERT_GT(acknowledged.size(), 4u);

  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-jobs-per-tenant", "0"}));
  std::set<std::string> job_ids;
  for (const std::string& id : attempted) {
    agt::v1::Job job;
    ASSERT_TRUE(SubmitWithId(*client_, spec, id, &job).ok()) << id;
    if (auto it = acknowledged.find(id); it != acknowledged.end()) {
      EXPECT_EQ(job.id(), it->second) << "request " << id << " got another job after the crash";
    }
    EXPECT_TRUE(job_ids.insert(job.id()).second) << "two request ids share job " << job.id();
  }
  // Exactly one job per request id, none without one.
  EXPECT_EQ(ListJobs(*client_).size(), attempted.size());
}

}  // namespace
}  // namespace agt::e2e
