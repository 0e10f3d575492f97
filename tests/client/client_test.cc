// agt::client::Client against a real gRPC server on 127.0.0.1:0 (the fake
// services of fake_server.h): wire behaviour, metadata, streaming, status
// mapping, deadlines, and concurrent use.
#include "client/lib/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "tests/client/fake_server.h"

namespace agt::client {
namespace {

using testing::FakeServer;

std::unique_ptr<Client> Connect(const FakeServer& server, const std::string& token = "") {
  ClientOptions options;
  options.target = server.target();
  options.token = token;
  options.deadline = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

agt::v1::DatasetMetadata CsvMetadata(const std::string& name) {
  agt::v1::DatasetMetadata metadata;
  metadata.set_name(name);
  metadata.set_format(agt::v1::DATASET_FORMAT_CSV);
  metadata.set_num_classes(-1);
  return metadata;
}

TEST(ClientLibrary, CreateRejectsEmptyTargetAndUnreadableCa) {
  ClientOptions options;
  options.target = "";
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Create(options).status()));
  options.target = "127.0.0.1:1";
  options.tls = true;
  options.tls_ca_file = "/nonexistent/ca.pem";
  absl::Status status = Client::Create(options).status();
  EXPECT_TRUE(absl::IsNotFound(status));
  EXPECT_TRUE(absl::StrContains(status.message(), "/nonexistent/ca.pem"));
}

TEST(ClientLibrary, UploadSendsMetadataFirstThenChunksOfAtMostOneMiB) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  // 2.5 MiB of 16-byte lines: three chunks, 1 MiB, 1 MiB, 0.5 MiB.
  std::string data;
  while (data.size() < (kUploadChunkBytes * 5) / 2) data += "0.125,0.25,1.0\n\n";
  data.resize((kUploadChunkBytes * 5) / 2);
  auto response = client->UploadDataset(CsvMetadata("big"), data);
  ASSERT_TRUE(response.ok()) << response.status();
  std::lock_guard<std::mutex> lock(server.state.mu);
  EXPECT_TRUE(server.state.upload_metadata_first);
  EXPECT_EQ(server.state.upload_metadata.name(), "big");
  EXPECT_EQ(server.state.upload_metadata.num_classes(), -1);
  EXPECT_EQ(server.state.upload_chunk_sizes,
            (std::vector<size_t>{kUploadChunkBytes, kUploadChunkBytes, kUploadChunkBytes / 2}));
  EXPECT_EQ(server.state.upload_bytes, data);
  EXPECT_EQ(response->dataset().name(), "big");
}

TEST(ClientLibrary, UploadFileStreamsTheFileUnchanged) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("agt_upload_" + std::to_string(getpid()) + ".csv");
  std::string data = "x0,x1,y\n";
  for (int i = 0; i < 100000; ++i) data += std::to_string(i) + ",0.5,1\n";  // > 1 MiB
  {
    std::ofstream out(path, std::ios::binary);
    out << data;
  }
  auto response = client->UploadDatasetFile(CsvMetadata("file"), path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->dataset().num_rows(), 100001);  // the fake counts '\n'
  std::lock_guard<std::mutex> lock(server.state.mu);
  EXPECT_EQ(server.state.upload_bytes, data);
  ASSERT_GE(server.state.upload_chunk_sizes.size(), 2u);
  for (size_t size : server.state.upload_chunk_sizes) EXPECT_LE(size, kUploadChunkBytes);
}

TEST(ClientLibrary, UploadOfMissingFileFailsBeforeConnecting) {
  ClientOptions options;
  options.target = "127.0.0.1:1";  // nothing listens there
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok());
  auto response = (*client)->UploadDatasetFile(CsvMetadata("x"), "/nonexistent/data.csv");
  EXPECT_TRUE(absl::IsNotFound(response.status())) << response.status();
}

TEST(ClientLibrary, EmptyUploadSendsOnlyMetadata) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  auto response = client->UploadDataset(CsvMetadata("empty"), "");
  ASSERT_TRUE(response.ok()) << response.status();
  std::lock_guard<std::mutex> lock(server.state.mu);
  EXPECT_TRUE(server.state.upload_chunk_sizes.empty());
}

TEST(ClientLibrary, ServerErrorsKeepTheirCodeAndMessage) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  agt::v1::GetDatasetRequest get;
  get.set_dataset_id("missing-7");
  absl::Status status = client->GetDataset(get).status();
  EXPECT_TRUE(absl::IsNotFound(status));
  EXPECT_EQ(status.message(), "dataset missing-7 not found");

  auto rejected = client->UploadDataset(CsvMetadata("reject"), "x,1\n");
  EXPECT_TRUE(absl::IsInvalidArgument(rejected.status()));
  EXPECT_EQ(rejected.status().message(), "data.csv:2: column 1: 'x' is not a number");

  agt::v1::SubmitTrainingJobRequest submit;
  submit.mutable_spec()->set_batch_size(10);
  submit.mutable_spec()->add_budgets()->set_n(10);
  auto job = client->SubmitTrainingJob(submit);
  EXPECT_TRUE(absl::IsInvalidArgument(job.status()));
  EXPECT_EQ(job.status().message(), "budgets[].n 10 must be below batch_size 10");
}

TEST(ClientLibrary, UnreachableServerIsUnavailable) {
  ClientOptions options;
  options.target = "127.0.0.1:1";
  options.deadline = absl::Seconds(5);
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok());
  agt::v1::ListDatasetsRequest list;
  EXPECT_TRUE(absl::IsUnavailable((*client)->ListDatasets(list).status()));
}

