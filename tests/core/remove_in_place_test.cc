// Removing rows in place (core/train/batches.h, TrainConfig::removed_rows):
// the batches keep their index sets, the retrained model is what a removal
// certificate is about, and the default path does not move by a bit.
//
// - BatchPlan: rows per batch, the dropped tail, the smallest batch, errors.
// - TrainConfig: removed ids and budgets that no longer fit a batch are
//   refused with messages naming the field, the value and the limit.
// - Trainer: no removal, or removal in the dropped tail only, is bit for bit
//   the plain run; an in-place run equals an independent re-implementation
//   (the mean over the rows each batch keeps, same step counter); an empty
//   batch is a step without update; budget 0 is the nominal trajectory.
// - The property (paper section 5.3, Theorem 6): train under removal budgets,
//   delete rows spread over the batches (adversarially: the largest gradient
//   norms, one class; and at random), retrain for real in place, and the
//   successor's parameters lie in the original's box at n = the most deleted
//   rows in one batch, at every step. The compacted retraining (the dataset
//   without the rows, batches shifted) is a different trajectory, and the
//   negative control shows it escapes those boxes.
// - The successor's own boxes (it was itself trained with removed rows) are
//   sound under removal, substitution and poisoning of its reduced batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/train/batches.h"
#include "core/train/train.h"
#include "core/unlearn/unlearn.h"
#include "tests/core/adversaries.h"
#include "tests/core/perturbed_sgd.h"

namespace agt {
namespace {

using Rows = std::vector<int64_t>;

// ---------------------------------------------------------------------------
// BatchPlan.

TEST(BatchPlanTest, BatchesKeepTheirRowsMinusTheRemovedOnes) {
  absl::StatusOr<BatchPlan> plan = BatchPlan::Create(23, 5, {7, 0, 22, 9, 8});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batches_per_epoch(), 4);
  EXPECT_EQ(plan->dropped_rows(), 3);  // rows 20, 21, 22 (22 removed too)
  EXPECT_EQ(plan->removed_rows(), (Rows{0, 7, 8, 9, 22}));
  EXPECT_TRUE(plan->changes_batches());
  EXPECT_EQ(plan->Rows(0), (std::vector<Index>{1, 2, 3, 4}));
  EXPECT_EQ(plan->Rows(1), (std::vector<Index>{5, 6}));
  EXPECT_EQ(plan->Rows(2), (std::vector<Index>{10, 11, 12, 13, 14}));
  EXPECT_EQ(plan->RowsIn(0), 4);
  EXPECT_EQ(plan->RowsIn(1), 2);
  EXPECT_EQ(plan->RowsIn(3), 5);
  EXPECT_EQ(plan->SmallestBatch(), 2);
  EXPECT_EQ(plan->SmallestBatchIndex(), 1);
  EXPECT_EQ(plan->BatchOf(0), 0);
  EXPECT_EQ(plan->BatchOf(19), 3);
  EXPECT_EQ(plan->BatchOf(20), -1);
  EXPECT_TRUE(plan->IsRemoved(22));
  EXPECT_FALSE(plan->IsRemoved(21));
}

TEST(BatchPlanTest, TheSmallestBatchIgnoresEmptyBatches) {
  absl::StatusOr<BatchPlan> plan = BatchPlan::Create(9, 3, {0, 1, 2, 4});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->Rows(0).empty());
  EXPECT_EQ(plan->SmallestBatch(), 2);
  EXPECT_EQ(plan->SmallestBatchIndex(), 1);
  absl::StatusOr<BatchPlan> whole = BatchPlan::Create(9, 3, {0, 1, 2});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->SmallestBatch(), 3);
  EXPECT_EQ(whole->SmallestBatchIndex(), 1);
  absl::StatusOr<BatchPlan> none = BatchPlan::Create(7, 3, {0, 1, 2, 3, 4, 5});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->SmallestBatch(), 0);
  EXPECT_EQ(none->SmallestBatchIndex(), -1);
  absl::StatusOr<BatchPlan> tail = BatchPlan::Create(7, 3, {6});
  ASSERT_TRUE(tail.ok());
  EXPECT_FALSE(tail->changes_batches());
  EXPECT_EQ(tail->SmallestBatch(), 3);
}

