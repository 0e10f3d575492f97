// Unlearning gatekeeping (core/unlearn): deletion decisions against a ledger
// (accept while the most deleted rows in one batch stay <= max N, retraining
// required past it, repeats, already deleted rows and rows the training
// removed counted once, unknown rows rejected, the dropped tail counting 0)
// and the per-input "certified unchanged" flags against hand-built stability
// tables.

#include "core/unlearn/unlearn.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace agt {
namespace {

using Rows = std::vector<int64_t>;

const std::vector<int> kBudgets = {1, 2, 4};
constexpr int64_t kRows = 100;

BatchPlan Plan(int batch_size, std::vector<int64_t> removed = {}, int64_t rows = kRows) {
  absl::StatusOr<BatchPlan> plan = BatchPlan::Create(rows, batch_size, std::move(removed));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

// One batch of all 100 rows: per batch = in total.
const BatchPlan kOneBatch = Plan(100);

DeletionDecision Decide(const BatchPlan& plan, const Rows& deleted, const Rows& request) {
  absl::StatusOr<DeletionDecision> d = DecideDeletion(kBudgets, plan, deleted, request);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : DeletionDecision{};
}

TEST(DecideDeletionTest, AcceptsUpToTheLargestBudget) {
  absl::StatusOr<DeletionDecision> first = DecideDeletion(kBudgets, kOneBatch, {}, {7, 3});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->accepted);
  EXPECT_EQ(first->new_rows, (Rows{3, 7}));
  EXPECT_EQ(first->before.total, 0);
  EXPECT_EQ(first->after.total, 2);
  EXPECT_EQ(first->max_budget, 4);

  absl::StatusOr<DeletionDecision> to_max = DecideDeletion(kBudgets, kOneBatch, {3, 7}, {50, 99});
  ASSERT_TRUE(to_max.ok());
  EXPECT_TRUE(to_max->accepted);
  EXPECT_FALSE(to_max->retraining_required());
  EXPECT_EQ(to_max->after.total, 4);
}

TEST(DecideDeletionTest, PastTheLargestBudgetRequiresRetraining) {
  absl::StatusOr<DeletionDecision> past = DecideDeletion(kBudgets, kOneBatch, {3, 7, 50, 99}, {0});
  ASSERT_TRUE(past.ok());
  EXPECT_FALSE(past->accepted);
  EXPECT_TRUE(past->retraining_required());
  EXPECT_EQ(past->before.total, 4);
  EXPECT_EQ(past->after.total, 5);
  EXPECT_EQ(past->new_rows, (Rows{0}));

  // One request that jumps past max N in one go.
  absl::StatusOr<DeletionDecision> jump = DecideDeletion(kBudgets, kOneBatch, {}, {1, 2, 3, 4, 5});
  ASSERT_TRUE(jump.ok());
  EXPECT_TRUE(jump->retraining_required());
  EXPECT_EQ(jump->after.total, 5);
}

TEST(DecideDeletionTest, RepeatsAndAlreadyDeletedRowsCountOnce) {
  absl::StatusOr<DeletionDecision> d =
      DecideDeletion(kBudgets, kOneBatch, {10, 20, 30, 40}, {10, 20, 20, 30, 40, 40});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->new_rows.empty());
  EXPECT_EQ(d->duplicate_count, 6);
  EXPECT_EQ(d->after.total, 4);
  EXPECT_TRUE(d->accepted);  // at max N, nothing new

  absl::StatusOr<DeletionDecision> mixed = DecideDeletion(kBudgets, kOneBatch, {10}, {11, 11, 10, 12});
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed->new_rows, (Rows{11, 12}));
  EXPECT_EQ(mixed->duplicate_count, 2);
  EXPECT_EQ(mixed->after.total, 3);
  EXPECT_TRUE(mixed->accepted);
}

