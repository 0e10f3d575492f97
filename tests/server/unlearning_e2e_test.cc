// agt.v1.UnlearningService end to end against the real agt-server: deletions
// counted per batch, accepted while no batch holds more than max N, then
// "retraining required", the in-place retraining (same dataset, removed_rows)
// that completes and supersedes the model, CheckUnlearning and
// CertifyPredictions agreeing with the core's rule (stable at some n >= m,
// m the most deletions in one batch), the ledger across a restart,
// concurrent requests over RPC, idempotent request ids, and bad inputs of
// every RPC. The soundness of the whole loop (successor in the original's
// box, every certified prediction the successor's) is
// unlearning_in_place_e2e_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr char kTrainer[] = "trainer-token";
constexpr char kQuerier[] = "querier-token";
constexpr char kOther[] = "other-tenant-token";
constexpr int kRows = 100;

class UnlearningE2eTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    WriteFile(dir_->File("tokens"), absl::StrCat(TokenLine(kTrainer, "trainer", "acme"),
                                                 TokenLine(kQuerier, "querier", "acme"),
                                                 TokenLine(kOther, "admin", "beta")));
    StartServer();
    dataset_ = UploadMoons(*client_, kRows, 3, kTrainer);
    model_id_ = Train(MoonsSpec(dataset_.id(), 2));
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("u.db"), {"--tokens", dir_->File("tokens")}),
                               dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    client_ = std::make_unique<Client>(server_->address());
    unlearning_ = agt::v1::UnlearningService::NewStub(client_->channel);
  }

  std::string Train(const agt::v1::TrainingJobSpec& spec) {
    return TrainModel(*client_, spec, kTrainer);
  }

  grpc::Status Delete(const std::vector<int64_t>& rows, agt::v1::RequestDeletionResponse* out,
                      bool retrain = false, const std::string& token = kTrainer,
                      const std::string& model = "") {
    agt::v1::RequestDeletionRequest request;
    request.set_model_id(model.empty() ? model_id_ : model);
    request.mutable_row_ids()->Add(rows.begin(), rows.end());
    request.set_retrain_if_needed(retrain);
    return unlearning_->RequestDeletion(Ctx(token).get(), request, out);
  }

  grpc::Status Status(agt::v1::GetUnlearningStatusResponse* out,
                      const std::string& token = kTrainer, const std::string& model = "") {
    agt::v1::GetUnlearningStatusRequest request;
    request.set_model_id(model.empty() ? model_id_ : model);
    return unlearning_->GetUnlearningStatus(Ctx(token).get(), request, out);
  }

  // The first `rows` training points of the moons set, as inputs.
  agt::v1::Matrix Inputs(int rows) {
    const agt::Dataset data = agt::MakeMoons(kRows, 0.1, 3);
    agt::v1::Matrix m;
    m.set_rows(rows);
    m.set_cols(2);
    for (int i = 0; i < rows; ++i) {
      m.add_values(data.x(i, 0));
      m.add_values(data.x(i, 1));
    }
    return m;
  }

  // CheckUnlearning and CertifyPredictions on the same inputs agree with each
  // other and with the rule "m == 0 or stable at some trained n >= m", m the
  // most deleted rows in one batch.
  void ExpectChecksAgreeWithTheCore(int64_t d, int64_t m) {
    agt::v1::CheckUnlearningRequest check;
    check.set_model_id(model_id_);
    *check.mutable_inputs() = Inputs(40);
    agt::v1::CheckUnlearningResponse checked;
    grpc::Status s = unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(checked.deletions(), d);
    EXPECT_EQ(checked.max_deletions_per_batch(), m);
    EXPECT_EQ(checked.max_budget(), 5);
    EXPECT_TRUE(absl::StrContains(checked.guarantee(), "in place")) << checked.guarantee();
    agt::v1::CertifyPredictionsRequest certify;
    certify.set_model_id(model_id_);
    *certify.mutable_inputs() = check.inputs();
    agt::v1::CertifyPredictionsResponse certified;
    s = client_->models->CertifyPredictions(Ctx(kQuerier).get(), certify, &certified);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(checked.points_size(), certified.points_size());
    const std::vector<int> budgets = {1, 2, 5};  // MoonsSpec's order
    for (int i = 0; i < checked.points_size(); ++i) {
      const agt::v1::PointCertificate& p = certified.points(i);
      bool expected = m == 0;
      int largest = -1;
      for (int j = 0; j < p.stable_size(); ++j) {
        if (!p.stable(j)) continue;
        if (budgets[j] >= m) expected = true;
        largest = std::max(largest, budgets[j]);
      }
      EXPECT_EQ(checked.points(i).certified_unchanged(), expected) << "point " << i;
      EXPECT_EQ(checked.points(i).largest_stable_budget(), largest) << "point " << i;
      EXPECT_EQ(checked.points(i).predicted_class(), p.predicted_class());
      ASSERT_TRUE(p.has_certified_unchanged());
      EXPECT_EQ(p.certified_unchanged(), expected) << "point " << i;
      EXPECT_EQ(p.deletions(), d);
      EXPECT_EQ(p.max_deletions_per_batch(), m);
    }
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<agt::v1::UnlearningService::Stub> unlearning_;
  agt::v1::Dataset dataset_;
  std::string model_id_;
};