TEST(BatchPlanTest, BadIdsAreRefusedByPosition) {
  absl::StatusOr<BatchPlan> out = BatchPlan::Create(10, 3, {1, 10});
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(out.status().message()),
            "removed_rows[1]: 10 is outside the dataset's 10 rows (0..9)");
  out = BatchPlan::Create(10, 3, {4, -1});
  EXPECT_TRUE(absl::StrContains(out.status().message(), "removed_rows[1]: -1")) << out.status();
  out = BatchPlan::Create(10, 3, {4, 2, 4});
  EXPECT_EQ(std::string(out.status().message()), "removed_rows[2]: 4 is repeated (also removed_rows[0])");
  EXPECT_EQ(BatchPlan::Create(10, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Configuration and trainer semantics.

Dataset Moons(int n, uint64_t seed) {
  Dataset d = MakeMoons(n, 0.1, seed);
  d.x = PolynomialFeatures(d.x, 3);
  return d;
}

TrainConfig MlpConfig(PerturbationKind kind, std::vector<Budget> budgets) {
  TrainConfig c;
  c.model = ModelSpec::Mlp({9, 8, 1});
  c.loss = LossKind::kBinaryCrossEntropy;
  c.batch_size = 20;
  c.epochs = 3;
  c.optimizer.learning_rate = 0.5;
  c.optimizer.lr_decay = 0.1;
  c.perturbation.kind = kind;
  if (kind == PerturbationKind::kSubstitution) c.clip_gamma = 1.0;
  if (kind == PerturbationKind::kBoundedPoisoning) c.perturbation.epsilon = 0.01;
  c.budgets = std::move(budgets);
  c.threads = 1;
  return c;
}

TEST(RemovedRowsConfigTest, BudgetsMustFitEveryBatchAsTrained) {
  TrainConfig c = MlpConfig(PerturbationKind::kRemoval, {{1, 0}, {5, 0}});
  c.removed_rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 47};  // batch 0 keeps 4
  absl::Status s = c.Validate(9, 2, 100);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()),
            "budgets[1].n: batch 0 keeps 5 of its 20 rows after removed_rows; the removal budget 5 "
            "must be below every trained batch's size");
  c.budgets = {{1, 0}, {4, 0}};
  EXPECT_TRUE(c.Validate(9, 2, 100).ok()) << c.Validate(9, 2, 100);

  TrainConfig p = MlpConfig(PerturbationKind::kBoundedPoisoning, {{6, 0}});
  p.removed_rows = c.removed_rows;
  s = p.Validate(9, 2, 100);
  EXPECT_EQ(std::string(s.message()),
            "budgets[0]: 6 poisoned rows per batch exceed the batch: batch 0 keeps 5 of its 20 "
            "rows after removed_rows");
  p.budgets = {{5, 0}};
  EXPECT_TRUE(p.Validate(9, 2, 100).ok());
}

TEST(RemovedRowsConfigTest, BadIdsAndNothingLeftAreRefused) {
  TrainConfig c = MlpConfig(PerturbationKind::kRemoval, {{1, 0}});
  c.removed_rows = {3, -2};
  EXPECT_EQ(std::string(c.ValidateTraining().message()), "removed_rows[1]: -2 must be >= 0");
  c.removed_rows = {3, 100};
  EXPECT_EQ(std::string(c.Validate(9, 2, 100).message()),
            "removed_rows[1]: 100 is outside the dataset's 100 rows (0..99)");
  c.removed_rows.clear();
  for (int64_t r = 0; r < 40; ++r) c.removed_rows.push_back(r);
  EXPECT_EQ(std::string(c.Validate(9, 2, 45).message()),
            "removed_rows: 40 ids remove every row of the 2 trained batches of 20 rows; nothing "
            "would be trained");
}

