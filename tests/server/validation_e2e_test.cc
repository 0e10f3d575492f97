// Malformed and oversized requests for every RPC of agt.v1 against the real
// server: each gets the right status code and a message naming the problem,
// and the server keeps serving (health checks and a good call afterwards).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/cuda/backends.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

// Expects `code` and a message containing `fragment`.
#define EXPECT_STATUS(status_expr, code, fragment)                                \
  do {                                                                            \
    const grpc::Status s_ = (status_expr);                                        \
    EXPECT_EQ(s_.error_code(), (code)) << "message: " << s_.error_message();      \
    EXPECT_NE(s_.error_message().find(fragment), std::string::npos)               \
        << "message '" << s_.error_message() << "' lacks '" << (fragment) << "'"; \
  } while (0)

// One server for the suite, with a 1 MiB dataset limit, a trained model and
// a long job that keeps its dataset busy.
class ValidationE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("v.db"), {"--max-dataset-mib", "1"}),
                               dir_->File("server.log")))
        << server_->Stderr();
    client_ = new Client(server_->address());
    const agt::v1::Dataset dataset = UploadMoons(*client_, 100, 5);
    dataset_id_ = new std::string(dataset.id());
    agt::v1::Job job;
    ASSERT_TRUE(Submit(*client_, MoonsSpec(dataset.id(), 2), &job).ok());
    const agt::v1::Job done = WaitForFinal(*client_, job.id());
    ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
    model_id_ = new std::string(done.model_id());
    job_id_ = new std::string(job.id());
    // A second dataset with three features (wrong for the model).
    std::string csv = "a,b,c,y\n";
    for (int i = 0; i < 30; ++i) absl::StrAppend(&csv, i, ",", i % 3, ",1.5,", i % 2, "\n");
    agt::v1::Dataset wide;
    ASSERT_TRUE(Upload(*client_, CsvMetadata("wide", 2), csv, &wide).ok());
    wide_id_ = new std::string(wide.id());
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
    delete dir_;
  }
  void TearDown() override {
    // After every test: still alive and answering.
    EXPECT_TRUE(HealthServing(client_->channel.get()));
    agt::v1::ListDatasetsResponse list;
    EXPECT_TRUE(client_->datasets->ListDatasets(Ctx().get(), {}, &list).ok());
  }

  static grpc::Status UploadWith(const agt::v1::DatasetMetadata& metadata, const std::string& bytes,
                                 size_t chunk = 64 << 10) {
    return Upload(*client_, metadata, bytes, nullptr, "", chunk);
  }

  static agt::v1::CertifyPredictionsRequest GoodCertify() {
    agt::v1::CertifyPredictionsRequest request;
    request.set_model_id(*model_id_);
    request.mutable_inputs()->set_rows(2);
    request.mutable_inputs()->set_cols(2);
    for (double v : {0.1, 0.2, 1.0, -0.5}) request.mutable_inputs()->add_values(v);
    return request;
  }

  static grpc::Status Certify(const agt::v1::CertifyPredictionsRequest& request) {
    agt::v1::CertifyPredictionsResponse response;
    return client_->models->CertifyPredictions(Ctx().get(), request, &response);
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static Client* client_;
  static std::string* dataset_id_;
  static std::string* wide_id_;
  static std::string* model_id_;
  static std::string* job_id_;
};

TempDir* ValidationE2eTest::dir_ = nullptr;
ServerProcess* ValidationE2eTest::server_ = nullptr;
Client* ValidationE2eTest::client_ = nullptr;
std::string* ValidationE2eTest::dataset_id_ = nullptr;
std::string* ValidationE2eTest::wide_id_ = nullptr;
std::string* ValidationE2eTest::model_id_ = nullptr;
std::string* ValidationE2eTest::job_id_ = nullptr;

constexpr auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
constexpr auto kNotFound = grpc::StatusCode::NOT_FOUND;

// ---------------------------------------------------------------- datasets