TEST_F(UnlearningE2eTest, CountsPerBatchUpToMaxNThenRetrainsInPlace) {
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(Status(&status, kQuerier).ok());
  EXPECT_EQ(status.state(), agt::v1::UNLEARNING_STATE_ACTIVE);
  EXPECT_EQ(status.deletions(), 0);
  EXPECT_EQ(status.max_budget(), 5);
  EXPECT_TRUE(status.has_audit());
  EXPECT_EQ(status.audit_rows(), kRows);
  EXPECT_DOUBLE_EQ(status.audit_certified_fraction(), 1.0);  // m = 0: the served model
  ExpectChecksAgreeWithTheCore(0, 0);

  // 100 rows in 5 batches of 20.
  agt::v1::RequestDeletionResponse r;
  ASSERT_TRUE(Delete({3, 3, 7}, &r).ok());
  EXPECT_TRUE(r.accepted());
  EXPECT_EQ(r.deletions(), 2);
  EXPECT_EQ(r.max_deletions_per_batch(), 2);
  EXPECT_EQ(r.newly_accepted(), 2);
  EXPECT_EQ(r.duplicates(), 1);
  EXPECT_FALSE(r.retraining_required());
  ExpectChecksAgreeWithTheCore(2, 2);

  r.Clear();
  ASSERT_TRUE(Delete({10, 11, 12, 13}, &r).ok());  // batch 0: 2 + 4 > 5
  EXPECT_FALSE(r.accepted());
  EXPECT_TRUE(r.retraining_required());
  EXPECT_EQ(r.deletions(), 2);
  EXPECT_TRUE(r.retraining_job_id().empty());
  EXPECT_TRUE(absl::StrContains(r.message(), "retraining required: batch 0")) << r.message();
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.state(), agt::v1::UNLEARNING_STATE_RETRAINING_REQUIRED);

  r.Clear();
  ASSERT_TRUE(Delete({10, 11, 12}, &r).ok());  // exactly max N in batch 0
  EXPECT_TRUE(r.accepted());
  EXPECT_EQ(r.deletions(), 5);
  ExpectChecksAgreeWithTheCore(5, 5);

  // Spread over the other batches, far more than max N in total is certified.
  r.Clear();
  ASSERT_TRUE(Delete({20, 21, 22, 23, 24, 40, 41, 42, 60, 61, 80, 95, 99}, &r).ok());
  EXPECT_TRUE(r.accepted()) << r.message();
  EXPECT_EQ(r.deletions(), 18);
  EXPECT_EQ(r.max_deletions_per_batch(), 5);
  ExpectChecksAgreeWithTheCore(18, 5);
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.deletions(), 18);
  EXPECT_EQ(status.max_deletions_per_batch(), 5);

  // Keep the only worker busy, so that the retraining is still QUEUED when
  // the next request asks for one (a tiny job could otherwise finish first,
  // and a finished retraining without row 15 rightly gets a new one).
  agt::v1::Job blocker;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(dataset_.id()), &blocker, kTrainer).ok());
  r.Clear();
  ASSERT_TRUE(Delete({14}, &r, /*retrain=*/true).ok());  // a sixth in batch 0
  EXPECT_TRUE(r.retraining_required());
  ASSERT_FALSE(r.retraining_job_id().empty());
  agt::v1::RequestDeletionResponse again;
  ASSERT_TRUE(Delete({15}, &again, /*retrain=*/true).ok());
  EXPECT_EQ(again.retraining_job_id(), r.retraining_job_id()) << "one live retraining per model";
  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(blocker.id());
  agt::v1::CancelJobResponse cancelled;
  ASSERT_TRUE(client_->training->CancelJob(Ctx(kTrainer).get(), cancel, &cancelled).ok());

  const agt::v1::Job job = WaitForFinal(*client_, r.retraining_job_id(), kTrainer);
  ASSERT_EQ(job.state(), agt::v1::JOB_STATE_SUCCEEDED) << job.error();
  // In place: the original dataset, the deleted rows named, no derived dataset.
  EXPECT_EQ(job.spec().dataset_id(), dataset_.id());
  // Every requested row is gone: 3, 7, 10..14 and the spread ones (15 came
  // after the job was enqueued; deletions for a superseded model belong on
  // its successor).
  EXPECT_EQ(std::vector<int64_t>(job.spec().removed_rows().begin(), job.spec().removed_rows().end()),
            (std::vector<int64_t>{3, 7, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 40, 41, 42, 60, 61,
                                  80, 95, 99}));
  EXPECT_EQ(job.spec().budgets_size(), 3);  // batch 0 keeps 13 rows: every budget fits
  agt::v1::ListDatasetsResponse datasets;
  ASSERT_TRUE(client_->datasets
                  ->ListDatasets(Ctx(kTrainer).get(), agt::v1::ListDatasetsRequest(), &datasets)
                  .ok());
  EXPECT_EQ(datasets.datasets_size(), 1);

  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.state(), agt::v1::UNLEARNING_STATE_SUPERSEDED);
  EXPECT_EQ(status.successor_model_id(), job.model_id());
  EXPECT_EQ(status.retraining_job_id(), r.retraining_job_id());
  EXPECT_EQ(status.deletions(), 18);
  EXPECT_LE(status.audit_certified_fraction(), 1.0);

  // The successor serves with an empty ledger of its own, on the same
  // dataset; rows its training removed are duplicates there.
  agt::v1::GetUnlearningStatusResponse successor;
  ASSERT_TRUE(Status(&successor, kQuerier, job.model_id()).ok());
  EXPECT_EQ(successor.state(), agt::v1::UNLEARNING_STATE_ACTIVE);
  EXPECT_EQ(successor.deletions(), 0);
  r.Clear();
  ASSERT_TRUE(Delete({3, 7, 15, 16}, &r, false, kTrainer, job.model_id()).ok());
  EXPECT_TRUE(r.accepted());
  EXPECT_EQ(r.duplicates(), 2);
  EXPECT_EQ(r.deletions(), 2);
  // Its own retraining accumulates the rows of both.
  agt::v1::RetrainInPlaceRequest retrain;
  retrain.set_model_id(job.model_id());
  agt::v1::RetrainInPlaceResponse retrained;
  grpc::Status s = unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &retrained);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(retrained.enqueued());
  EXPECT_EQ(retrained.removed_rows(), 22);
  const agt::v1::Job second = WaitForFinal(*client_, retrained.job_id(), kTrainer);
  ASSERT_EQ(second.state(), agt::v1::JOB_STATE_SUCCEEDED) << second.error();
  EXPECT_EQ(second.spec().dataset_id(), dataset_.id());
  EXPECT_EQ(second.spec().removed_rows_size(), 22);
}