TrainState TrainToEnd(const TrainConfig& c, const Dataset& data, const Vector& init) {
  absl::StatusOr<TrainResult> r = Train(c, data, init);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->state : TrainState{};
}

void ExpectBitIdentical(const TrainState& a, const TrainState& b) {
  ASSERT_EQ(a.boxes.size(), b.boxes.size());
  EXPECT_EQ(a.step, b.step);
  EXPECT_TRUE((a.nominal.array() == b.nominal.array()).all());
  for (size_t j = 0; j < a.boxes.size(); ++j) {
    EXPECT_TRUE((a.boxes[j].lower.array() == b.boxes[j].lower.array()).all()) << j;
    EXPECT_TRUE((a.boxes[j].upper.array() == b.boxes[j].upper.array()).all()) << j;
  }
}

class PlainPathTest : public ::testing::TestWithParam<PerturbationKind> {};

TEST_P(PlainPathTest, NoRemovalOrTailOnlyRemovalIsBitForBitThePlainRun) {
  const Dataset data = Moons(205, 3);  // 10 batches of 20, rows 200..204 dropped
  TrainConfig plain = MlpConfig(GetParam(), {{0, 0}, {2, 0}, {5, 0}});
  const Vector init = InitParameters(plain.model, 11);
  const TrainState reference = TrainToEnd(plain, data, init);
  TrainConfig tail = plain;
  tail.removed_rows = {204, 200, 202};
  ExpectBitIdentical(TrainToEnd(tail, data, init), reference);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, PlainPathTest,
                         ::testing::Values(PerturbationKind::kRemoval,
                                           PerturbationKind::kSubstitution,
                                           PerturbationKind::kBoundedPoisoning));

// An independent re-implementation of in-place removal: plain SGD where batch
// k is rows [k b, (k+1) b) minus `removed`, the direction the mean over the
// kept rows, an empty batch no update, the step counter t over all epochs.
// `edit` (may be empty) changes the kept rows of a step (a perturbation of the
// retrained model's batches).
using BatchEdit = std::function<void(int64_t step, Matrix* x, Vector* y)>;

std::vector<Vector> InPlaceReference(const TrainConfig& c, const Dataset& data, const Vector& init,
                                     const Rows& removed, const BatchEdit& edit = nullptr) {
  const int b = c.batch_size;
  const int64_t batches = data.size() / b;
  Vector theta = init, velocity;
  std::vector<Vector> out;
  for (int64_t t = 0; t < batches * c.epochs; ++t) {
    const int64_t k = t % batches;
    std::vector<Index> kept;
    for (Index r = k * b; r < (k + 1) * b; ++r) {
      if (std::find(removed.begin(), removed.end(), r) == removed.end()) kept.push_back(r);
    }
    if (!kept.empty()) {
      Matrix x(static_cast<Index>(kept.size()), data.dim());
      Vector y(static_cast<Index>(kept.size()));
      for (size_t i = 0; i < kept.size(); ++i) {
        x.row(static_cast<Index>(i)) = data.x.row(kept[i]);
        y(static_cast<Index>(i)) = data.y(kept[i]);
      }
      if (edit) edit(t, &x, &y);
      const Matrix g = agt_test::StepGradients(c, theta, x, y);
      const Vector direction = g.colwise().sum().transpose() / static_cast<double>(kept.size());
      ApplyNominalUpdate(c.optimizer, t, direction, &theta, &velocity);
    }
    out.push_back(theta);
  }
  return out;
}

double MaxRelativeDifference(const Vector& a, const Vector& b) {
  return ((a - b).array().abs() / (1.0 + a.array().abs())).maxCoeff();
}