TEST(DecideDeletionTest, UnknownRowIdsAreRejectedByName) {
  for (int64_t bad : {int64_t{-1}, kRows, int64_t{1} << 40}) {
    absl::StatusOr<DeletionDecision> d = DecideDeletion(kBudgets, kOneBatch, {}, {1, bad});
    ASSERT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(d.status().message().find(std::to_string(bad)), std::string::npos)
        << d.status().message();
  }
  EXPECT_EQ(DecideDeletion(kBudgets, kOneBatch, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecideDeletionTest, CorruptLedgerOrBudgetsAreErrors) {
  EXPECT_EQ(DecideDeletion(kBudgets, kOneBatch, {5, 5}, {1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecideDeletion(kBudgets, kOneBatch, {kRows}, {1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecideDeletion({4, 2}, kOneBatch, {}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecideDeletionTest, NoRemovalBudgetsMeansEveryDeletionRetrains) {
  absl::StatusOr<DeletionDecision> d = DecideDeletion({}, kOneBatch, {}, {1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->max_budget, 0);
  EXPECT_TRUE(d->retraining_required());
}

// 100 rows in batches of 10 (no tail) or 12 (8 batches, rows 96..99 the
// dropped tail).
TEST(DecideDeletionTest, CountsDeletionsPerBatchNotInTotal) {
  const BatchPlan plan = Plan(10);
  // Four rows in each of the ten batches: 40 deletions, at most 4 per batch.
  Rows spread;
  for (int64_t k = 0; k < 10; ++k) {
    for (int64_t r = 0; r < 4; ++r) spread.push_back(10 * k + 2 * r);
  }
  const DeletionDecision d = Decide(plan, {}, spread);
  EXPECT_TRUE(d.accepted);
  EXPECT_EQ(d.after.total, 40);
  EXPECT_EQ(d.after.max_per_batch, 4);
  EXPECT_EQ(d.before.max_per_batch, 0);
  EXPECT_EQ(d.max_budget, 4);

  // A fifth row in batch 3 is one too many for max N = 4, even alone.
  const DeletionDecision fifth = Decide(plan, spread, {37});
  EXPECT_TRUE(fifth.retraining_required());
  EXPECT_EQ(fifth.before.max_per_batch, 4);
  EXPECT_EQ(fifth.after.max_per_batch, 5);
  EXPECT_EQ(fifth.after.fullest_batch, 3);
  EXPECT_EQ(fifth.after.total, 41);
  EXPECT_EQ(fifth.new_rows, (Rows{37}));
}

TEST(DecideDeletionTest, TheBoundaryIsTheLargestBudgetInOneBatch) {
  const BatchPlan plan = Plan(10);
  EXPECT_TRUE(Decide(plan, {}, {0, 1, 2, 3}).accepted);         // 4 in batch 0
  EXPECT_FALSE(Decide(plan, {}, {0, 1, 2, 3, 9}).accepted);     // 5 in batch 0
  EXPECT_TRUE(Decide(plan, {}, {0, 1, 2, 3, 10, 11, 12, 13}).accepted);
  // Batch 9 is the last row range [90, 100).
  EXPECT_FALSE(Decide(plan, {90, 91, 92}, {93, 99}).accepted);
  EXPECT_EQ(Decide(plan, {90, 91, 92}, {93, 99}).after.fullest_batch, 9);
}

TEST(DecideDeletionTest, RowsOfTheDroppedTailCountZero) {
  const BatchPlan plan = Plan(12);  // 8 batches of 12: rows 96..99 never trained
  const DeletionDecision d = Decide(plan, {}, {96, 97, 98, 99, 95});
  EXPECT_TRUE(d.accepted);
  EXPECT_EQ(d.after.total, 5);
  EXPECT_EQ(d.after.max_per_batch, 1);  // only row 95 (batch 7) was trained
  EXPECT_EQ(d.after.fullest_batch, 7);
  const DeletionDecision tail_only = Decide(plan, {}, {96, 97, 98, 99});
  EXPECT_EQ(tail_only.after.max_per_batch, 0);
  EXPECT_EQ(tail_only.after.fullest_batch, -1);
  EXPECT_TRUE(tail_only.accepted);
}

TEST(DecideDeletionTest, RowsTheTrainingRemovedAreDuplicates) {
  // A retrained model: rows 0..3 and 50 were removed in place. They are not
  // in it, so deleting them again changes nothing and counts nowhere.
  const BatchPlan plan = Plan(10, {0, 1, 2, 3, 50});
  const DeletionDecision d = Decide(plan, {}, {0, 1, 2, 3, 50, 4});
  EXPECT_EQ(d.new_rows, (Rows{4}));
  EXPECT_EQ(d.duplicate_count, 5);
  EXPECT_EQ(d.after.max_per_batch, 1);
  EXPECT_TRUE(d.accepted);
  // Against its own training: batch 0 now has 6 rows, and max N = 4 more of
  // them may go.
  EXPECT_TRUE(Decide(plan, {4}, {5, 6, 7}).accepted);
  EXPECT_FALSE(Decide(plan, {4}, {5, 6, 7, 8}).accepted);
  // A ledger holding a removed row is corrupt.
  EXPECT_EQ(DecideDeletion(kBudgets, plan, {2}, {9}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CountPerBatchTest, CountsEveryTrainedBatch) {
  const BatchPlan plan = Plan(7);  // 14 batches of 7, rows 98 and 99 dropped
  EXPECT_EQ(CountPerBatch(plan, {}).max_per_batch, 0);
  const DeletionCount c = CountPerBatch(plan, {99, 6, 0, 7, 8, 9, 98, 97});
  EXPECT_EQ(c.total, 8);
  EXPECT_EQ(c.max_per_batch, 3);  // 7, 8, 9 in batch 1
  EXPECT_EQ(c.fullest_batch, 1);
  // Exhaustive over every pair of rows: the count is 2 iff both rows are
  // trained and in the same batch.
  for (int64_t a = 0; a < 100; ++a) {
    for (int64_t b = a + 1; b < 100; ++b) {
      const bool a_trained = a < 98, b_trained = b < 98;
      const int64_t expected =
          a_trained && b_trained && a / 7 == b / 7 ? 2 : (a_trained || b_trained ? 1 : 0);
      ASSERT_EQ(CountPerBatch(plan, {b, a}).max_per_batch, expected) << a << " " << b;
    }
  }
}

// Budgets {1, 2, 4}. Input 0: stable nowhere. 1: only at 1. 2: at 1 and 2.
// 3: at all. 4: only at 4 (flags need not be nested).
const std::vector<std::vector<bool>> kStable = {{false, true, true, true, false},
                                                {false, false, true, true, false},
                                                {false, false, false, true, true}};

std::vector<bool> Certified(int64_t max_per_batch) {
  absl::StatusOr<std::vector<bool>> out = CertifiedUnchanged(kBudgets, kStable, max_per_batch);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<bool>{};
}

TEST(CertifiedUnchangedTest, StableAtSomeTrainedBudgetAtLeastTheDeletionsOfTheFullestBatch) {
  EXPECT_EQ(Certified(0), (std::vector<bool>{true, true, true, true, true}));
  EXPECT_EQ(Certified(1), (std::vector<bool>{false, true, true, true, true}));
  EXPECT_EQ(Certified(2), (std::vector<bool>{false, false, true, true, true}));
  EXPECT_EQ(Certified(3), (std::vector<bool>{false, false, false, true, true}));
  EXPECT_EQ(Certified(4), (std::vector<bool>{false, false, false, true, true}));
  EXPECT_EQ(Certified(5), (std::vector<bool>{false, false, false, false, false}));
}

TEST(CertifiedUnchangedTest, NeverGainsCertificatesAsDeletionsGrow) {
  std::vector<bool> previous = Certified(0);
  for (int64_t d = 1; d <= 6; ++d) {
    const std::vector<bool> now = Certified(d);
    for (size_t i = 0; i < now.size(); ++i) EXPECT_LE(now[i], previous[i]) << d << " " << i;
    previous = now;
  }
}

TEST(CertifiedUnchangedTest, RejectsBadShapesAndCounts) {
  EXPECT_EQ(CertifiedUnchanged(kBudgets, kStable, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CertifiedUnchanged({1, 2}, kStable, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CertifiedUnchanged({1, 2}, {{true}, {true, false}}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CertifiedUnchanged({2, 2}, {{true}, {true}}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agt
