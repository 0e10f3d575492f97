// The unlearning domain (server/domain/unlearning.h) on its own: the spec of
// the in-place retraining (the original dataset, removed rows accumulated and
// sorted, budgets that no longer fit every batch dropped, budget 0 when none
// fits, no row left refused), the batches a stored model was trained on, and
// accepted deletions counted per batch from a real store, conservatively once
// the training dataset is deleted.
#include "server/domain/ledgers.h"
#include "server/domain/unlearning.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace agt::server {
namespace {

namespace fs = std::filesystem;
using Rows = std::vector<int64_t>;

agt::v1::TrainingJobSpec Spec(const std::string& dataset_id, std::vector<int> budgets,
                              Rows removed = {}) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name("moons");
  spec.set_dataset_id(dataset_id);
  spec.add_hidden_widths(4);
  spec.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  spec.set_batch_size(10);
  spec.set_epochs(1);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  for (int n : budgets) spec.add_budgets()->set_n(n);
  spec.mutable_removed_rows()->Add(removed.begin(), removed.end());
  return spec;
}

DatasetRecord Dataset(int64_t rows) {
  // Strings assigned as std::string: operator=(const char*) here trips a GCC 12
  // -Wrestrict false positive at -O3.
  DatasetRecord d;
  d.id = std::string("ds-1");
  d.tenant = std::string("t");
  d.num_rows = rows;
  d.num_features = 2;
  d.num_classes = 2;
  return d;
}

ModelRecord Model(const agt::v1::TrainingJobSpec& spec) {
  ModelRecord m;
  m.id = "mdl-1";
  m.dataset_id = spec.dataset_id();
  m.num_classes = 2;
  m.spec = spec.SerializeAsString();
  return m;
}

TEST(PlanInPlaceRetrainingTest, KeepsTheDatasetAndAccumulatesSortedRemovedRows) {
  // 95 rows: 9 batches of 10, rows 90..94 never trained.
  const ModelRecord model = Model(Spec("ds-1", {1, 3}, {5, 41}));
  absl::StatusOr<InPlaceRetraining> plan =
      PlanInPlaceRetraining(model, Dataset(95), {12, 5, 93, 7});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->spec.dataset_id(), "ds-1");
  EXPECT_EQ(Rows(plan->spec.removed_rows().begin(), plan->spec.removed_rows().end()),
            (Rows{5, 7, 12, 41, 93}));
  EXPECT_EQ(plan->budgets, (std::vector<int>{1, 3}));
  EXPECT_TRUE(plan->dropped_budgets.empty());
  EXPECT_EQ(plan->smallest_batch, 8);  // batch 0 lost rows 5 and 7
  EXPECT_EQ(plan->smallest_batch_index, 0);
  EXPECT_TRUE(absl::StrContains(plan->spec.name(), "in place without 5 rows"))
      << plan->spec.name();
}

TEST(PlanInPlaceRetrainingTest, DropsBudgetsThatNoLongerFitEveryBatch) {
  const ModelRecord model = Model(Spec("ds-1", {1, 3, 4}));
  // Batch 2 keeps 4 rows: budgets 4 (and above) cannot be trained.
  absl::StatusOr<InPlaceRetraining> plan =
      PlanInPlaceRetraining(model, Dataset(100), {20, 21, 22, 23, 24, 25});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->budgets, (std::vector<int>{1, 3}));
  EXPECT_EQ(plan->dropped_budgets, (std::vector<int>{4}));
  EXPECT_EQ(plan->spec.budgets_size(), 2);
  // Batch 2 keeps 1 row: only budget 0 is left.
  plan = PlanInPlaceRetraining(model, Dataset(100), {20, 21, 22, 23, 24, 25, 26, 27, 28});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->budgets, (std::vector<int>{0}));
  EXPECT_EQ(plan->dropped_budgets, (std::vector<int>{1, 3, 4}));
  // An empty batch is skipped, so it does not count as the smallest.
  plan = PlanInPlaceRetraining(model, Dataset(100), {20, 21, 22, 23, 24, 25, 26, 27, 28, 29});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->budgets, (std::vector<int>{1, 3, 4}));
}