TEST(InPlaceTrainerTest, MatchesTheIndependentDefinitionAndSkipsEmptyBatches) {
  const Dataset data = Moons(200, 5);
  TrainConfig c = MlpConfig(PerturbationKind::kRemoval, {{0, 0}, {2, 0}});
  // Batch 1 loses every row; the others lose 0..3 rows.
  c.removed_rows = {3, 17, 42, 43, 44, 99, 150, 151};
  for (int64_t r = 20; r < 40; ++r) c.removed_rows.push_back(r);
  const Vector init = InitParameters(c.model, 2);
  const agt_test::CertifiedTrajectory run = agt_test::RunCertifiedTraining(c, data, init);
  ASSERT_TRUE(run.error.empty()) << run.error;
  const std::vector<Vector> reference = InPlaceReference(c, data, init, c.removed_rows);
  ASSERT_EQ(run.nominal.size(), reference.size());
  for (size_t t = 0; t < reference.size(); ++t) {
    EXPECT_LT(MaxRelativeDifference(run.nominal[t], reference[t]), 1e-12) << "step " << t;
    // Budget 0 under removal is the nominal trajectory, bit for bit.
    EXPECT_TRUE((run.boxes[t][0].lower.array() == run.nominal[t].array()).all()) << t;
    EXPECT_TRUE((run.boxes[t][0].upper.array() == run.nominal[t].array()).all()) << t;
    if (t % 10 == 1) {  // the empty batch: nothing moves
      EXPECT_TRUE((run.nominal[t].array() == run.nominal[t - 1].array()).all()) << t;
      EXPECT_TRUE((run.boxes[t][1].lower.array() == run.boxes[t - 1][1].lower.array()).all());
      EXPECT_TRUE((run.boxes[t][1].upper.array() == run.boxes[t - 1][1].upper.array()).all());
    }
  }
}

// ---------------------------------------------------------------------------
// The property: the original's box at n = max per batch contains the in-place
// successor.

enum class Choice { kLargestGradient, kOneClass, kRandom };

std::string ChoiceName(Choice c) {
  switch (c) {
    case Choice::kLargestGradient:
      return "largest-gradient";
    case Choice::kOneClass:
      return "one-class";
    case Choice::kRandom:
      return "random";
  }
  return "?";
}

// Up to n rows of every batch (exactly n in at least one), chosen by `how`.
Rows ChooseDeletions(const TrainConfig& c, const Dataset& data, const Vector& theta, int n,
                     Choice how, uint64_t seed) {
  Rng rng(seed);
  const int b = c.batch_size;
  const int64_t batches = data.size() / b;
  Vector score(data.size());
  if (how == Choice::kLargestGradient) {
    Matrix g;
    PerSampleGradients(c.model, theta, data.x, data.y, c.loss, &g, nullptr);
    score = g.rowwise().norm();
  } else {
    for (Index i = 0; i < data.size(); ++i) {
      score(i) = how == Choice::kOneClass ? (data.y(i) == 0.0 ? 1.0 + rng.Uniform() : 0.0)
                                          : rng.Uniform();
    }
  }
  Rows out;
  for (int64_t k = 0; k < batches; ++k) {
    const int m = k == 0 ? n : agt_test::RandomCount(rng, n);
    const Vector s = score.segment(k * b, b);
    for (Index r : agt_test::TopRows(s, m)) {
      // One class: no row of the class left in this batch.
      if (how != Choice::kOneClass || s(r) != 0.0) out.push_back(k * b + r);
    }
  }
  return out;
}

