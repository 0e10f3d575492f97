// Machine-readable errors end to end against the real agt-server: every
// error's grpc-status-details-bin decodes as a google.rpc.Status with an
// ErrorInfo (domain agt.v1, a documented reason, the ids it is about), a
// BadRequest naming the field for invalid requests and a QuotaFailure for
// every refusal by a limit, whatever the RPC (unary, upload stream, watch).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/privacy.grpc.pb.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr char kTrainer[] = "trainer-token";
constexpr char kQuerier[] = "querier-token";
constexpr char kPrivate[] = "private-token";

// What a client reads out of the trailer, decoded from the bytes gRPC
// received (not through our client library).
struct Details {
  google::rpc::Status status;
  bool has_info = false;
  google::rpc::ErrorInfo info;
  google::rpc::BadRequest bad;
  google::rpc::QuotaFailure quota;

  std::string Field() const {
    return bad.field_violations_size() == 1 ? bad.field_violations(0).field() : "";
  }
  std::string Meta(const std::string& key) const {
    auto it = info.metadata().find(key);
    return it == info.metadata().end() ? "" : it->second;
  }
};

Details Decode(const grpc::Status& status) {
  Details d;
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(status.error_details().empty()) << "no details: " << status.error_message();
  EXPECT_TRUE(d.status.ParseFromString(status.error_details()));
  EXPECT_EQ(d.status.code(), static_cast<int>(status.error_code()));
  EXPECT_EQ(d.status.message(), status.error_message());
  for (const auto& any : d.status.details()) {
    if (any.UnpackTo(&d.info)) d.has_info = true;
    any.UnpackTo(&d.bad);
    any.UnpackTo(&d.quota);
  }
  EXPECT_TRUE(d.has_info) << status.error_message();
  EXPECT_EQ(d.info.domain(), "agt.v1");
  return d;
}

class ErrorDetailsE2eTest : public testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.File("tokens"), absl::StrCat(TokenLine(kTrainer, "trainer", "acme"),
                                                TokenLine(kQuerier, "querier", "acme"),
                                                TokenLine(kPrivate, "private-querier", "acme")));
    ASSERT_TRUE(server_.Start(
        ServerArgs(dir_.File("e.db"), {"--tokens", dir_.File("tokens"), "--privacy-budget", "1",
                                       "--max-jobs-per-tenant", "1"}),
        dir_.File("server.err")))
        << ReadFileText(dir_.File("server.err"));
    client_ = std::make_unique<Client>(server_.address());
    dataset_ = UploadMoons(*client_, 200, 3, kTrainer);
  }

  TempDir dir_;
  ServerProcess server_;
  std::unique_ptr<Client> client_;
  agt::v1::Dataset dataset_;
};

TEST_F(ErrorDetailsE2eTest, InvalidJobSpecNamesTheFieldInABadRequest) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_.id(), 1);
  spec.set_batch_size(0);
  const grpc::Status s = Submit(*client_, spec, nullptr, kTrainer);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  const Details d = Decode(s);
  EXPECT_EQ(d.info.reason(), "INVALID_FIELD");
  EXPECT_EQ(d.Field(), "spec.batch_size") << s.error_message();
  EXPECT_EQ(d.bad.field_violations(0).description(), s.error_message());
  EXPECT_EQ(d.Meta("method"), "/agt.v1.TrainingService/SubmitTrainingJob");
  EXPECT_EQ(d.quota.violations_size(), 0);

  // A nested field, and a budget against the batch size.
  spec = MoonsSpec(dataset_.id(), 1);
  spec.mutable_optimizer()->set_learning_rate(-1);
  EXPECT_EQ(Decode(Submit(*client_, spec, nullptr, kTrainer)).Field(),
            "spec.optimizer.learning_rate");
  spec = MoonsSpec(dataset_.id(), 1, 20, {1, 30});
  const Details budget = Decode(Submit(*client_, spec, nullptr, kTrainer));
  EXPECT_TRUE(absl::StartsWith(budget.Field(), "spec.")) << budget.status.message();
}