TEST_F(UnlearningE2eTest, AnOperatorRetrainsAtAnyDAndBudgetsThatNoLongerFitAreDropped) {
  agt::v1::RetrainInPlaceRequest retrain;
  retrain.set_model_id(model_id_);
  agt::v1::RetrainInPlaceResponse response;
  // A querier may not; a trainer may, with nothing deleted yet (d = 0).
  EXPECT_EQ(unlearning_->RetrainInPlace(Ctx(kQuerier).get(), retrain, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  agt::v1::RequestDeletionResponse r;
  // 17 rows of batch 2 go (refused: 17 > 5, recorded), leaving 3 rows there.
  std::vector<int64_t> rows;
  for (int64_t row = 40; row < 57; ++row) rows.push_back(row);
  ASSERT_TRUE(Delete(rows, &r).ok());
  EXPECT_TRUE(r.retraining_required());
  grpc::Status s = unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.enqueued());
  EXPECT_EQ(response.removed_rows(), 17);
  EXPECT_EQ(std::vector<int>(response.budgets().begin(), response.budgets().end()),
            (std::vector<int>{1, 2}));
  EXPECT_EQ(std::vector<int>(response.dropped_budgets().begin(), response.dropped_budgets().end()),
            (std::vector<int>{5}));
  EXPECT_TRUE(absl::StrContains(response.message(), "batch 2) has 3 rows")) << response.message();
  // Asking again returns the same job.
  agt::v1::RetrainInPlaceResponse again;
  ASSERT_TRUE(unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &again).ok());
  EXPECT_EQ(again.job_id(), response.job_id());
  EXPECT_FALSE(again.enqueued());
  const agt::v1::Job job = WaitForFinal(*client_, response.job_id(), kTrainer);
  ASSERT_EQ(job.state(), agt::v1::JOB_STATE_SUCCEEDED) << job.error();
  // Once it succeeded and left out every ledger row, it is still the answer;
  // a new deletion makes a new retraining.
  ASSERT_TRUE(unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &again).ok());
  EXPECT_EQ(again.job_id(), response.job_id());
  ASSERT_TRUE(Delete({0}, &r).ok());
  ASSERT_TRUE(unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &again).ok());
  EXPECT_NE(again.job_id(), response.job_id());
  EXPECT_TRUE(again.enqueued());
  EXPECT_EQ(again.removed_rows(), 18);
  WaitForFinal(*client_, again.job_id(), kTrainer);
}