struct Case {
  std::string name;
  Dataset data;
  TrainConfig config;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  {
    Case c{"moons-mlp", Moons(200, 1), MlpConfig(PerturbationKind::kRemoval, {})};
    c.config.budgets = {{1, 0}, {2, 0}, {4, 0}};
    out.push_back(std::move(c));
  }
  {
    Case c{"blobs-ce", MakeBlobs(246, 4, 3, 1.5, 4.0, 9), {}};  // 12 batches, tail of 6
    c.config = MlpConfig(PerturbationKind::kRemoval, {{1, 0}, {3, 0}});
    c.config.model = ModelSpec::Mlp({4, 10, 3});
    c.config.loss = LossKind::kCrossEntropy;
    c.config.optimizer.learning_rate = 0.2;
    out.push_back(std::move(c));
  }
  {
    Case c{"moons-linear-l2", Moons(160, 4), MlpConfig(PerturbationKind::kRemoval, {})};
    c.config.model = ModelSpec::Mlp({9, 1});
    c.config.batch_size = 16;
    c.config.optimizer.l2 = 0.01;
    c.config.budgets = {{2, 0}, {3, 0}};
    out.push_back(std::move(c));
  }
  return out;
}

// Every step of `successor` lies in the original's box of `budget_index`.
std::string FirstEscape(const agt_test::CertifiedTrajectory& original, size_t budget_index,
                        const std::vector<Vector>& successor) {
  for (size_t t = 0; t < successor.size(); ++t) {
    const std::string outside = agt_test::OutsideBox(original.boxes[t][budget_index], successor[t]);
    if (!outside.empty()) return "step " + std::to_string(t + 1) + ": " + outside;
  }
  return "";
}

TEST(InPlaceRemovalSoundnessTest, RetrainingInPlaceStaysInTheBoxOfTheFullestBatch) {
  int checked = 0, compacted_escapes = 0, compacted_runs = 0;
  for (const Case& k : Cases()) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      const Vector init = InitParameters(k.config.model, 100 + seed);
      const agt_test::CertifiedTrajectory original =
          agt_test::RunCertifiedTraining(k.config, k.data, init);
      ASSERT_TRUE(original.error.empty()) << original.error;
      absl::StatusOr<BatchPlan> plan =
          BatchPlan::Create(k.data.size(), k.config.batch_size, {});
      ASSERT_TRUE(plan.ok());
      for (size_t j = 0; j < k.config.budgets.size(); ++j) {
        const int n = k.config.budgets[j].n;
        for (Choice how : {Choice::kLargestGradient, Choice::kOneClass, Choice::kRandom}) {
          const Rows deleted =
              ChooseDeletions(k.config, k.data, init, n, how, seed * 31 + j * 7 + 1);
          const DeletionCount count = CountPerBatch(*plan, deleted);
          const std::string what = k.name + " seed " + std::to_string(seed) + " n " +
                                   std::to_string(n) + " " + ChoiceName(how) + " (" +
                                   std::to_string(count.total) + " rows deleted)";
          ASSERT_EQ(count.max_per_batch, n) << what;
          // Spread out: more rows in total than the largest budget.
          if (n >= 2) {
            ASSERT_GT(count.total, k.config.budgets.back().n) << what;
          }
          // Retrain for real, in place, through the trainer.
          TrainConfig retrain = k.config;
          retrain.removed_rows = deleted;
          retrain.budgets = {{0, 0}};
          const agt_test::CertifiedTrajectory successor =
              agt_test::RunCertifiedTraining(retrain, k.data, init);
          ASSERT_TRUE(successor.error.empty()) << what << ": " << successor.error;
          // It is the in-place retraining (the independent definition) ...
          const std::vector<Vector> reference = InPlaceReference(k.config, k.data, init, deleted);
          ASSERT_LT(MaxRelativeDifference(successor.nominal.back(), reference.back()), 1e-12)
              << what;
          // ... inside the box at n = the fullest batch, at every step, and in
          // every larger budget's box.
          for (size_t big = j; big < k.config.budgets.size(); ++big) {
            EXPECT_EQ(FirstEscape(original, big, successor.nominal), std::string()) << what;
          }
          ++checked;
          // The compacted retraining is another trajectory.
          std::vector<Index> keep;
          for (Index r = 0; r < k.data.size(); ++r) {
            if (std::find(deleted.begin(), deleted.end(), r) == deleted.end()) keep.push_back(r);
          }
          const Dataset compacted = k.data.Select(keep);
          TrainConfig plain = k.config;
          plain.budgets = {{0, 0}};
          const agt_test::CertifiedTrajectory shifted =
              agt_test::RunCertifiedTraining(plain, compacted, init);
          ASSERT_TRUE(shifted.error.empty()) << shifted.error;
          EXPECT_GT(MaxRelativeDifference(shifted.nominal.back(), successor.nominal.back()), 1e-9)
              << what << ": the compacted and the in-place retraining coincide";
          const size_t steps = std::min(shifted.nominal.size(), original.boxes.size());
          const std::vector<Vector> prefix(shifted.nominal.begin(),
                                           shifted.nominal.begin() + static_cast<long>(steps));
          ++compacted_runs;
          if (!FirstEscape(original, j, prefix).empty()) ++compacted_escapes;
        }
      }
    }
  }
  std::printf("in-place retrainings checked: %d; compacted retrainings outside the box of the "
              "fullest batch: %d of %d\n",
              checked, compacted_escapes, compacted_runs);
  // Negative control: the compacted retraining, which the service used to
  // run, leaves these boxes (so the test can tell the two apart).
  EXPECT_GT(compacted_escapes, compacted_runs / 4);
}