TEST_F(ErrorDetailsE2eTest, UnknownIdsAreNotFoundWithTheIdInTheMetadata) {
  agt::v1::GetModelRequest request;
  request.set_model_id("mdl-0000000000000000000");
  agt::v1::GetModelResponse response;
  const grpc::Status s = client_->models->GetModel(Ctx(kQuerier).get(), request, &response);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  const Details d = Decode(s);
  EXPECT_EQ(d.info.reason(), "NOT_FOUND");
  EXPECT_EQ(d.Meta("model_id"), "mdl-0000000000000000000");

  // The dataset of a job spec: found missing by the store on submit.
  const Details job = Decode(Submit(*client_, MoonsSpec("ds-nope", 1), nullptr, kTrainer));
  EXPECT_EQ(job.info.reason(), "NOT_FOUND");
  EXPECT_EQ(job.Meta("dataset_id"), "ds-nope");

  // A malformed id is INVALID_ARGUMENT naming the field instead.
  request.set_model_id("has space");
  const Details bad = Decode(client_->models->GetModel(Ctx(kQuerier).get(), request, &response));
  EXPECT_EQ(bad.Field(), "model_id");
}

TEST_F(ErrorDetailsE2eTest, AuthFailuresSayWhich) {
  agt::v1::ListDatasetsRequest request;
  agt::v1::ListDatasetsResponse response;
  for (const std::string& token : {std::string(), std::string("wrong-token")}) {
    const grpc::Status s = client_->datasets->ListDatasets(Ctx(token).get(), request, &response);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    EXPECT_EQ(Decode(s).info.reason(), "UNAUTHENTICATED") << token;
  }
  // A querier may not train.
  const grpc::Status denied = Submit(*client_, MoonsSpec(dataset_.id(), 1), nullptr, kQuerier);
  ASSERT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Decode(denied).info.reason(), "PERMISSION_DENIED");
  // The watch stream and the upload stream answer the same way.
  std::vector<agt::v1::JobEvent> events;
  const Details watch = Decode(WatchAll(*client_, "job-x", &events, "wrong-token"));
  EXPECT_EQ(watch.info.reason(), "UNAUTHENTICATED");
  EXPECT_EQ(watch.Meta("method"), "/agt.v1.TrainingService/WatchJob");
  agt::v1::Dataset ignored;
  const Details upload =
      Decode(Upload(*client_, CsvMetadata("x", 2), MoonsCsv(10, 1), &ignored, "wrong-token"));
  EXPECT_EQ(upload.info.reason(), "UNAUTHENTICATED");
}

TEST_F(ErrorDetailsE2eTest, UploadValidationAndLimitsCarryTheirDetails) {
  agt::v1::DatasetMetadata metadata = CsvMetadata("bad", 2);
  metadata.set_size_bytes(-1);
  agt::v1::Dataset ignored;
  const Details negative = Decode(Upload(*client_, metadata, MoonsCsv(10, 1), &ignored, kTrainer));
  EXPECT_EQ(negative.Field(), "metadata.size_bytes");
  EXPECT_EQ(negative.info.reason(), "INVALID_FIELD");
  metadata.set_size_bytes(int64_t{1} << 40);
  const grpc::Status big = Upload(*client_, metadata, MoonsCsv(10, 1), &ignored, kTrainer);
  ASSERT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();
  const Details limit = Decode(big);
  EXPECT_EQ(limit.info.reason(), "DATASET_SIZE_LIMIT");
  ASSERT_EQ(limit.quota.violations_size(), 1);
  EXPECT_EQ(limit.quota.violations(0).subject(), "server");
  EXPECT_TRUE(absl::StrContains(limit.quota.violations(0).description(), "--max-dataset-mib"));
}

TEST_F(ErrorDetailsE2eTest, TenantJobLimitIsAQuotaFailureOfTheTenant) {
  agt::v1::Job running;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(dataset_.id()), &running, kTrainer).ok());
  const grpc::Status s = Submit(*client_, MoonsSpec(dataset_.id(), 1), nullptr, kTrainer);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  const Details d = Decode(s);
  EXPECT_EQ(d.info.reason(), "TENANT_JOB_LIMIT");
  ASSERT_EQ(d.quota.violations_size(), 1);
  EXPECT_EQ(d.quota.violations(0).subject(), "tenant:acme");
  EXPECT_TRUE(absl::StrContains(d.quota.violations(0).description(), "--max-jobs-per-tenant"));
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(running.id());
  agt::v1::CancelJobResponse cancelled;
  EXPECT_TRUE(client_->training->CancelJob(Ctx(kTrainer).get(), cancel, &cancelled).ok());
}