TEST_F(ValidationE2eTest, UploadStreamProtocolErrors) {
  {
    // No message at all.
    std::unique_ptr<grpc::ClientContext> context = Ctx();
    agt::v1::UploadDatasetResponse response;
    auto writer = client_->datasets->UploadDataset(context.get(), &response);
    writer->WritesDone();
    EXPECT_STATUS(writer->Finish(), kInvalid, "first message must carry metadata");
  }
  {
    // A chunk first.
    std::unique_ptr<grpc::ClientContext> context = Ctx();
    agt::v1::UploadDatasetResponse response;
    auto writer = client_->datasets->UploadDataset(context.get(), &response);
    agt::v1::UploadDatasetRequest chunk;
    chunk.set_chunk("1,2,0\n");
    writer->Write(chunk);
    writer->WritesDone();
    EXPECT_STATUS(writer->Finish(), kInvalid, "message 1");
  }
  {
    // Metadata twice, and an empty message.
    for (bool second_metadata : {true, false}) {
      std::unique_ptr<grpc::ClientContext> context = Ctx();
      agt::v1::UploadDatasetResponse response;
      auto writer = client_->datasets->UploadDataset(context.get(), &response);
      agt::v1::UploadDatasetRequest message;
      *message.mutable_metadata() = CsvMetadata("x");
      writer->Write(message);
      agt::v1::UploadDatasetRequest chunk;
      chunk.set_chunk("1,2,0\n");
      writer->Write(chunk);
      agt::v1::UploadDatasetRequest third;
      if (second_metadata) *third.mutable_metadata() = CsvMetadata("y");
      writer->Write(third);
      writer->WritesDone();
      EXPECT_STATUS(writer->Finish(), kInvalid,
                    second_metadata ? "message 3: expected a chunk, got a second metadata"
                                    : "message 3: expected a chunk, got an empty message");
    }
  }
  // Metadata but no data.
  EXPECT_STATUS(UploadWith(CsvMetadata("x"), ""), kInvalid, "no data");
}

TEST_F(ValidationE2eTest, UploadMetadataErrorsNameTheField) {
  EXPECT_STATUS(UploadWith(CsvMetadata(""), "1,0\n"), kInvalid, "metadata.name");
  EXPECT_STATUS(UploadWith(CsvMetadata(std::string(129, 'n')), "1,0\n"), kInvalid,
                "metadata.name: 129 characters, must be 1..128");
  // 128 characters of two bytes each are fine: the limit counts characters.
  std::string wide_name;
  for (int i = 0; i < 128; ++i) wide_name += "\xc3\xa9";
  EXPECT_TRUE(UploadWith(CsvMetadata(wide_name), "1,0\n2,1\n").ok());
  EXPECT_STATUS(UploadWith(CsvMetadata("tab\tname"), "1,0\n"), kInvalid, "control");
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 1), "1,0\n"), kInvalid, "metadata.num_classes: 1");
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 5000), "1,0\n"), kInvalid, "metadata.num_classes");
  agt::v1::DatasetMetadata no_format = CsvMetadata("x");
  no_format.set_format(agt::v1::DATASET_FORMAT_UNSPECIFIED);
  EXPECT_STATUS(UploadWith(no_format, "1,0\n"), kInvalid, "metadata.format");
  agt::v1::DatasetMetadata raw = CsvMetadata("x");
  raw.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  EXPECT_STATUS(UploadWith(raw, std::string(16, '\0')), kInvalid, "metadata.num_features");
  agt::v1::DatasetMetadata csv_features = CsvMetadata("x");
  csv_features.set_num_features(3);
  EXPECT_STATUS(UploadWith(csv_features, "1,2,0\n"), kInvalid,
                "metadata.num_features: 3 but the CSV has 2");
}

TEST_F(ValidationE2eTest, UploadContentErrorsNameLineAndColumn) {
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 2), "a,b,y\n1,2,0\n3,nan,1\n"), kInvalid, "line 3");
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 2), "1,2,0\n3,4\n"), kInvalid, "line 2");
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 2), "1,2,0\n3,4,7\n"), kInvalid, "line 2");
  EXPECT_STATUS(UploadWith(CsvMetadata("x", 2), "1,2,0\n3,x4,1\n"), kInvalid, "column 2");

  agt::v1::DatasetMetadata raw = CsvMetadata("raw", -1);
  raw.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  raw.set_num_features(1);
  std::string bytes(8 * 5, '\0');  // 2.5 rows of (feature, label)
  EXPECT_STATUS(UploadWith(raw, bytes), kInvalid, "not a multiple of the row size 16");
  std::string with_inf(8 * 4, '\0');
  const double inf = std::numeric_limits<double>::infinity();
  std::memcpy(&with_inf[16], &inf, 8);  // row 2, column 1 (little-endian host)
  EXPECT_STATUS(UploadWith(raw, with_inf), kInvalid, "row 2, column 1 at byte offset 16");
  raw.set_num_classes(2);
  std::string bad_label(8 * 2, '\0');
  const double three = 3.0;
  std::memcpy(&bad_label[8], &three, 8);
  EXPECT_STATUS(UploadWith(raw, bad_label), kInvalid, "label 3");
}