// ---------------------------------------------------------------------------
// The successor's own certificates: trained with removed rows, its boxes hold
// for perturbations of its reduced batches, normalised by b_k.

TEST(InPlaceRemovalSoundnessTest, TheSuccessorsOwnBoxesHoldForItsReducedBatches) {
  const Dataset data = Moons(200, 8);
  // Batches keep 20, 19, 17 or 15 rows.
  const Rows removed = {0, 1, 2, 3, 4, 25, 47, 48, 49, 60, 61, 62, 140, 199};
  for (PerturbationKind kind : {PerturbationKind::kRemoval, PerturbationKind::kSubstitution,
                                PerturbationKind::kBoundedPoisoning}) {
    TrainConfig c = MlpConfig(kind, {{2, 0}});
    c.removed_rows = removed;
    const Vector init = InitParameters(c.model, 21);
    const agt_test::CertifiedTrajectory run = agt_test::RunCertifiedTraining(c, data, init);
    ASSERT_TRUE(run.error.empty()) << run.error;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      Rng rng(seed * 97 + static_cast<uint64_t>(kind));
      Rows also_removed = removed;
      BatchEdit edit;
      if (kind == PerturbationKind::kRemoval) {
        // Two more rows of every batch, in place.
        for (int64_t k = 0; k < 10; ++k) {
          for (Index r : agt_test::RandomRows(rng, 20, 2)) {
            const int64_t row = k * 20 + r;
            if (std::find(removed.begin(), removed.end(), row) == removed.end()) {
              also_removed.push_back(row);
            }
          }
        }
      } else if (kind == PerturbationKind::kSubstitution) {
        edit = [&rng](int64_t, Matrix* x, Vector* y) {
          for (Index r : agt_test::RandomRows(rng, x->rows(), 2)) {
            for (Index f = 0; f < x->cols(); ++f) (*x)(r, f) = rng.Uniform(-3.0, 3.0);
            (*y)(r) = rng.Uniform() < 0.5 ? 0.0 : 1.0;
          }
        };
      } else {
        edit = [&rng](int64_t, Matrix* x, Vector*) {
          for (Index r : agt_test::RandomRows(rng, x->rows(), 2)) {
            for (Index f = 0; f < x->cols(); ++f) {
              (*x)(r, f) += rng.Uniform() < 0.5 ? -0.01 : 0.01;
            }
          }
        };
      }
      const std::vector<Vector> perturbed = InPlaceReference(c, data, init, also_removed, edit);
      EXPECT_EQ(FirstEscape(run, 0, perturbed), std::string())
          << PerturbationKindName(kind) << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace agt
