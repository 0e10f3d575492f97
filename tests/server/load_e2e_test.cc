// Concurrency against the real server: 8 clients, each on its own channel,
// make 200 CertifyPredictions calls each while a training job runs. Every
// call succeeds, returns exactly the certificates of a call made alone, the
// job keeps making progress and finishes, all within a bounded time.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr int kClients = 8;
constexpr int kCallsPerClient = 200;

TEST(LoadE2eTest, EightClientsCertifyWhileAJobTrains) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(ServerArgs(dir.File("load.db")), dir.File("server.log")))
      << server.Stderr();
  Client client(server.address());

  // A model to query.
  const agt::v1::Dataset small = UploadMoons(client, 200, 4);
  agt::v1::Job first;
  ASSERT_TRUE(Submit(client, MoonsSpec(small.id(), 3), &first).ok());
  const agt::v1::Job trained = WaitForFinal(client, first.id());
  ASSERT_EQ(trained.state(), agt::v1::JOB_STATE_SUCCEEDED) << trained.error();

  // A long job that trains during the load.
  const agt::v1::Dataset big = UploadMoons(client, 1000, 5);
  agt::v1::Job busy;
  ASSERT_TRUE(Submit(client, LongRunningSpec(big.id()), &busy).ok());

  agt::v1::CertifyPredictionsRequest request;
  request.set_model_id(trained.model_id());
  const agt::Dataset points = agt::MakeMoons(16, 0.2, 6);
  request.mutable_inputs()->set_rows(points.size());
  request.mutable_inputs()->set_cols(2);
  for (agt::Index i = 0; i < points.size(); ++i) {
    request.mutable_inputs()->add_values(points.x(i, 0));
    request.mutable_inputs()->add_values(points.x(i, 1));
    request.add_labels(points.y[i]);
  }
  agt::v1::CertifyPredictionsResponse alone;
  ASSERT_TRUE(client.models->CertifyPredictions(Ctx().get(), request, &alone).ok());
  const std::string expected = alone.SerializeAsString();

  auto iteration_of_busy = [&]() -> int64_t {
    agt::v1::GetJobRequest get;
    get.set_job_id(busy.id());
    agt::v1::GetJobResponse response;
    EXPECT_TRUE(client.training->GetJob(Ctx().get(), get, &response).ok());
    EXPECT_EQ(response.job().state(), agt::v1::JOB_STATE_RUNNING);
    return response.job().progress().iteration();
  };
  // Wait (bounded) until the job runs.
  const auto running_deadline = Clock::now() + std::chrono::seconds(20);
  int64_t before = 0;
  while (Clock::now() < running_deadline) {
    agt::v1::GetJobRequest get;
    get.set_job_id(busy.id());
    agt::v1::GetJobResponse response;
    ASSERT_TRUE(client.training->GetJob(Ctx().get(), get, &response).ok());
    ASSERT_FALSE(response.job().state() == agt::v1::JOB_STATE_FAILED) << response.job().error();
    if (response.job().state() == agt::v1::JOB_STATE_RUNNING &&
        response.job().progress().iteration() > 0) {
      before = response.job().progress().iteration();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(before, 0) << "the job did not start";

  std::atomic<int> ok{0}, wrong{0}, failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&] {
      Client own(server.address());  // one channel (connection) per client
      for (int i = 0; i < kCallsPerClient; ++i) {
        agt::v1::CertifyPredictionsResponse response;
        const grpc::Status status = own.models->CertifyPredictions(
            Ctx("", std::chrono::seconds(20)).get(), request, &response);
        if (!status.ok()) {
          ++failed;
        } else if (response.SerializeAsString() != expected) {
          ++wrong;
        } else {
          ++ok;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%d certify calls by %d clients in %.2f s (%.0f calls/s) while training\n",
              kClients * kCallsPerClient, kClients, seconds, kClients * kCallsPerClient / seconds);
  EXPECT_EQ(ok.load(), kClients * kCallsPerClient);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(seconds, 60.0);

  // The job kept training during the load, and can still be cancelled.
  const auto progress_deadline = Clock::now() + std::chrono::seconds(10);
  int64_t after = before;
  while (after <= before && Clock::now() < progress_deadline) {
    after = iteration_of_busy();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(after, before);
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(busy.id());
  agt::v1::CancelJobResponse cancelled;
  ASSERT_TRUE(client.training->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(WaitForFinal(client, busy.id()).state(), agt::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(HealthServing(client.channel.get()));
  EXPECT_EQ(server.Signal(SIGTERM), 0);
}

}  // namespace
}  // namespace agt::e2e