TEST(ClientLibrary, DeadlineBoundsEveryUnaryCall) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  ClientOptions options;
  options.target = server.target();
  options.deadline = absl::Milliseconds(300);
  auto client = Client::Create(options);
  ASSERT_TRUE(client.ok());
  agt::v1::GetJobRequest get;
  get.set_job_id("slow-1");  // the fake sleeps 2 s
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = (*client)->GetJob(get).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1800));
}

TEST(ClientLibrary, TokenGoesOutAsBearerMetadataAndIsCheckedByTheServer) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.state.required_token = "s3cret";
  auto good = Connect(server, "s3cret");
  auto none = Connect(server);
  auto wrong = Connect(server, "guess");
  agt::v1::ListModelsRequest list;
  EXPECT_TRUE(good->ListModels(list).ok());
  EXPECT_TRUE(absl::IsUnauthenticated(none->ListModels(list).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(wrong->ListModels(list).status()));
  std::lock_guard<std::mutex> lock(server.state.mu);
  EXPECT_EQ(server.state.authorizations,
            (std::vector<std::string>{"Bearer s3cret", "", "Bearer guess"}));
}

TEST(ClientLibrary, WatchJobDeliversEveryEventInOrderAndReturnsTheLast) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.state.watch_steps = 7;
  auto client = Connect(server);
  std::vector<agt::v1::JobEvent> seen;
  agt::v1::WatchJobRequest request;
  request.set_job_id("job-1");
  auto last = client->WatchJob(request, [&](const agt::v1::JobEvent& e) {
    seen.push_back(e);
    return true;
  });
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(seen.size(), 9u);  // QUEUED, 7 x RUNNING, SUCCEEDED
  EXPECT_EQ(seen.front().state(), agt::v1::JOB_STATE_QUEUED);
  for (int i = 1; i <= 7; ++i) EXPECT_EQ(seen[i].progress().iteration(), i);
  EXPECT_EQ(last->state(), agt::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(last->model_id(), "m-1");
}

TEST(ClientLibrary, WatchJobStopsWhenTheCallbackSaysSo) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.state.watch_steps = 200;
  server.state.watch_step_delay = std::chrono::milliseconds(10);
  auto client = Connect(server);
  int calls = 0;
  agt::v1::WatchJobRequest request;
  request.set_job_id("job-1");
  const auto start = std::chrono::steady_clock::now();
  auto last = client->WatchJob(request, [&](const agt::v1::JobEvent&) { return ++calls < 3; });
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(last->state(), agt::v1::JOB_STATE_RUNNING);
  // Cancelled long before the 2 s the whole stream would take.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
}

TEST(ClientLibrary, WatchOfUnknownJobIsNotFound) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  agt::v1::WatchJobRequest request;
  request.set_job_id("missing-job");
  int calls = 0;
  auto last = client->WatchJob(request, [&](const agt::v1::JobEvent&) { return ++calls > 0; });
  EXPECT_TRUE(absl::IsNotFound(last.status())) << last.status();
  EXPECT_EQ(calls, 0);
}

TEST(ClientLibrary, HealthCheckNeedsNoTokenAndReportsServing) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.state.required_token = "s3cret";
  auto client = Connect(server);
  auto health = client->CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthStatus::kServing);
  EXPECT_STREQ(HealthStatusName(*health), "SERVING");
  auto unknown = client->CheckHealth("no.such.Service");
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();
}

TEST(ClientLibrary, EveryRpcRoundTrips) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  agt::v1::ListDatasetsRequest list_datasets;
  auto page = client->ListDatasets(list_datasets);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->datasets_size(), 2);
  EXPECT_EQ(page->next_page_token(), "2");
  agt::v1::DeleteDatasetRequest del;
  del.set_dataset_id("ds-1");
  EXPECT_TRUE(client->DeleteDataset(del).ok());
  agt::v1::ListJobsRequest list_jobs;
  EXPECT_EQ(client->ListJobs(list_jobs)->jobs_size(), 1);
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id("job-1");
  EXPECT_EQ(client->CancelJob(cancel)->job().state(), agt::v1::JOB_STATE_CANCELLED);
  agt::v1::ExportModelRequest export_request;
  export_request.set_model_id("m-1");
  EXPECT_EQ(client->ExportModel(export_request)->boxes_size(), 3);
  agt::v1::CertifyDatasetRequest certify_dataset;
  certify_dataset.set_model_id("m-1");
  certify_dataset.set_dataset_id("ds-1");
  EXPECT_EQ(client->CertifyDataset(certify_dataset)->num_rows(), 100);
  agt::v1::CertifyPredictionsRequest certify;
  certify.set_model_id("m-1");
  certify.mutable_inputs()->set_rows(2);
  certify.mutable_inputs()->set_cols(2);
  for (double v : {0.35, 0.0, -0.05, 0.0}) certify.mutable_inputs()->add_values(v);
  auto points = client->CertifyPredictions(certify);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->points_size(), 2);
  EXPECT_EQ(points->points(0).largest_stable_budget(), 1);  // 0.35 > 0.2, not > 0.5
  EXPECT_EQ(points->points(1).largest_stable_budget(), -1);
}

TEST(ClientLibrary, OneClientServesManyThreadsAtOnce) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  auto client = Connect(server);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        agt::v1::CertifyPredictionsRequest request;
        request.set_model_id("m-1");
        request.mutable_inputs()->set_rows(1);
        request.mutable_inputs()->set_cols(2);
        request.mutable_inputs()->add_values(0.01 * (t + i));
        request.mutable_inputs()->add_values(0);
        auto response = client->CertifyPredictions(request);
        if (!response.ok() || response->points_size() != 1) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  std::lock_guard<std::mutex> lock(server.state.mu);
  EXPECT_EQ(server.state.certify_calls, 200);
}

}  // namespace
}  // namespace agt::client
