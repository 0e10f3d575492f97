// End-to-end tests of agt-server: the real binary on 127.0.0.1 port 0 with a
// SQLite file in a temp dir, driven through the generated stubs. The main
// path (upload -> submit -> watch -> certify), uploads in both formats,
// health checking and reflection, startup errors and hash-token.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

class ServerE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(ServerArgs(dir_.File("agt.db")), dir_.File("server.log")))
        << server_.Stderr();
    client_ = std::make_unique<Client>(server_.address());
  }

  TempDir dir_;
  ServerProcess server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ServerE2eTest, ListeningLineNamesTheRealPort) {
  EXPECT_EQ(server_.address().rfind("127.0.0.1:", 0), 0u) << server_.address();
  EXPECT_NE(server_.address(), "127.0.0.1:0");
  EXPECT_TRUE(HealthServing(client_->channel.get()));
  for (const char* service :
       {"agt.v1.DatasetService", "agt.v1.TrainingService", "agt.v1.ModelService"}) {
    EXPECT_TRUE(HealthServing(client_->channel.get(), service)) << service;
  }
  EXPECT_FALSE(HealthServing(client_->channel.get(), "agt.v1.NoSuchService"));
}

TEST_F(ServerE2eTest, UploadTrainWatchCertify) {
  const agt::v1::Dataset dataset = UploadMoons(*client_, 200, 1);
  EXPECT_EQ(dataset.num_rows(), 200);
  EXPECT_EQ(dataset.num_features(), 2);
  EXPECT_EQ(dataset.num_classes(), 2);
  EXPECT_EQ(dataset.checksum().size(), 64u);
  EXPECT_EQ(dataset.id().rfind("ds-", 0), 0u) << dataset.id();

  agt::v1::Job job;
  ASSERT_TRUE(Submit(*client_, MoonsSpec(dataset.id(), 3), &job).ok());
  EXPECT_EQ(job.spec().dataset_id(), dataset.id());
  EXPECT_TRUE(job.state() == agt::v1::JOB_STATE_QUEUED ||
              job.state() == agt::v1::JOB_STATE_RUNNING);

  std::vector<agt::v1::JobEvent> events;
  const grpc::Status watched = WatchAll(*client_, job.id(), &events);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  const agt::v1::JobEvent& last = events.back();
  ASSERT_EQ(last.state(), agt::v1::JOB_STATE_SUCCEEDED) << last.error();
  EXPECT_FALSE(last.model_id().empty());
  // 200 rows / batch 20 = 10 steps per epoch, 3 epochs.
  EXPECT_EQ(last.progress().iteration(), 30);
  EXPECT_EQ(last.progress().total_iterations(), 30);
  ASSERT_EQ(last.progress().total_width_size(), 3);
  // Progress never goes backwards; widths grow with the budget.
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].progress().iteration(), events[i - 1].progress().iteration());
    EXPECT_GE(static_cast<int>(events[i].state()), static_cast<int>(events[i - 1].state()));
  }
  EXPECT_LE(last.progress().total_width(0), last.progress().total_width(1));
  EXPECT_LE(last.progress().total_width(1), last.progress().total_width(2));

  // The model: architecture 2-8-1, three budget summaries.
  agt::v1::GetModelRequest get;
  get.set_model_id(last.model_id());
  agt::v1::GetModelResponse model;
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get, &model).ok());
  EXPECT_EQ(model.model().job_id(), job.id());
  EXPECT_EQ(model.model().input_features(), 2);
  EXPECT_EQ(model.model().budgets_size(), 3);
  EXPECT_EQ(model.model().budgets(2).budget().n(), 5);
  EXPECT_EQ(model.model().loss(), agt::v1::LOSS_BINARY_CROSS_ENTROPY);

  // Certify 20 points with labels.
  const agt::Dataset test = agt::MakeMoons(20, 0.1, 99);
  agt::v1::CertifyPredictionsRequest certify;
  certify.set_model_id(last.model_id());
  certify.mutable_inputs()->set_rows(20);
  certify.mutable_inputs()->set_cols(2);
  for (agt::Index i = 0; i < test.size(); ++i) {
    certify.mutable_inputs()->add_values(test.x(i, 0));
    certify.mutable_inputs()->add_values(test.x(i, 1));
    certify.add_labels(test.y[i]);
  }
  agt::v1::CertifyPredictionsResponse certs;
  const grpc::Status certified = client_->models->CertifyPredictions(Ctx().get(), certify, &certs);
  ASSERT_TRUE(certified.ok()) << certified.error_message();
  ASSERT_EQ(certs.points_size(), 20);
  EXPECT_FALSE(certs.guarantee().empty());
  for (const agt::v1::PointCertificate& point : certs.points()) {
    ASSERT_EQ(point.bounds_size(), 3);
    ASSERT_EQ(point.stable_size(), 3);
    ASSERT_EQ(point.correct_size(), 3);
    ASSERT_EQ(point.nominal_logits_size(), 1);
    EXPECT_EQ(point.predicted_class(), point.nominal_logits(0) > 0 ? 1 : 0);
    int largest = -1;
    for (int j = 0; j < 3; ++j) {
      EXPECT_LE(point.bounds(j).lower(0), point.nominal_logits(0));
      EXPECT_GE(point.bounds(j).upper(0), point.nominal_logits(0));
      if (point.stable(j)) largest = j;
      // Larger budgets have wider boxes: stable at j implies stable below j.
      if (j > 0 && point.stable(j)) {
        EXPECT_TRUE(point.stable(j - 1));
      }
      if (point.correct(j)) {
        EXPECT_TRUE(point.stable(j));
      }
    }
    EXPECT_EQ(point.largest_stable_budget(), largest);
  }

  // Certify the training set itself: accuracy bounds are ordered.
  agt::v1::CertifyDatasetRequest on_set;
  on_set.set_model_id(last.model_id());
  on_set.set_dataset_id(dataset.id());
  agt::v1::CertifyDatasetResponse set_certs;
  const grpc::Status set_status = client_->models->CertifyDataset(Ctx().get(), on_set, &set_certs);
  ASSERT_TRUE(set_status.ok()) << set_status.error_message();
  EXPECT_EQ(set_certs.num_rows(), 200);
  ASSERT_EQ(set_certs.budgets_size(), 3);
  for (const agt::v1::DatasetCertificate& c : set_certs.budgets()) {
    EXPECT_LE(c.accuracy_worst(), c.accuracy_nominal());
    EXPECT_LE(c.accuracy_nominal(), c.accuracy_best());
    EXPECT_GE(c.stable_fraction(), 0.0);
    EXPECT_LE(c.stable_fraction(), 1.0);
  }
  EXPECT_GE(set_certs.budgets(0).accuracy_worst(), set_certs.budgets(2).accuracy_worst());

  // Export: nominal inside every box, boxes nested by budget.
  agt::v1::ExportModelRequest export_request;
  export_request.set_model_id(last.model_id());
  agt::v1::ExportModelResponse exported;
  ASSERT_TRUE(client_->models->ExportModel(Ctx().get(), export_request, &exported).ok());
  ASSERT_EQ(exported.boxes_size(), 3);
  const std::vector<double> nominal = Flatten(exported.model().nominal());
  EXPECT_EQ(nominal.size(), 2u * 8 + 8 + 8 + 1);
  for (int j = 0; j < 3; ++j) {
    const std::vector<double> lower = Flatten(exported.boxes(j).lower());
    const std::vector<double> upper = Flatten(exported.boxes(j).upper());
    ASSERT_EQ(lower.size(), nominal.size());
    for (size_t p = 0; p < nominal.size(); ++p) {
      EXPECT_LE(lower[p], nominal[p]);
      EXPECT_GE(upper[p], nominal[p]);
    }
  }

  // Listings see everything; the job is SUCCEEDED with the model.
  agt::v1::ListJobsRequest list_jobs;
  list_jobs.set_state(agt::v1::JOB_STATE_SUCCEEDED);
  agt::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->training->ListJobs(Ctx().get(), list_jobs, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).model_id(), last.model_id());
  agt::v1::ListModelsResponse models;
  ASSERT_TRUE(client_->models->ListModels(Ctx().get(), {}, &models).ok());
  EXPECT_EQ(models.models_size(), 1);

  // A dataset used by a finished job can be deleted; the model stays.
  agt::v1::DeleteDatasetRequest del;
  del.set_dataset_id(dataset.id());
  agt::v1::DeleteDatasetResponse deleted;
  ASSERT_TRUE(client_->datasets->DeleteDataset(Ctx().get(), del, &deleted).ok());
  agt::v1::GetDatasetRequest get_ds;
  get_ds.set_dataset_id(dataset.id());
  agt::v1::GetDatasetResponse gone;
  EXPECT_EQ(client_->datasets->GetDataset(Ctx().get(), get_ds, &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(client_->models->GetModel(Ctx().get(), get, &model).ok());
}

TEST_F(ServerE2eTest, Float64UploadMatchesTheCsvUploadOfTheSameRows) {
  const agt::Dataset data = agt::MakeMoons(50, 0.1, 3);
  std::string raw;
  for (agt::Index i = 0; i < data.size(); ++i) {
    for (double v : {data.x(i, 0), data.x(i, 1), data.y[i]}) {
      unsigned char bytes[8];
      uint64_t bits;
      std::memcpy(&bits, &v, 8);
      for (int b = 0; b < 8; ++b) bytes[b] = static_cast<unsigned char>(bits >> (8 * b));
      raw.append(reinterpret_cast<const char*>(bytes), 8);
    }
  }
  agt::v1::DatasetMetadata metadata;
  metadata.set_name("moons raw");
  metadata.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  metadata.set_num_features(2);
  metadata.set_num_classes(-1);
  agt::v1::Dataset from_raw;
  // Small chunks: rows straddle chunk boundaries.
  const grpc::Status status = Upload(*client_, metadata, raw, &from_raw, "", 100);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(from_raw.num_rows(), 50);
  EXPECT_EQ(from_raw.num_features(), 2);
  EXPECT_EQ(from_raw.num_classes(), 2);  // inferred

  std::string csv = "a,b,label\n";
  for (agt::Index i = 0; i < data.size(); ++i) {
    absl::StrAppendFormat(&csv, "%.17g,%.17g,%d\n", data.x(i, 0), data.x(i, 1),
                          static_cast<int>(data.y[i]));
  }
  agt::v1::Dataset from_csv;
  ASSERT_TRUE(Upload(*client_, CsvMetadata("moons csv", 2), csv, &from_csv).ok());
  EXPECT_EQ(from_csv.checksum(), from_raw.checksum());
  EXPECT_NE(from_csv.id(), from_raw.id());

  agt::v1::ListDatasetsRequest list;
  list.set_page_size(1);
  agt::v1::ListDatasetsResponse page1, page2;
  ASSERT_TRUE(client_->datasets->ListDatasets(Ctx().get(), list, &page1).ok());
  ASSERT_EQ(page1.datasets_size(), 1);
  ASSERT_FALSE(page1.next_page_token().empty());
  list.set_page_token(page1.next_page_token());
  ASSERT_TRUE(client_->datasets->ListDatasets(Ctx().get(), list, &page2).ok());
  ASSERT_EQ(page2.datasets_size(), 1);
  EXPECT_NE(page1.datasets(0).id(), page2.datasets(0).id());
}

TEST_F(ServerE2eTest, ALegacyBoundMethodIsStoredAndServedInTheCurrentForm) {
  const agt::v1::Dataset dataset = UploadMoons(*client_, 100, 5);
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset.id(), 1);
  // An old client's spec: the product in bound_method (3 = INTERVAL_NGUYEN).
  spec.set_bound_method(agt::v1::BOUND_METHOD_INTERVAL_NGUYEN);
  spec.set_interval_product(agt::v1::INTERVAL_PRODUCT_EXACT);
  agt::v1::Job job;
  grpc::Status status = Submit(*client_, spec, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec.bound_method"), std::string::npos);
  EXPECT_NE(status.error_message().find("spec.interval_product"), std::string::npos)
      << status.error_message();

  spec.clear_interval_product();
  status = Submit(*client_, spec, &job);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.spec().bound_method(), agt::v1::BOUND_METHOD_IBP);
  EXPECT_EQ(job.spec().interval_product(), agt::v1::INTERVAL_PRODUCT_NGUYEN);
  const agt::v1::Job done = WaitForFinal(*client_, job.id());
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  agt::v1::GetModelRequest get;
  get.set_model_id(done.model_id());
  agt::v1::GetModelResponse model;
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get, &model).ok());
  EXPECT_EQ(model.model().bound_method(), agt::v1::BOUND_METHOD_IBP);
  EXPECT_EQ(model.model().interval_product(), agt::v1::INTERVAL_PRODUCT_NGUYEN);
  EXPECT_EQ(model.model().rounding(), agt::v1::ROUNDING_MODE_NEAREST);
}

