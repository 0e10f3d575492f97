// The unlearning loop end to end on the real agt-server (loopback, a real
// SQLite file), trying to break its claim: train under removal budgets,
// delete rows spread over the batches (more than max N in total, at most n in
// any batch, some in the dropped tail), ask which predictions are certified
// unchanged, retrain in place through the service, and check that the
// successor's parameters lie in the original's box at n (and every larger
// trained budget) and that every prediction reported "certified unchanged" is the
// successor's prediction (hundreds of queries, three seeds). A deletion
// request retried with its request id is recorded once.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agt/v1/unlearning.grpc.pb.h"
#include "core/common/rng.h"
#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

constexpr char kTrainer[] = "trainer-token";
constexpr char kQuerier[] = "querier-token";
constexpr int kRows = 410;  // 8 batches of 50, rows 400..409 never trained
constexpr int kBatch = 50;

// Every parameter of the model, layer by layer (weights, then bias).
std::vector<double> Flatten(const agt::v1::Parameters& p) {
  std::vector<double> out;
  for (const agt::v1::DenseParameters& layer : p.layers()) {
    out.insert(out.end(), layer.weight().values().begin(), layer.weight().values().end());
    out.insert(out.end(), layer.bias().begin(), layer.bias().end());
  }
  return out;
}