TEST_F(UnlearningE2eTest, ARetriedDeletionRequestIdIsRecordedOnce) {
  agt::v1::RequestDeletionRequest request;
  request.set_model_id(model_id_);
  for (int64_t row : {5, 6, 25}) request.add_row_ids(row);
  request.set_request_id("delete-5-6-25");
  agt::v1::RequestDeletionResponse first, retry;
  ASSERT_TRUE(unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &first).ok());
  EXPECT_TRUE(first.accepted());
  EXPECT_EQ(first.newly_accepted(), 3);
  // Another deletion in between; the retry still gets the first answer.
  agt::v1::RequestDeletionResponse other;
  ASSERT_TRUE(Delete({26}, &other).ok());
  ASSERT_TRUE(unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &retry).ok());
  EXPECT_EQ(retry.SerializeAsString(), first.SerializeAsString());
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.deletions(), 4);
  // The same id for other rows is refused; a malformed id too.
  request.add_row_ids(27);
  grpc::Status s = unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &retry);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "request_id")) << s.error_message();
  request.set_request_id("not a valid id");
  EXPECT_EQ(unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &retry).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.deletions(), 4);
  // The answer survives a restart.
  EXPECT_EQ(server_->Signal(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  request.mutable_row_ids()->RemoveLast();
  request.set_request_id("delete-5-6-25");
  ASSERT_TRUE(unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &retry).ok());
  EXPECT_EQ(retry.SerializeAsString(), first.SerializeAsString());
}