TEST_F(ErrorDetailsE2eTest, PrivacyBudgetExhaustedAndIdempotencyConflicts) {
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_.id(), 1, 50, {1, 2});
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
  spec.set_clip_gamma(1.0);
  const std::string model = TrainModel(*client_, spec, kTrainer);
  ASSERT_FALSE(model.empty());
  auto privacy = agt::v1::PrivacyService::NewStub(client_->channel);
  agt::v1::PrivatePredictRequest request;
  request.set_model_id(model);
  request.mutable_inputs()->set_rows(1);
  request.mutable_inputs()->set_cols(2);
  request.mutable_inputs()->add_values(0.5);
  request.mutable_inputs()->add_values(0.2);
  request.set_epsilon(2.0);  // the budget is 1
  agt::v1::PrivatePredictResponse response;
  const grpc::Status s = privacy->PrivatePredict(Ctx(kPrivate).get(), request, &response);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  const Details d = Decode(s);
  EXPECT_EQ(d.info.reason(), "PRIVACY_BUDGET_EXHAUSTED");
  EXPECT_EQ(d.Meta("model_id"), model);
  EXPECT_EQ(d.Meta("dataset_id"), dataset_.id());
  ASSERT_EQ(d.quota.violations_size(), 1);
  EXPECT_EQ(d.quota.violations(0).subject(), absl::StrCat("tenant:acme/dataset:", dataset_.id()));
  EXPECT_EQ(d.quota.violations(0).description(), s.error_message());

  // One request id for two different requests.
  request.set_epsilon(0.25);
  request.set_request_id("pp-1");
  ASSERT_TRUE(privacy->PrivatePredict(Ctx(kPrivate).get(), request, &response).ok());
  request.set_epsilon(0.5);
  const grpc::Status clash = privacy->PrivatePredict(Ctx(kPrivate).get(), request, &response);
  ASSERT_EQ(clash.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << clash.error_message();
  const Details conflict = Decode(clash);
  EXPECT_EQ(conflict.info.reason(), "IDEMPOTENCY_CONFLICT");
  EXPECT_EQ(conflict.Field(), "request_id");
}

TEST_F(ErrorDetailsE2eTest, CallsTheModelCannotServeSayWhyAndWhichModel) {
  // Trained under removal: smooth sensitivity needs substitution.
  const std::string removal = TrainModel(*client_, MoonsSpec(dataset_.id(), 1), kTrainer);
  ASSERT_FALSE(removal.empty());
  auto privacy = agt::v1::PrivacyService::NewStub(client_->channel);
  agt::v1::PrivatePredictRequest predict;
  predict.set_model_id(removal);
  predict.mutable_inputs()->set_rows(1);
  predict.mutable_inputs()->set_cols(2);
  predict.mutable_inputs()->add_values(0.5);
  predict.mutable_inputs()->add_values(0.2);
  predict.set_epsilon(0.5);
  agt::v1::PrivatePredictResponse predicted;
  const grpc::Status s = privacy->PrivatePredict(Ctx(kPrivate).get(), predict, &predicted);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  const Details d = Decode(s);
  EXPECT_EQ(d.info.reason(), "MECHANISM_NOT_APPLICABLE");
  EXPECT_EQ(d.Meta("model_id"), removal);

  // Substitution-trained: no unlearning.
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_.id(), 1, 50, {1});
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
  spec.set_clip_gamma(1.0);
  const std::string substitution = TrainModel(*client_, spec, kTrainer);
  ASSERT_FALSE(substitution.empty());
  auto unlearning = agt::v1::UnlearningService::NewStub(client_->channel);
  agt::v1::RequestDeletionRequest deletion;
  deletion.set_model_id(substitution);
  deletion.add_row_ids(3);
  agt::v1::RequestDeletionResponse answer;
  const grpc::Status refused = unlearning->RequestDeletion(Ctx(kTrainer).get(), deletion, &answer);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  const Details r = Decode(refused);
  EXPECT_EQ(r.info.reason(), "MODEL_KIND_NOT_SUPPORTED");
  EXPECT_EQ(r.Meta("model_id"), substitution);
}

}  // namespace
}  // namespace agt::e2e