TEST_F(ValidationE2eTest, UploadSizeLimits) {
  // One chunk over 1 MiB: refused as a protocol error.
  std::string big(size_t{1} << 20 | 1, '1');
  EXPECT_STATUS(UploadWith(CsvMetadata("x"), big, big.size()), kInvalid,
                "exceeds the chunk limit of 1048576 bytes");
  // The total over --max-dataset-mib 1 in legal chunks.
  std::string csv;
  while (csv.size() <= (size_t{1} << 20)) csv += "0.5,0.25,1\n";
  EXPECT_STATUS(UploadWith(CsvMetadata("x"), csv, 256 << 10), grpc::StatusCode::RESOURCE_EXHAUSTED,
                "dataset size limit of 1048576 bytes");
}

TEST_F(ValidationE2eTest, DatasetIdsAndPages) {
  agt::v1::GetDatasetResponse got;
  agt::v1::GetDatasetRequest get;
  EXPECT_STATUS(client_->datasets->GetDataset(Ctx().get(), get, &got), kInvalid,
                "dataset_id: required");
  get.set_dataset_id("ds nope");
  EXPECT_STATUS(client_->datasets->GetDataset(Ctx().get(), get, &got), kInvalid, "dataset_id");
  get.set_dataset_id(std::string(129, 'd'));
  EXPECT_STATUS(client_->datasets->GetDataset(Ctx().get(), get, &got), kInvalid,
                "129 characters exceed the limit of 128");
  get.set_dataset_id("ds-doesnotexist");
  EXPECT_STATUS(client_->datasets->GetDataset(Ctx().get(), get, &got), kNotFound,
                "ds-doesnotexist");

  agt::v1::DeleteDatasetRequest del;
  agt::v1::DeleteDatasetResponse deleted;
  EXPECT_STATUS(client_->datasets->DeleteDataset(Ctx().get(), del, &deleted), kInvalid,
                "dataset_id");
  del.set_dataset_id("ds-doesnotexist");
  EXPECT_STATUS(client_->datasets->DeleteDataset(Ctx().get(), del, &deleted), kNotFound,
                "ds-doesnotexist");

  agt::v1::ListDatasetsRequest list;
  agt::v1::ListDatasetsResponse page;
  list.set_page_size(-1);
  EXPECT_STATUS(client_->datasets->ListDatasets(Ctx().get(), list, &page), kInvalid,
                "page_size: -1");
  list.set_page_size(0);
  list.set_page_token("not-a-token");
  EXPECT_EQ(client_->datasets->ListDatasets(Ctx().get(), list, &page).error_code(), kInvalid);
  list.set_page_token(std::string(2000, 'x'));
  EXPECT_STATUS(client_->datasets->ListDatasets(Ctx().get(), list, &page), kInvalid,
                "page_token: 2000 bytes");
  // Above the maximum is capped, not refused.
  list.set_page_token("");
  list.set_page_size(5000);
  EXPECT_TRUE(client_->datasets->ListDatasets(Ctx().get(), list, &page).ok());
}