class UnlearningInPlaceE2eTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    WriteFile(dir_->File("tokens"), absl::StrCat(TokenLine(kTrainer, "trainer", "acme"),
                                                 TokenLine(kQuerier, "querier", "acme")));
    server_ = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("u.db"), {"--tokens", dir_->File("tokens")}),
                               dir_->File("server.err")))
        << ReadFileText(dir_->File("server.err"));
    client_ = std::make_unique<Client>(server_->address());
    unlearning_ = agt::v1::UnlearningService::NewStub(client_->channel);
  }

  agt::v1::ExportModelResponse Export(const std::string& model_id) {
    agt::v1::ExportModelRequest request;
    request.set_model_id(model_id);
    agt::v1::ExportModelResponse response;
    const grpc::Status s = client_->models->ExportModel(Ctx(kQuerier).get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  agt::v1::CertifyPredictionsResponse Certify(const std::string& model_id,
                                              const agt::v1::Matrix& inputs) {
    agt::v1::CertifyPredictionsRequest request;
    request.set_model_id(model_id);
    *request.mutable_inputs() = inputs;
    agt::v1::CertifyPredictionsResponse response;
    const grpc::Status s =
        client_->models->CertifyPredictions(Ctx(kQuerier).get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<agt::v1::UnlearningService::Stub> unlearning_;
};

TEST_F(UnlearningInPlaceE2eTest, CertifiedUnchangedPredictionsAreTheInPlaceSuccessors) {
  int64_t certified_total = 0, queries_total = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const agt::v1::Dataset dataset =
        UploadMoons(*client_, kRows, 10 + seed, kTrainer, absl::StrCat("moons-", seed));
    agt::v1::TrainingJobSpec spec = MoonsSpec(dataset.id(), 2, kBatch, {1, 3, 5});
    spec.set_seed(seed);
    spec.mutable_optimizer()->set_learning_rate(0.05);  // boxes narrow enough to certify
    const std::string original = TrainModel(*client_, spec, kTrainer);
    ASSERT_FALSE(original.empty());

    // At most 3 rows of every batch (exactly 3 in batches 0 and 5), at random,
    // and two rows of the tail, which count 0.
    agt::Rng rng(seed * 1000 + 7);
    std::vector<int64_t> deleted;
    for (int k = 0; k < kRows / kBatch; ++k) {
      const int count = (k == 0 || k == 5) ? 3 : static_cast<int>(rng.UniformInt(4));
      std::vector<int64_t> rows;
      while (static_cast<int>(rows.size()) < count) {
        const int64_t row = k * kBatch + static_cast<int64_t>(rng.UniformInt(kBatch));
        if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
      }
      deleted.insert(deleted.end(), rows.begin(), rows.end());
    }
    deleted.insert(deleted.end(), {403, 409});
    std::sort(deleted.begin(), deleted.end());
    ASSERT_GT(deleted.size(), 5u + 2u) << "more than max N in total";

    // Three requests, each with its own request id; the second is retried.
    const size_t third = deleted.size() / 3;
    agt::v1::RequestDeletionResponse last;
    for (int part = 0; part < 3; ++part) {
      agt::v1::RequestDeletionRequest request;
      request.set_model_id(original);
      const auto begin = deleted.begin() + static_cast<long>(part * third);
      const auto end = part == 2 ? deleted.end() : begin + static_cast<long>(third);
      request.mutable_row_ids()->Add(begin, end);
      request.set_request_id(absl::StrCat("seed-", seed, "-part-", part));
      agt::v1::RequestDeletionResponse response;
      grpc::Status s = unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &response);
      ASSERT_TRUE(s.ok()) << s.error_message();
      ASSERT_TRUE(response.accepted()) << response.message();
      if (part == 1) {
        agt::v1::RequestDeletionResponse retry;
        s = unlearning_->RequestDeletion(Ctx(kTrainer).get(), request, &retry);
        ASSERT_TRUE(s.ok()) << s.error_message();
        EXPECT_EQ(retry.SerializeAsString(), response.SerializeAsString());
      }
      last = response;
    }
    EXPECT_EQ(last.deletions(), static_cast<int64_t>(deleted.size()));
    EXPECT_EQ(last.max_deletions_per_batch(), 3);
    agt::v1::ListDeletionsRequest list;
    list.set_model_id(original);
    list.set_page_size(1000);
    agt::v1::ListDeletionsResponse ledger;
    ASSERT_TRUE(unlearning_->ListDeletions(Ctx(kQuerier).get(), list, &ledger).ok());
    EXPECT_EQ(ledger.deletions_size(), static_cast<int>(deleted.size())) << "recorded once";
    for (const agt::v1::Deletion& d : ledger.deletions()) {
      EXPECT_EQ(d.batch(), d.row_id() < 400 ? d.row_id() / kBatch : -1) << d.row_id();
    }

    // Queries: training rows and points around them.
    const agt::Dataset data = agt::MakeMoons(kRows, 0.1, 10 + seed);
    agt::v1::Matrix queries;
    queries.set_cols(2);
    for (int i = 0; i < kRows; ++i) {
      queries.add_values(data.x(i, 0));
      queries.add_values(data.x(i, 1));
    }
    for (int i = 0; i < 300; ++i) {
      queries.add_values(rng.Uniform(-1.5, 2.5));
      queries.add_values(rng.Uniform(-1.0, 1.5));
    }
    queries.set_rows(queries.values_size() / 2);
    agt::v1::CheckUnlearningRequest check;
    check.set_model_id(original);
    *check.mutable_inputs() = queries;
    agt::v1::CheckUnlearningResponse checked;
    grpc::Status s = unlearning_->CheckUnlearning(Ctx(kQuerier).get(), check, &checked);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(checked.points_size(), queries.rows());
    EXPECT_EQ(checked.max_deletions_per_batch(), 3);

    // Retrain in place through the service.
    agt::v1::RetrainInPlaceRequest retrain;
    retrain.set_model_id(original);
    agt::v1::RetrainInPlaceResponse retrained;
    s = unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &retrained);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const agt::v1::Job job = WaitForFinal(*client_, retrained.job_id(), kTrainer);
    ASSERT_EQ(job.state(), agt::v1::JOB_STATE_SUCCEEDED) << job.error();
    EXPECT_EQ(job.spec().dataset_id(), dataset.id());
    EXPECT_EQ(std::vector<int64_t>(job.spec().removed_rows().begin(),
                                   job.spec().removed_rows().end()),
              deleted);
    const std::string successor = job.model_id();

    // The successor's parameters lie in the original's box of budget 3 (m)
    // and of every larger budget.
    const agt::v1::ExportModelResponse before = Export(original);
    const agt::v1::ExportModelResponse after = Export(successor);
    const std::vector<double> theta = Flatten(after.model().nominal());
    int boxes_checked = 0;
    for (const agt::v1::BudgetBox& box : before.boxes()) {
      if (box.budget().n() < 3) continue;
      ++boxes_checked;
      const std::vector<double> lower = Flatten(box.lower());
      const std::vector<double> upper = Flatten(box.upper());
      ASSERT_EQ(theta.size(), lower.size());
      for (size_t i = 0; i < theta.size(); ++i) {
        const double tol = 1e-9 * (1.0 + std::abs(theta[i]));
        EXPECT_GE(theta[i], lower[i] - tol) << "n " << box.budget().n() << " parameter " << i;
        EXPECT_LE(theta[i], upper[i] + tol) << "n " << box.budget().n() << " parameter " << i;
      }
    }
    EXPECT_EQ(boxes_checked, 2);

    // Every prediction certified unchanged is the successor's.
    const agt::v1::CertifyPredictionsResponse served = Certify(successor, queries);
    ASSERT_EQ(served.points_size(), queries.rows());
    int64_t certified = 0;
    for (int i = 0; i < checked.points_size(); ++i) {
      if (!checked.points(i).certified_unchanged()) continue;
      ++certified;
      EXPECT_EQ(checked.points(i).predicted_class(), served.points(i).predicted_class())
          << "query " << i << " was certified unchanged";
    }
    EXPECT_GT(certified, queries.rows() / 10) << "too few certificates to test anything";
    certified_total += certified;
    queries_total += queries.rows();
  }
  std::printf("certified unchanged and checked against the in-place successor: %ld of %ld\n",
              static_cast<long>(certified_total), static_cast<long>(queries_total));
}