TEST_F(UnlearningE2eTest, TheLedgerSurvivesARestart) {
  agt::v1::RequestDeletionResponse r;
  ASSERT_TRUE(Delete({1, 2, 3}, &r).ok());
  ASSERT_TRUE(Delete({4, 5, 6}, &r).ok());  // refused, recorded
  EXPECT_EQ(server_->Signal(SIGTERM), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.deletions(), 3);
  EXPECT_EQ(status.state(), agt::v1::UNLEARNING_STATE_RETRAINING_REQUIRED);
  r.Clear();
  ASSERT_TRUE(Delete({1, 2, 3, 7}, &r).ok());
  EXPECT_TRUE(r.accepted());
  EXPECT_EQ(r.deletions(), 4);
  EXPECT_EQ(r.duplicates(), 3);

  // The ledger over RPC, two rows a page: who asked, when, accepted or not.
  std::vector<agt::v1::Deletion> rows;
  agt::v1::ListDeletionsRequest list;
  list.set_model_id(model_id_);
  list.set_page_size(2);
  for (int page = 0; page < 10; ++page) {
    agt::v1::ListDeletionsResponse response;
    grpc::Status s = unlearning_->ListDeletions(Ctx(kQuerier).get(), list, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LE(response.deletions_size(), 2);
    rows.insert(rows.end(), response.deletions().begin(), response.deletions().end());
    if (response.next_page_token().empty()) break;
    list.set_page_token(response.next_page_token());
  }
  ASSERT_EQ(rows.size(), 7u);  // 1..7
  for (size_t i = 0; i < rows.size(); ++i) {
    const agt::v1::Deletion& d = rows[i];
    EXPECT_EQ(d.row_id(), static_cast<int64_t>(i) + 1);
    // 4, 5, 6 came past max N (refused); 1, 2, 3, 7 count in d.
    EXPECT_EQ(d.accepted(), d.row_id() < 4 || d.row_id() == 7) << d.row_id();
    EXPECT_EQ(d.requested_by(), "acme");  // tokens without a label: the tenant
    EXPECT_EQ(d.batch(), 0);
    EXPECT_GT(d.requested().seconds(), 1'600'000'000);
  }
}

TEST_F(UnlearningE2eTest, ConcurrentRequestsNeverDoubleCountOrPassMaxN) {
  constexpr int kThreads = 8;
  std::atomic<int64_t> newly{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t row = t; row < t + 4; ++row) {
        agt::v1::RequestDeletionResponse r;
        if (!Delete({row}, &r).ok()) {
          ++errors;
          continue;
        }
        if (r.accepted()) newly += r.newly_accepted();
        if (r.deletions() > 5) ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.deletions(), newly.load());
  EXPECT_EQ(status.deletions(), 5);  // 11 distinct rows requested one at a time
}

TEST_F(UnlearningE2eTest, ARetrainingThatCannotRunIsRefusedAndLeavesNoJob) {
  std::vector<int64_t> all;
  for (int64_t row = 0; row < kRows; ++row) all.push_back(row);  // no row left to train
  agt::v1::RequestDeletionResponse r;
  const grpc::Status s = Delete(all, &r, /*retrain=*/true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "leave no row")) << s.error_message();
  agt::v1::ListJobsResponse jobs;
  ASSERT_TRUE(
      client_->training->ListJobs(Ctx(kTrainer).get(), agt::v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);  // the original's
  agt::v1::ListDatasetsResponse datasets;
  ASSERT_TRUE(client_->datasets
                  ->ListDatasets(Ctx(kTrainer).get(), agt::v1::ListDatasetsRequest(), &datasets)
                  .ok());
  EXPECT_EQ(datasets.datasets_size(), 1);
  agt::v1::GetUnlearningStatusResponse status;
  ASSERT_TRUE(Status(&status).ok());
  EXPECT_EQ(status.state(), agt::v1::UNLEARNING_STATE_RETRAINING_REQUIRED);
  EXPECT_EQ(status.deletions(), 0);
}

TEST_F(UnlearningE2eTest, BadInputsGetTheRightStatus) {
  agt::v1::RequestDeletionResponse r;
  EXPECT_EQ(Delete({}, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status s = Delete({5, kRows}, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), absl::StrCat(kRows))) << s.error_message();
  EXPECT_EQ(Delete({-3}, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete(std::vector<int64_t>(100'001, 1), &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete({1}, &r, false, kTrainer, "mdl-unknown").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete({1}, &r, false, kOther).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete({1}, &r, false, kQuerier).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Delete({1}, &r, false, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    agt::v1::RequestDeletionRequest request;  // no model id
    request.add_row_ids(1);
    EXPECT_EQ(unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &r).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  {
    agt::v1::ListDeletionsRequest list;
    agt::v1::ListDeletionsResponse listed;
    auto code = [&](const std::string& token) {
      return unlearning_->ListDeletions(Ctx(token).get(), list, &listed).error_code();
    };
    EXPECT_EQ(code(kQuerier), grpc::StatusCode::INVALID_ARGUMENT);  // no model id
    list.set_model_id("mdl-unknown");
    EXPECT_EQ(code(kQuerier), grpc::StatusCode::NOT_FOUND);
    list.set_model_id(model_id_);
    EXPECT_EQ(code(kOther), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(code(""), grpc::StatusCode::UNAUTHENTICATED);
    list.set_page_size(-1);
    EXPECT_EQ(code(kQuerier), grpc::StatusCode::INVALID_ARGUMENT);
    list.set_page_size(0);
    list.set_page_token("not-a-token");
    EXPECT_EQ(code(kQuerier), grpc::StatusCode::INVALID_ARGUMENT);
  }

  agt::v1::GetUnlearningStatusResponse status;
  EXPECT_EQ(Status(&status, kQuerier, "mdl-unknown").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Status(&status, kOther).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Status(&status, kQuerier, "bad id").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  agt::v1::CheckUnlearningRequest check;
  check.set_model_id(model_id_);
  agt::v1::CheckUnlearningResponse checked;
  EXPECT_EQ(unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // no inputs
  check.mutable_inputs()->set_rows(1);
  check.mutable_inputs()->set_cols(3);
  check.mutable_inputs()->add_values(1);
  check.mutable_inputs()->add_values(2);
  check.mutable_inputs()->add_values(3);
  s = unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "inputs")) << s.error_message();
  check.set_model_id("mdl-unknown");
  EXPECT_EQ(unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // A model trained under substitution cannot be gated.
  agt::v1::TrainingJobSpec spec = MoonsSpec(dataset_.id(), 1);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_SUBSTITUTION);
  spec.set_clip_gamma(1.0);
  const std::string substitution = Train(spec);
  s = Delete({1}, &r, false, kTrainer, substitution);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "PERTURBATION_KIND_REMOVAL"))
      << s.error_message();
  EXPECT_EQ(Status(&status, kQuerier, substitution).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  {
    agt::v1::ListDeletionsRequest list;
    list.set_model_id(substitution);
    agt::v1::ListDeletionsResponse listed;
    s = unlearning_->ListDeletions(Ctx(kQuerier).get(), list, &listed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "PERTURBATION_KIND_SUBSTITUTION"))
        << s.error_message();
    agt::v1::RetrainInPlaceRequest retrain;
    retrain.set_model_id(substitution);
    agt::v1::RetrainInPlaceResponse retrained;
    EXPECT_EQ(unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &retrained).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  // Nor a model trained under poisoning.
  agt::v1::TrainingJobSpec poisoning = MoonsSpec(dataset_.id(), 1);
  poisoning.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_POISONING);
  poisoning.mutable_perturbation()->set_epsilon(0.01);
  const std::string poisoned = Train(poisoning);
  {
    agt::v1::ListDeletionsRequest list;
    list.set_model_id(poisoned);
    agt::v1::ListDeletionsResponse listed;
    EXPECT_EQ(unlearning_->ListDeletions(Ctx(kQuerier).get(), list, &listed).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  check.set_model_id(substitution);
  *check.mutable_inputs() = Inputs(2);
  EXPECT_EQ(unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Its CertifyPredictions answers carry no unlearning fields.
  agt::v1::CertifyPredictionsRequest certify;
  certify.set_model_id(substitution);
  *certify.mutable_inputs() = Inputs(2);
  agt::v1::CertifyPredictionsResponse certified;
  ASSERT_TRUE(client_->models->CertifyPredictions(Ctx(kQuerier).get(), certify, &certified).ok());
  EXPECT_FALSE(certified.points(0).has_certified_unchanged());
}

}  // namespace
}  // namespace agt::e2e