TEST_F(ValidationE2eTest, DeletingADatasetInUseIsAPreconditionFailure) {
  agt::v1::Job busy;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(*dataset_id_), &busy).ok());
  agt::v1::DeleteDatasetRequest del;
  del.set_dataset_id(*dataset_id_);
  agt::v1::DeleteDatasetResponse deleted;
  EXPECT_EQ(client_->datasets->DeleteDataset(Ctx().get(), del, &deleted).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(busy.id());
  agt::v1::CancelJobResponse cancelled;
  EXPECT_TRUE(client_->training->CancelJob(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(WaitForFinal(*client_, busy.id()).state(), agt::v1::JOB_STATE_CANCELLED);
  // Still there.
  agt::v1::GetDatasetRequest get;
  get.set_dataset_id(*dataset_id_);
  agt::v1::GetDatasetResponse got;
  EXPECT_TRUE(client_->datasets->GetDataset(Ctx().get(), get, &got).ok());
}

// ---------------------------------------------------------------- training

TEST_F(ValidationE2eTest, SubmitErrorsNameTheSpecField) {
  agt::v1::SubmitTrainingJobRequest empty;
  agt::v1::SubmitTrainingJobResponse response;
  EXPECT_STATUS(client_->training->SubmitTrainingJob(Ctx().get(), empty, &response), kInvalid,
                "spec: required");

  agt::v1::TrainingJobSpec spec = MoonsSpec(*dataset_id_, 1);
  spec.clear_dataset_id();
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.dataset_id");
  spec = MoonsSpec("ds-unknown", 1);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kNotFound, "ds-unknown");
  spec = MoonsSpec(*dataset_id_, 1, 20, {1, 20});
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.budgets[1].n");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.mutable_optimizer()->set_learning_rate(-1);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.optimizer.learning_rate");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.set_loss(agt::v1::LOSS_UNSPECIFIED);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.loss");
  spec = MoonsSpec(*dataset_id_, 1, 500);  // the dataset has 100 rows
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.batch_size");
  spec = MoonsSpec(*dataset_id_, 0);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.epochs");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.mutable_perturbation()->set_kind(static_cast<agt::v1::PerturbationKind>(42));
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.perturbation");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.clear_budgets();
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.budgets");
  // Oversized: too many budgets, too wide a layer, too long a name.
  spec = MoonsSpec(*dataset_id_, 1);
  for (int i = 0; i < 70; ++i) spec.add_budgets()->set_n(1);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "73 budgets exceed the limit 64");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.set_hidden_widths(0, 100000);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.hidden_widths[0]");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.set_name(std::string(300, 'j'));
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.name");
  spec = MoonsSpec(*dataset_id_, 1);
  spec.set_bound_method(agt::v1::BOUND_METHOD_INTERVAL_EXACT);
  spec.set_interval_product(agt::v1::INTERVAL_PRODUCT_NGUYEN);
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid,
                "conflicts with spec.interval_product INTERVAL_PRODUCT_NGUYEN");
  // None of them was queued.
  agt::v1::ListJobsRequest list;
  list.set_state(agt::v1::JOB_STATE_QUEUED);
  agt::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->training->ListJobs(Ctx().get(), list, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
}

// The compute backend: an unknown value is INVALID_ARGUMENT, CUDA on this
// server without a GPU is FAILED_PRECONDITION (and queues nothing), and the
// backend that ran is on the job and on its model.
TEST_F(ValidationE2eTest, ComputeBackendIsCheckedAtSubmitAndRecorded) {
  const bool gpu = agt::ProbeCuda().devices > 0;
  agt::v1::GetJobRequest get_job;
  agt::v1::GetJobResponse job;
  get_job.set_job_id(*job_id_);
  ASSERT_TRUE(client_->training->GetJob(Ctx().get(), get_job, &job).ok());
  EXPECT_EQ(job.job().backend(), gpu ? "cuda" : "cpu");  // the default, auto
  agt::v1::GetModelRequest get_model;
  agt::v1::GetModelResponse model;
  get_model.set_model_id(*model_id_);
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get_model, &model).ok());
  EXPECT_EQ(model.model().backend(), job.job().backend());

  agt::v1::TrainingJobSpec spec = MoonsSpec(*dataset_id_, 1);
  spec.set_backend(static_cast<agt::v1::ComputeBackend>(42));
  EXPECT_STATUS(Submit(*client_, spec, nullptr), kInvalid, "spec.backend");
  if (!gpu) {
    spec.set_backend(agt::v1::COMPUTE_BACKEND_CUDA);
    EXPECT_STATUS(Submit(*client_, spec, nullptr), grpc::StatusCode::FAILED_PRECONDITION,
                  "CUDA backend was asked for");
  }
  spec.set_backend(agt::v1::COMPUTE_BACKEND_CPU);
  agt::v1::Job submitted;
  ASSERT_TRUE(Submit(*client_, spec, &submitted).ok());
  const agt::v1::Job done = WaitForFinal(*client_, submitted.id());
  ASSERT_EQ(done.state(), agt::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.backend(), "cpu");
  get_model.set_model_id(done.model_id());
  ASSERT_TRUE(client_->models->GetModel(Ctx().get(), get_model, &model).ok());
  EXPECT_EQ(model.model().backend(), "cpu");
}

// A server asked to train on CUDA without a GPU does not start, and says why.
TEST(ComputeBackendFlag, CudaWithoutAGpuRefusesToStart) {
  if (agt::ProbeCuda().devices > 0) GTEST_SKIP() << "a GPU is visible";
  TempDir dir;
  ServerProcess server;
  EXPECT_FALSE(server.Start(ServerArgs(dir.File("b.db"), {"--backend", "cuda"}),
                            dir.File("server.log")));
  EXPECT_NE(server.Stderr().find("--backend: the CUDA backend was asked for"), std::string::npos)
      << server.Stderr();
}

