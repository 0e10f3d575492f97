// The bounded width history (server/jobs/width_history.h) and its storage
// (Store: progress, checkpoint and completion writes; GetWidthHistory), and
// the job warnings stored by CompleteJob, on a real SQLite file.
#include "server/jobs/width_history.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/store.h"

namespace agt::server {
namespace {

namespace fs = std::filesystem;

WidthPointRecord Point(int64_t i) {
  // Values that are a function of the iteration, so a point can be checked
  // against the iteration it claims to be.
  return WidthPointRecord{i,
                          static_cast<int>((i - 1) / 7),
                          1.0 / static_cast<double>(i),
                          {0.0, 0.5 * static_cast<double>(i), std::exp2(i % 60)}};
}

void ExpectWellFormed(const WidthHistoryRecord& h, int max_points, int64_t last) {
  ASSERT_FALSE(h.points.empty());
  EXPECT_LE(static_cast<int>(h.points.size()), max_points);
  EXPECT_EQ(h.points.front().iteration, 1);
  EXPECT_EQ(h.points.back().iteration, last);
  for (size_t i = 0; i < h.points.size(); ++i) {
    const WidthPointRecord& p = h.points[i];
    const WidthPointRecord want = Point(p.iteration);
    EXPECT_EQ(p.epoch, want.epoch);
    EXPECT_EQ(p.nominal_loss, want.nominal_loss);
    EXPECT_EQ(p.total_width, want.total_width);
    if (i == 0) continue;
    EXPECT_GT(p.iteration, h.points[i - 1].iteration);
    // Evenly spaced: every gap is the stride, except before a final point
    // off the grid, which is shorter.
    const int64_t gap = p.iteration - h.points[i - 1].iteration;
    if (i + 1 < h.points.size()) {
      EXPECT_EQ(gap, h.stride) << "between points " << i - 1 << " and " << i;
    } else {
      EXPECT_LE(gap, h.stride);
    }
  }
}

TEST(WidthHistoryTest, KeepsEveryIterationWhileThereIsRoom) {
  WidthHistory history(16);
  for (int64_t i = 1; i <= 16; ++i) history.Offer(Point(i));
  history.Finish(Point(16));
  EXPECT_EQ(history.record().stride, 1);
  ASSERT_EQ(history.record().points.size(), 16u);
  ExpectWellFormed(history.record(), 16, 16);
}

TEST(WidthHistoryTest, StaysBoundedAndEvenAndCoversFirstToLastIteration) {
  for (int64_t total : {17, 31, 32, 33, 100, 1000, 4097, 10007}) {
    SCOPED_TRACE(absl::StrCat(total, " iterations"));
    WidthHistory history(16);
    for (int64_t i = 1; i <= total; ++i) {
      history.Offer(Point(i));
      ASSERT_LE(static_cast<int>(history.record().points.size()), 16);
    }
    history.Finish(Point(total));
    ExpectWellFormed(history.record(), 16, total);
    // Half full at least: decimation never throws away more than it must.
    EXPECT_GE(history.record().points.size(), 8u);
  }
}

TEST(WidthHistoryTest, TheDefaultLimitIsKMaxHistoryPoints) {
  WidthHistory history;
  EXPECT_EQ(history.max_points(), kMaxHistoryPoints);
  for (int64_t i = 1; i <= 5000; ++i) history.Offer(Point(i));
  history.Finish(Point(5000));
  ExpectWellFormed(history.record(), kMaxHistoryPoints, 5000);
  EXPECT_GT(history.record().points.size(), static_cast<size_t>(kMaxHistoryPoints / 2));
}

TEST(WidthHistoryTest, ARestoredHistoryGoesOnAsIfUninterrupted) {
  WidthHistory whole(16);
  for (int64_t i = 1; i <= 500; ++i) whole.Offer(Point(i));
  whole.Finish(Point(500));
  for (int64_t checkpoint : {1, 20, 64, 65, 257, 499}) {
    SCOPED_TRACE(absl::StrCat("checkpoint at ", checkpoint));
    WidthHistory first(16);
    for (int64_t i = 1; i <= checkpoint; ++i) first.Offer(Point(i));
    WidthHistory resumed(16);
    resumed.Restore(first.record(), checkpoint);
    for (int64_t i = checkpoint + 1; i <= 500; ++i) resumed.Offer(Point(i));
    resumed.Finish(Point(500));
    EXPECT_EQ(resumed.record().stride, whole.record().stride);
    ASSERT_EQ(resumed.record().points.size(), whole.record().points.size());
    for (size_t k = 0; k < whole.record().points.size(); ++k) {
      EXPECT_EQ(resumed.record().points[k].iteration, whole.record().points[k].iteration);
    }
  }
}

TEST(WidthHistoryTest, RestoreDropsPointsRecordedAfterTheCheckpoint) {
  // Progress writes come more often than checkpoints: the stored history may
  // be ahead of the checkpoint a crashed job resumes from.
  WidthHistory ahead(16);
  for (int64_t i = 1; i <= 300; ++i) ahead.Offer(Point(i));
  WidthHistory resumed(16);
  resumed.Restore(ahead.record(), 100);
  for (const WidthPointRecord& p : resumed.record().points) EXPECT_LE(p.iteration, 100);
  for (int64_t i = 101; i <= 700; ++i) resumed.Offer(Point(i));
  resumed.Finish(Point(700));
  ExpectWellFormed(resumed.record(), 16, 700);
}

TEST(WidthHistoryTest, VersionChangesOnlyWhenAPointIsKeptOrDropped) {
  WidthHistory history(4);
  const int64_t v0 = history.version();
  history.Offer(Point(1));
  const int64_t v1 = history.version();
  EXPECT_NE(v1, v0);
  history.Offer(Point(1));  // not increasing: ignored
  EXPECT_EQ(history.version(), v1);
  for (int64_t i = 2; i <= 4; ++i) history.Offer(Point(i));
  const int64_t full = history.version();
  history.Offer(Point(5));  // decimates to 1, 3 and keeps 5 (stride 2)
  EXPECT_NE(history.version(), full);
  const int64_t after = history.version();
  history.Offer(Point(6));  // not due at stride 2
  EXPECT_EQ(history.version(), after);
}

// ---- storage

class StoredHistoryTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::path(testing::TempDir()) /
        absl::StrCat("agt_history_", testing::UnitTest::GetInstance()->current_test_info()->name(),
                     "_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Reopen();
    agt::Dataset data;
    data.x = Matrix::Constant(4, 2, 0.5);
    data.y = Vector::Zero(4);
    data.num_classes = 2;
    DatasetRecord d;
    d.tenant = "t";
    d.name = "d";
    absl::StatusOr<DatasetRecord> stored = store_->InsertDataset(d, data);
    ASSERT_TRUE(stored.ok()) << stored.status();
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = stored->id;
    j.name = "job";
    j.spec = "spec";
    absl::StatusOr<JobRecord> job = store_->InsertJob(j);
    ASSERT_TRUE(job.ok()) << job.status();
    job_ = *job;
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open((dir_ / "agt.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  static WidthHistoryRecord History(int64_t up_to) {
    WidthHistory h(16);
    for (int64_t i = 1; i <= up_to; ++i) h.Offer(Point(i));
    return h.record();
  }
  static void ExpectSame(const WidthHistoryRecord& a, const WidthHistoryRecord& b) {
    EXPECT_EQ(a.stride, b.stride);
    ASSERT_EQ(a.points.size(), b.points.size());
    for (size_t i = 0; i < a.points.size(); ++i) {
      EXPECT_EQ(a.points[i].iteration, b.points[i].iteration);
      EXPECT_EQ(a.points[i].epoch, b.points[i].epoch);
      EXPECT_EQ(a.points[i].nominal_loss, b.points[i].nominal_loss);
      EXPECT_EQ(a.points[i].total_width, b.points[i].total_width);
    }
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  JobRecord job_;
};

TEST_F(StoredHistoryTest, AJobWithoutHistoryHasNoPoints) {
  absl::StatusOr<WidthHistoryRecord> h = store_->GetWidthHistory(job_.id, &job_.tenant);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->points.empty());
  EXPECT_EQ(h->stride, 1);
}

TEST_F(StoredHistoryTest, ProgressCheckpointAndCompletionWritesReplaceTheHistory) {
  JobProgressRecord progress;
  progress.iteration = 40;
  progress.total_width = {1, 2, 3};
  const WidthHistoryRecord at40 = History(40);
  ASSERT_TRUE(store_->UpdateJobProgress(job_.id, progress, 0, &at40).ok());
  ExpectSame(*store_->GetWidthHistory(job_.id, &job_.tenant), at40);
  // Without a history, a progress write leaves the stored one alone.
  ASSERT_TRUE(store_->UpdateJobProgress(job_.id, progress, 0).ok());
  ExpectSame(*store_->GetWidthHistory(job_.id, &job_.tenant), at40);

  agt::TrainState state;
  state.step = 90;
  state.nominal = Vector::Zero(3);
  const WidthHistoryRecord at90 = History(90);
  ASSERT_TRUE(store_->SaveCheckpoint(job_.id, state, progress, &at90).ok());
  Reopen();
  ExpectSame(*store_->GetWidthHistory(job_.id, nullptr), at90);

  ModelRecord model;
  model.architecture = ModelSpec::Mlp({2, 1});
  model.input_features = 2;
  model.num_classes = 2;
  model.nominal = Vector::Zero(3);
  model.warnings.push_back({JobWarningCode::kBoundsTooWide, agt::Budget{5, 1}, "too wide"});
  model.warnings.push_back({JobWarningCode::kNothingCertified, std::nullopt, "nothing"});
  const WidthHistoryRecord at120 = History(120);
  absl::StatusOr<std::string> model_id = store_->CompleteJob(job_.id, model, progress, &at120);
  ASSERT_TRUE(model_id.ok()) << model_id.status();
  Reopen();
  ExpectSame(*store_->GetWidthHistory(job_.id, &job_.tenant), at120);

  // The warnings come back on the job and on its model, in order.
  for (const std::vector<JobWarningRecord>& warnings :
       {store_->GetJob("t", job_.id)->warnings, store_->GetModel("t", *model_id)->warnings}) {
    ASSERT_EQ(warnings.size(), 2u);
    EXPECT_EQ(warnings[0].code, JobWarningCode::kBoundsTooWide);
    ASSERT_TRUE(warnings[0].budget.has_value());
    EXPECT_EQ(warnings[0].budget->n, 5);
    EXPECT_EQ(warnings[0].budget->label_n, 1);
    EXPECT_EQ(warnings[0].message, "too wide");
    EXPECT_EQ(warnings[1].code, JobWarningCode::kNothingCertified);
    EXPECT_FALSE(warnings[1].budget.has_value());
  }
  absl::StatusOr<Page<JobRecord>> listed = store_->ListJobs("t", std::nullopt, 10, "");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].warnings.size(), 2u);
}

TEST_F(StoredHistoryTest, AnotherTenantsOrAnUnknownJobIsNotFound) {
  const std::string other = "u";
  EXPECT_EQ(store_->GetWidthHistory(job_.id, &other).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetWidthHistory("job-nope", nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace agt::server