TEST(PlanInPlaceRetrainingTest, NoRowLeftOrAForeignRowIsAFailedPrecondition) {
  const ModelRecord model = Model(Spec("ds-1", {1}));
  Rows all;
  for (int64_t r = 0; r < 30; ++r) all.push_back(r);
  absl::StatusOr<InPlaceRetraining> plan = PlanInPlaceRetraining(model, Dataset(35), all);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "leave no row")) << plan.status();
  plan = PlanInPlaceRetraining(model, Dataset(35), {35});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "removed_rows")) << plan.status();
}

class DeletionCountTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) / absl::StrCat("agt_unlearning_domain_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open((dir_ / "agt.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    agt::Dataset data;
    data.x = agt::Matrix::Zero(95, 2);
    data.y = agt::Vector::Zero(95);
    for (int r = 0; r < 95; ++r) data.y[r] = r % 2;
    data.num_classes = 2;
    DatasetRecord d;
    d.tenant = "t";
    d.name = "data";
    absl::StatusOr<DatasetRecord> dataset = store_->InsertDataset(d, data);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    dataset_id_ = dataset->id;
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = dataset_id_;
    j.name = "job";
    j.spec = Spec(dataset_id_, {1, 2}, {3}).SerializeAsString();
    absl::StatusOr<JobRecord> job = store_->InsertJob(j);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(store_->ClaimNextQueuedJob().ok());
    ModelRecord m;
    m.name = "linear";
    m.architecture = ModelSpec::Mlp({2, 1});
    m.input_features = 2;
    m.num_classes = 2;
    m.nominal = agt::Vector::Zero(3);
    for (int n : {1, 2}) {
      BoxRecord box;
      box.budget = {n, 0};
      box.box.lower = agt::Vector::Constant(3, -1.0);
      box.box.upper = agt::Vector::Constant(3, 1.0);
      m.boxes.push_back(box);
    }
    absl::StatusOr<std::string> model = store_->CompleteJob(job->id, m, {});
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<ModelRecord> stored = store_->GetModel("t", *model);
    ASSERT_TRUE(stored.ok()) << stored.status();
    model_ = *stored;
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::string dataset_id_;
  ModelRecord model_;
};

TEST_F(DeletionCountTest, CountsPerTrainedBatchAndConservativelyWithoutTheDataset) {
  absl::StatusOr<agt::BatchPlan> batches = TrainingBatches(model_, 95);
  ASSERT_TRUE(batches.ok()) << batches.status();
  EXPECT_TRUE(batches->IsRemoved(3));
  EXPECT_EQ(batches->RowsIn(0), 9);
  // Row 3 was removed by the training itself: a duplicate. Rows 91..93 are
  // the tail (never trained).
  absl::StatusOr<DeletionAppend> appended =
      AppendDeletions(*store_, "t", model_.id, {1, 2}, *batches, {3, 4, 5, 17, 91, 92, 93}, "x");
  ASSERT_TRUE(appended.ok()) << appended.status();
  ASSERT_TRUE(appended->decision.has_value());
  EXPECT_TRUE(appended->decision->accepted);
  EXPECT_EQ(appended->decision->duplicate_count, 1);
  absl::StatusOr<agt::DeletionCount> d = CountAcceptedDeletions(*store_, "t", model_);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->total, 6);
  EXPECT_EQ(d->max_per_batch, 2);  // 4 and 5 in batch 0
  EXPECT_EQ(d->fullest_batch, 0);
  // Without the dataset the tail is unknown: rows 91..93 count as batch 9.
  ASSERT_TRUE(store_->DeleteDataset("t", dataset_id_).ok());
  d = CountAcceptedDeletions(*store_, "t", model_);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->total, 6);
  EXPECT_EQ(d->max_per_batch, 3);
  EXPECT_EQ(d->fullest_batch, 9);
}

}  // namespace
}  // namespace agt::server
