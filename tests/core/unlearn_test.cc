// Unlearning gatekeeping (core/unlearn): deletion decisions against a ledger
// (accept up to max N, retraining required past it, repeats and already
// deleted rows counted once, unknown rows rejected) and the per-input
// "certified unchanged" flags against hand-built stability tables.

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

TEST(DecideDeletionTest, AcceptsUpToTheLargestBudget) {
  absl::StatusOr<DeletionDecision> first = DecideDeletion(kBudgets, kRows, {}, {7, 3});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->accepted);
  EXPECT_EQ(first->new_rows, (Rows{3, 7}));
  EXPECT_EQ(first->d_before, 0);
  EXPECT_EQ(first->d_after, 2);
  EXPECT_EQ(first->max_budget, 4);

  absl::StatusOr<DeletionDecision> to_max = DecideDeletion(kBudgets, kRows, {3, 7}, {50, 99});
  ASSERT_TRUE(to_max.ok());
  EXPECT_TRUE(to_max->accepted);
  EXPECT_FALSE(to_max->retraining_required());
  EXPECT_EQ(to_max->d_after, 4);
}

TEST(DecideDeletionTest, PastTheLargestBudgetRequiresRetraining) {
  absl::StatusOr<DeletionDecision> past = DecideDeletion(kBudgets, kRows, {3, 7, 50, 99}, {0});
  ASSERT_TRUE(past.ok());
  EXPECT_FALSE(past->accepted);
  EXPECT_TRUE(past->retraining_required());
  EXPECT_EQ(past->d_before, 4);
  EXPECT_EQ(past->d_after, 5);
  EXPECT_EQ(past->new_rows, (Rows{0}));

  // One request that jumps past max N in one go.
  absl::StatusOr<DeletionDecision> jump = DecideDeletion(kBudgets, kRows, {}, {1, 2, 3, 4, 5});
  ASSERT_TRUE(jump.ok());
  EXPECT_TRUE(jump->retraining_required());
  EXPECT_EQ(jump->d_after, 5);
}

TEST(DecideDeletionTest, RepeatsAndAlreadyDeletedRowsCountOnce) {
  absl::StatusOr<DeletionDecision> d =
      DecideDeletion(kBudgets, kRows, {10, 20, 30, 40}, {10, 20, 20, 30, 40, 40});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->new_rows.empty());
  EXPECT_EQ(d->duplicate_count, 6);
  EXPECT_EQ(d->d_after, 4);
  EXPECT_TRUE(d->accepted);  // at max N, nothing new

  absl::StatusOr<DeletionDecision> mixed = DecideDeletion(kBudgets, kRows, {10}, {11, 11, 10, 12});
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed->new_rows, (Rows{11, 12}));
  EXPECT_EQ(mixed->duplicate_count, 2);
  EXPECT_EQ(mixed->d_after, 3);
  EXPECT_TRUE(mixed->accepted);
}

TEST(DecideDeletionTest, UnknownRowIdsAreRejectedByName) {
  for (int64_t bad : {int64_t{-1}, kRows, int64_t{1} << 40}) {
    absl::StatusOr<DeletionDecision> d = DecideDeletion(kBudgets, kRows, {}, {1, bad});
    ASSERT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(d.status().message().find(std::to_string(bad)), std::string::npos)
        << d.status().message();
  }
  EXPECT_EQ(DecideDeletion(kBudgets, kRows, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecideDeletionTest, CorruptLedgerOrBudgetsAreErrors) {
  EXPECT_EQ(DecideDeletion(kBudgets, kRows, {5, 5}, {1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecideDeletion(kBudgets, kRows, {kRows}, {1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecideDeletion({4, 2}, kRows, {}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecideDeletionTest, NoRemovalBudgetsMeansEveryDeletionRetrains) {
  absl::StatusOr<DeletionDecision> d = DecideDeletion({}, kRows, {}, {1});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->max_budget, 0);
  EXPECT_TRUE(d->retraining_required());
}

// Budgets {1, 2, 4}. Input 0: stable nowhere. 1: only at 1. 2: at 1 and 2.
// 3: at all. 4: only at 4 (flags need not be nested).
const std::vector<std::vector<bool>> kStable = {{false, true, true, true, false},
                                                {false, false, true, true, false},
                                                {false, false, false, true, true}};

std::vector<bool> Certified(int64_t d) {
  absl::StatusOr<std::vector<bool>> out = CertifiedUnchanged(kBudgets, kStable, d);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<bool>{};
}

TEST(CertifiedUnchangedTest, StableAtSomeTrainedBudgetAtLeastD) {
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