TEST_F(ValidationE2eTest, JobIdsStatesAndPages) {
  agt::v1::GetJobRequest get;
  agt::v1::GetJobResponse got;
  EXPECT_STATUS(client_->training->GetJob(Ctx().get(), get, &got), kInvalid, "job_id: required");
  get.set_job_id("job-unknown");
  EXPECT_STATUS(client_->training->GetJob(Ctx().get(), get, &got), kNotFound, "job-unknown");

  agt::v1::CancelJobRequest cancel;
  agt::v1::CancelJobResponse cancelled;
  EXPECT_STATUS(client_->training->CancelJob(Ctx().get(), cancel, &cancelled), kInvalid, "job_id");
  cancel.set_job_id("job-unknown");
  EXPECT_STATUS(client_->training->CancelJob(Ctx().get(), cancel, &cancelled), kNotFound,
                "job-unknown");
  cancel.set_job_id(*job_id_);  // SUCCEEDED
  EXPECT_EQ(client_->training->CancelJob(Ctx().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  agt::v1::ListJobsRequest list;
  agt::v1::ListJobsResponse jobs;
  list.set_page_size(-3);
  EXPECT_STATUS(client_->training->ListJobs(Ctx().get(), list, &jobs), kInvalid, "page_size");
  list.set_page_size(10);
  list.set_state(static_cast<agt::v1::JobState>(99));
  EXPECT_STATUS(client_->training->ListJobs(Ctx().get(), list, &jobs), kInvalid, "state");

  std::vector<agt::v1::JobEvent> events;
  EXPECT_STATUS(WatchAll(*client_, "", &events), kInvalid, "job_id: required");
  EXPECT_STATUS(WatchAll(*client_, "job-unknown", &events), kNotFound, "job-unknown");
  EXPECT_TRUE(events.empty());
  // Watching a finished job returns its final state at once.
  ASSERT_TRUE(WatchAll(*client_, *job_id_, &events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state(), agt::v1::JOB_STATE_SUCCEEDED);
}

// ---------------------------------------------------------------- models

TEST_F(ValidationE2eTest, ModelIdsAndPages) {
  agt::v1::GetModelRequest get;
  agt::v1::GetModelResponse got;
  EXPECT_STATUS(client_->models->GetModel(Ctx().get(), get, &got), kInvalid, "model_id: required");
  get.set_model_id("m-unknown");
  EXPECT_STATUS(client_->models->GetModel(Ctx().get(), get, &got), kNotFound, "m-unknown");
  agt::v1::ExportModelRequest exp;
  agt::v1::ExportModelResponse exported;
  EXPECT_STATUS(client_->models->ExportModel(Ctx().get(), exp, &exported), kInvalid, "model_id");
  exp.set_model_id("m-unknown");
  EXPECT_STATUS(client_->models->ExportModel(Ctx().get(), exp, &exported), kNotFound, "m-unknown");
  agt::v1::ListModelsRequest list;
  agt::v1::ListModelsResponse models;
  list.set_page_size(-1);
  EXPECT_STATUS(client_->models->ListModels(Ctx().get(), list, &models), kInvalid, "page_size");
}

TEST_F(ValidationE2eTest, CertifyPredictionsErrorsNameTheField) {
  ASSERT_TRUE(Certify(GoodCertify()).ok());
  agt::v1::CertifyPredictionsRequest r = GoodCertify();
  r.clear_model_id();
  EXPECT_STATUS(Certify(r), kInvalid, "model_id");
  r = GoodCertify();
  r.set_model_id("m-unknown");
  EXPECT_STATUS(Certify(r), kNotFound, "m-unknown");
  r = GoodCertify();
  r.mutable_inputs()->set_cols(3);
  EXPECT_STATUS(Certify(r), kInvalid, "inputs.cols: 3");
  r = GoodCertify();
  r.mutable_inputs()->add_values(1.0);
  EXPECT_STATUS(Certify(r), kInvalid, "inputs.values: 5 values");
  r = GoodCertify();
  r.mutable_inputs()->set_values(3, std::nan(""));
  EXPECT_STATUS(Certify(r), kInvalid, "inputs.values[3]");
  r = GoodCertify();
  r.mutable_inputs()->set_rows(0);
  r.mutable_inputs()->clear_values();
  EXPECT_STATUS(Certify(r), kInvalid, "inputs.rows");
  r = GoodCertify();
  r.set_test_epsilon(-0.1);
  EXPECT_STATUS(Certify(r), kInvalid, "test_epsilon");
  r = GoodCertify();
  r.set_test_epsilon(std::numeric_limits<double>::infinity());
  EXPECT_STATUS(Certify(r), kInvalid, "test_epsilon");
  r = GoodCertify();
  r.add_labels(1);
  EXPECT_STATUS(Certify(r), kInvalid, "labels");
  r = GoodCertify();
  r.add_labels(1);
  r.add_labels(7);
  EXPECT_STATUS(Certify(r), kInvalid, "labels[1]");
  r = GoodCertify();
  r.set_stability_rule(static_cast<agt::v1::StabilityRule>(9));
  EXPECT_STATUS(Certify(r), kInvalid, "stability_rule");
  // Over the per-call row limit (2 x 100001 doubles is a 1.6 MB message).
  r = GoodCertify();
  r.mutable_inputs()->set_rows(100001);
  r.mutable_inputs()->clear_values();
  for (int i = 0; i < 2 * 100001; ++i) r.mutable_inputs()->add_values(0.0);
  EXPECT_STATUS(Certify(r), kInvalid, "inputs.rows: 100001");
}

TEST_F(ValidationE2eTest, CertifyDatasetErrorsNameTheField) {
  agt::v1::CertifyDatasetRequest r;
  agt::v1::CertifyDatasetResponse response;
  r.set_dataset_id(*dataset_id_);
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kInvalid, "model_id");
  r.set_model_id(*model_id_);
  r.clear_dataset_id();
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kInvalid, "dataset_id");
  r.set_dataset_id("ds-unknown");
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kNotFound,
                "ds-unknown");
  r.set_dataset_id(*wide_id_);
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kInvalid,
                "3 features, the model needs 2");
  r.set_dataset_id(*dataset_id_);
  r.set_test_epsilon(-1);
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kInvalid,
                "test_epsilon");
  r.set_test_epsilon(0);
  r.set_stability_rule(static_cast<agt::v1::StabilityRule>(9));
  EXPECT_STATUS(client_->models->CertifyDataset(Ctx().get(), r, &response), kInvalid,
                "stability_rule");
  r.set_stability_rule(agt::v1::STABILITY_RULE_UNSPECIFIED);
  EXPECT_TRUE(client_->models->CertifyDataset(Ctx().get(), r, &response).ok());
}