// The retraining the service enqueues is admitted like a submitted job: with
// the tenant at its --max-jobs-per-tenant limit it is refused up front
// (RESOURCE_EXHAUSTED naming the limit), nothing is enqueued, and once the
// tenant's other job is gone the same request enqueues it.
TEST_F(UnlearningInPlaceE2eTest, ARetrainingIsAdmittedLikeASubmittedJob) {
  server_.reset();
  server_ = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server_->Start(ServerArgs(dir_->File("limits.db"),
                                        {"--tokens", dir_->File("tokens"),
                                         "--max-jobs-per-tenant", "1"}),
                             dir_->File("limits.err")))
      << ReadFileText(dir_->File("limits.err"));
  client_ = std::make_unique<Client>(server_->address());
  unlearning_ = agt::v1::UnlearningService::NewStub(client_->channel);

  const agt::v1::Dataset dataset = UploadMoons(*client_, kRows, 5, kTrainer, "moons");
  const std::string original = TrainModel(*client_, MoonsSpec(dataset.id(), 1, kBatch), kTrainer);
  ASSERT_FALSE(original.empty());
  agt::v1::Job blocker;
  ASSERT_TRUE(Submit(*client_, LongRunningSpec(dataset.id()), &blocker, kTrainer).ok());

  agt::v1::RequestDeletionRequest deletion;
  deletion.set_model_id(original);
  deletion.add_row_ids(3);
  agt::v1::RequestDeletionResponse deleted;
  ASSERT_TRUE(unlearning_->RequestDeletion(Ctx(kTrainer).get(), deletion, &deleted).ok());

  agt::v1::RetrainInPlaceRequest retrain;
  retrain.set_model_id(original);
  agt::v1::RetrainInPlaceResponse refused;
  grpc::Status s = unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("--max-jobs-per-tenant is 1"), std::string::npos)
      << s.error_message();
  agt::v1::ListJobsRequest list;
  agt::v1::ListJobsResponse jobs;
  ASSERT_TRUE(client_->training->ListJobs(Ctx(kTrainer).get(), list, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 2) << "the refused retraining enqueued nothing";

  agt::v1::CancelJobRequest cancel;
  cancel.set_job_id(blocker.id());
  agt::v1::CancelJobResponse cancelled;
  ASSERT_TRUE(client_->training->CancelJob(Ctx(kTrainer).get(), cancel, &cancelled).ok());
  ASSERT_EQ(WaitForFinal(*client_, blocker.id(), kTrainer).state(), agt::v1::JOB_STATE_CANCELLED);
  agt::v1::RetrainInPlaceResponse enqueued;
  s = unlearning_->RetrainInPlace(Ctx(kTrainer).get(), retrain, &enqueued);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(enqueued.enqueued());
  EXPECT_EQ(WaitForFinal(*client_, enqueued.job_id(), kTrainer).state(),
            agt::v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace agt::e2e