TEST_F(ServerE2eTest, CancelStopsAQueuedJobAtOnce) {
  const agt::v1::Dataset dataset = UploadMoons(*client_, 400, 2);
  // One worker: the second job waits behind the first (a long one).
  agt::v1::Job first, second;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(dataset.id()), &first).ok());
  ASSERT_TRUE(Submit(*client_, MoonsSpec(dataset.id(), 2), &second).ok());
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(second.id());
  agt::v1::CancelJobResponse cancelled;
  ASSERT_TRUE(client_->training->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.job().state(), agt::v1::JOB_STATE_CANCELLED);
  // Cancelling again is a precondition failure: the job is final.
  EXPECT_EQ(client_->training->CancelJob(Ctx().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // The running one stops before its next step.
  cancel.set_job_id(first.id());
  ASSERT_TRUE(client_->training->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  if (cancelled.job().state() == agt::v1::JOB_STATE_RUNNING) {
    // Still running until its next step: the response says a cancel is pending.
    EXPECT_TRUE(cancelled.job().cancel_requested());
  } else {
    EXPECT_EQ(cancelled.job().state(), agt::v1::JOB_STATE_CANCELLED);
  }
  std::vector<agt::v1::JobEvent> events;
  ASSERT_TRUE(WatchAll(*client_, first.id(), &events).ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), agt::v1::JOB_STATE_CANCELLED);
  agt::v1::GetJobRequest get;
  get.set_job_id(first.id());
  agt::v1::GetJobResponse got;
  ASSERT_TRUE(client_->training->GetJob(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.job().state(), agt::v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(got.job().cancel_requested());
  // A dataset whose jobs are all final can be deleted.
  agt::v1::DeleteDatasetRequest del;
  del.set_dataset_id(dataset.id());
  agt::v1::DeleteDatasetResponse deleted;
  EXPECT_TRUE(client_->datasets->DeleteDataset(Ctx().get(), del, &deleted).ok());
}

TEST_F(ServerE2eTest, ReflectionListsTheAgtServices) {
  grpc::GenericStub stub(client_->channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  const auto step = [&](intptr_t expected) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), expected);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  // ServerReflectionRequest{list_services: "*"}: field 7, length 1.
  grpc::Slice request_slice(std::string("\x3a\x01*", 3));
  grpc::ByteBuffer request(&request_slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  for (const char* service : {"agt.v1.DatasetService", "agt.v1.TrainingService",
                              "agt.v1.ModelService", "grpc.health.v1.Health"}) {
    EXPECT_NE(bytes.find(service), std::string::npos) << service;
  }
}

class ServerCommandTest : public ::testing::Test {
 protected:
  int Run(const std::vector<std::string>& args, const std::string& in = "") {
    return RunServerCommand(args, in, &out_, &err_, dir_);
  }
  TempDir dir_;
  std::string out_, err_;
};

TEST_F(ServerCommandTest, HelpExplainsFlagsAndTheTokensFormat) {
  EXPECT_EQ(Run({"--help"}), 0);
  for (const char* text : {"--listen", "--db", "--workers", "--tokens", "--tls-cert",
                           "--max-dataset-mib", "hash-token", "sha256", "querier"}) {
    EXPECT_NE(out_.find(text), std::string::npos) << text;
  }
}

TEST_F(ServerCommandTest, HashTokenPrintsALineTheServerAccepts) {
  ASSERT_EQ(Run({"hash-token", "--role", "querier", "--tenant", "acme"}, "s3cret\n"), 0) << err_;
  EXPECT_EQ(out_, agt::server::HashToHex(agt::server::HashToken("s3cret")) + " querier acme\n");
  // The printed line is a tokens file the server starts with and accepts.
  WriteFile(dir_.File("tokens"), out_);
  {
    ServerProcess server;
    ASSERT_TRUE(server.Start(ServerArgs(dir_.File("h.db"), {"--tokens", dir_.File("tokens")}),
                             dir_.File("h.log")))
        << server.Stderr();
    Client client(server.address());
    agt::v1::ListDatasetsResponse list;
    EXPECT_TRUE(client.datasets->ListDatasets(Ctx("s3cret").get(), {}, &list).ok());
    EXPECT_EQ(client.datasets->ListDatasets(Ctx("s3cret2").get(), {}, &list).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(server.Signal(SIGTERM), 0);
  }
  ASSERT_EQ(Run({"hash-token"}, "  other  "), 0);
  EXPECT_EQ(out_, agt::server::HashToHex(agt::server::HashToken("other")) + " trainer default\n");
  EXPECT_EQ(Run({"hash-token", "--role", "root"}, "x"), 2);
  EXPECT_NE(err_.find("root"), std::string::npos);
  EXPECT_EQ(Run({"hash-token"}, "\n"), 2);
  EXPECT_EQ(Run({"hash-token"}, "two words"), 2);
}

TEST_F(ServerCommandTest, StartupErrorsExitWithStatusTwoAndSayWhy) {
  const std::string db = dir_.File("x.db");
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  WriteFile(dir_.File("bad_tokens"), "# ok\nnot-a-hash admin acme\n");
  const std::vector<Case> cases = {
      {{"--db", db}, "--listen"},
      {{"--listen", "127.0.0.1:0"}, "--db"},
      {{"--listen", "0.0.0.0:0", "--db", db}, "without --tokens"},
      {{"--listen", "127.0.0.1", "--db", db}, "127.0.0.1"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--workers", "0"}, "--workers"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--workers", "many"}, "--workers"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--bogus", "1"}, "--bogus"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--tokens", dir_.File("missing")}, "missing"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--tokens", dir_.File("bad_tokens")},
       "bad_tokens:2"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--tls-cert", dir_.File("c.pem")}, "--tls-key"},
      {{"--listen", "127.0.0.1:0", "--db", dir_.File("no/such/dir/x.db")}, "--db"},
      {{"--listen", "127.0.0.1:0", "--db", db, "--max-dataset-mib", "0"}, "--max-dataset-mib"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Run(c.args), 2) << c.args.back() << "\n" << err_;
    EXPECT_NE(err_.find(c.expected), std::string::npos) << err_;
    EXPECT_EQ(out_.find("listening on"), std::string::npos);
  }
}

TEST_F(ServerCommandTest, APortInUseIsAStartupError) {
  ServerProcess first;
  ASSERT_TRUE(first.Start(ServerArgs(dir_.File("a.db")), dir_.File("a.log"))) << first.Stderr();
  EXPECT_EQ(Run({"--listen", first.address(), "--db", dir_.File("b.db")}), 2);
  EXPECT_NE(err_.find("cannot bind " + first.address()), std::string::npos) << err_;
  EXPECT_EQ(first.Signal(SIGTERM), 0);
}

TEST_F(ServerCommandTest, ASecondServerOnTheSameDatabaseIsRefused) {
  ServerProcess first;
  ASSERT_TRUE(first.Start(ServerArgs(dir_.File("a.db")), dir_.File("a.log"))) << first.Stderr();
  EXPECT_EQ(Run(ServerArgs(dir_.File("a.db"))), 2);
  EXPECT_NE(err_.find("another agt-server is using this database"), std::string::npos) << err_;
  // The first one is unaffected.
  Client client(first.address());
  EXPECT_TRUE(HealthServing(client.channel.get()));
  EXPECT_EQ(first.Signal(SIGTERM), 0);
  // Once it is gone the database can be opened again.
  ServerProcess second;
  EXPECT_TRUE(second.Start(ServerArgs(dir_.File("a.db")), dir_.File("b.log"))) << second.Stderr();
}

TEST_F(ServerCommandTest, NonLoopbackAddressIsAllowedWithTokens) {
  WriteFile(dir_.File("tokens"), TokenLine("t", "admin", "acme"));
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      {"--listen", "0.0.0.0:0", "--db", dir_.File("a.db"), "--tokens", dir_.File("tokens")},
      dir_.File("log")))
      << server.Stderr();
  EXPECT_EQ(server.address().rfind("0.0.0.0:", 0), 0u);
  EXPECT_EQ(server.Signal(SIGTERM), 0);
}

}  // namespace
}  // namespace agt::e2e