// ---------------------------------------------------------------- transport

TEST_F(ValidationE2eTest, MessagesOverTheTransportLimitAreResourceExhausted) {
  // 64 MiB + a bit of doubles in one CertifyPredictions request.
  agt::v1::CertifyPredictionsRequest r = GoodCertify();
  const int values = (64 << 20) / 8 + 1024;
  r.mutable_inputs()->set_rows(values / 2);
  r.mutable_inputs()->mutable_values()->Resize(values, 0.0);
  const grpc::Status status = Certify(r);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_FALSE(status.error_message().empty());
}

TEST_F(ValidationE2eTest, UndecodableBytesForEveryUnaryRpcAreRefused) {
  // A field 1 of wire type "length-delimited" whose length runs past the end.
  const std::string garbage("\x0a\xff\xff\xff\x0f", 5);
  for (const char* method :
       {"/agt.v1.DatasetService/ListDatasets", "/agt.v1.DatasetService/GetDataset",
        "/agt.v1.DatasetService/DeleteDataset", "/agt.v1.TrainingService/SubmitTrainingJob",
        "/agt.v1.TrainingService/GetJob", "/agt.v1.TrainingService/ListJobs",
        "/agt.v1.TrainingService/CancelJob", "/agt.v1.ModelService/GetModel",
        "/agt.v1.ModelService/ListModels", "/agt.v1.ModelService/ExportModel",
        "/agt.v1.ModelService/CertifyPredictions", "/agt.v1.ModelService/CertifyDataset"}) {
    const grpc::Status status = RawUnaryCall(client_->channel.get(), method, garbage, nullptr);
    EXPECT_FALSE(status.ok()) << method;
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNAVAILABLE) << method;
  }
  const grpc::Status unknown =
      RawUnaryCall(client_->channel.get(), "/agt.v1.ModelService/DropAll", "", nullptr);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace agt::e2e
