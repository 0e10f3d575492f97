// StreamingExtremeSum and Aggregator (core/aggregate/aggregate.h) against
// brute force: every column sorted, every subset of removed / replaced /
// poisoned rows enumerated for small batches.
//
// Most matrices hold small multiples of 1/4 with many ties: every partial sum
// of them is exact in float64, so the streaming results must equal the sorted
// sums bit for bit whatever order the code adds in. Continuous values are used
// where the claim is bit-identity between two ways of feeding the same rows.

#include "core/aggregate/aggregate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/rng.h"
#include "core/common/types.h"

namespace agt {
namespace {

// ---------------------------------------------------------------------------
// Data and brute-force references.

// rows x cols of multiples of 1/4 in [-2, 2], drawn from few distinct values
// so that columns hold many ties; some columns are constant.
Matrix TiedMatrix(Index rows, Index cols, Rng* rng) {
  Matrix m(rows, cols);
  for (Index c = 0; c < cols; ++c) {
    const bool constant = rng->UniformInt(5) == 0;
    const double fixed = (static_cast<double>(rng->UniformInt(17)) - 8.0) / 4.0;
    for (Index r = 0; r < rows; ++r) {
      m(r, c) = constant ? fixed : (static_cast<double>(rng->UniformInt(5)) - 2.0) / 4.0;
    }
  }
  return m;
}

Matrix ContinuousMatrix(Index rows, Index cols, Rng* rng) {
  Matrix m(rows, cols);
  for (Index r = 0; r < rows; ++r) {
    for (Index c = 0; c < cols; ++c) m(r, c) = rng->Normal();
  }
  return m;
}

// The sum of the m largest (or smallest) entries of each column, by sorting.
Vector SortedExtremeSums(const Matrix& values, int m, Extreme which) {
  Vector out(values.cols());
  for (Index c = 0; c < values.cols(); ++c) {
    std::vector<double> col;
    for (Index r = 0; r < values.rows(); ++r) col.push_back(values(r, c));
    if (which == Extreme::kLargest) {
      std::sort(col.begin(), col.end(), std::greater<double>());
    } else {
      std::sort(col.begin(), col.end());
    }
    double sum = 0.0;
    for (int i = 0; i < m; ++i) sum += col[i];
    out[c] = sum;
  }
  return out;
}

// Plain column sums, row after row.
Vector ColumnSums(const Matrix& values) {
  Vector total = Vector::Zero(values.cols());
  for (Index r = 0; r < values.rows(); ++r) total += values.row(r).transpose();
  return total;
}

const char* SideName(Extreme which) { return which == Extreme::kLargest ? "largest" : "smallest"; }

// Exact equality entry by entry (0.0 and -0.0 count as equal: the sign of a
// zero sum depends on which side was kept and means nothing).
::testing::AssertionResult BitIdentical(const Vector& got, const Vector& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  }
  for (Index i = 0; i < got.size(); ++i) {
    if (!(got[i] == want[i])) {
      return ::testing::AssertionFailure() << "entry " << i << ": " << got[i] << " vs " << want[i]
                                           << " (difference " << got[i] - want[i] << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Calls fn(mask) for every subset of {0..n-1} with exactly `size` members.
void ForEachSubset(int n, int size, const std::function<void(uint32_t)>& fn) {
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (std::popcount(mask) == size) fn(mask);
  }
}

// Splits `rows` into `lanes` contiguous runs of uneven lengths (some maybe
// empty); returns the run starts plus rows at the end.
std::vector<Index> UnevenSplit(Index rows, int lanes, Rng* rng) {
  std::vector<Index> cuts = {0, rows};
  for (int i = 1; i < lanes; ++i) cuts.push_back(static_cast<Index>(rng->UniformInt(rows + 1)));
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// ---------------------------------------------------------------------------
// StreamingExtremeSum.

Vector StreamAll(const Matrix& values, int m, Extreme which) {
  StreamingExtremeSum acc(values.cols(), static_cast<int>(values.rows()), m, which);
  acc.AddRows(values);
  return acc.Result(ColumnSums(values));
}

TEST(StreamingExtremeSum, EqualsTheSortedSumForEveryMOnTiedColumns) {
  Rng rng(101);
  for (int b : {1, 2, 3, 4, 5, 8, 13}) {
    for (int trial = 0; trial < 4; ++trial) {
      const Matrix values = TiedMatrix(b, 23, &rng);
      for (int m = 0; m <= b; ++m) {
        for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
          EXPECT_TRUE(
              BitIdentical(StreamAll(values, m, which), SortedExtremeSums(values, m, which)))
              << "b=" << b << " m=" << m << " " << SideName(which) << " trial " << trial;
        }
      }
    }
  }
}

TEST(StreamingExtremeSum, SortedAndHeapLayoutsBothEqualTheSortedSumOnTiedColumns) {
  // Up to kSortedKeep kept values per column are held sorted, more as a
  // heap: b = 70 makes min(m, b - m) cross that line as m runs over 0..b.
  Rng rng(109);
  const int b = 70;
  const Matrix values = TiedMatrix(b, 23, &rng);
  for (int m = 0; m <= b; ++m) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      EXPECT_TRUE(BitIdentical(StreamAll(values, m, which), SortedExtremeSums(values, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

TEST(StreamingExtremeSum, MatchesTheSortedSumOnContinuousValuesUpToRounding) {
  Rng rng(102);
  for (int b : {2, 7, 16, 33}) {
    const Matrix values = ContinuousMatrix(b, 19, &rng);
    const double scale = values.cwiseAbs().colwise().sum().maxCoeff();
    for (int m : {0, 1, b / 2, b / 2 + 1, b - 1, b}) {
      for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
        const Vector got = StreamAll(values, m, which);
        const Vector want = SortedExtremeSums(values, m, which);
        EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-13 * scale)
            << "b=" << b << " m=" << m << " " << SideName(which);
      }
    }
  }
}

TEST(StreamingExtremeSum, ZeroOfEitherSideIsZeroAndAllRowsIsTheTotal) {
  Matrix values(3, 2);
  values << 1.5, -2.0,  //
      -0.25, 4.0,       //
      3.0, 0.5;
  for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
    EXPECT_TRUE(BitIdentical(StreamAll(values, 0, which), Vector::Zero(2))) << SideName(which);
    EXPECT_TRUE(BitIdentical(StreamAll(values, 3, which), Vector{{4.25, 2.5}})) << SideName(which);
  }
}

TEST(StreamingExtremeSum, HandPickedColumnsGiveTheHandComputedSums) {
  // Column 0 has ties across the cut, column 1 is constant, column 2 has
  // distinct values in reverse order.
  Matrix values(5, 3);
  values << 1.0, 2.0, 5.0,  //
      3.0, 2.0, 4.0,        //
      1.0, 2.0, 3.0,        //
      3.0, 2.0, 2.0,        //
      -1.0, 2.0, 1.0;
  // m = 1, 2 keep their own side; m = 3, 4 keep the opposite side.
  EXPECT_TRUE(BitIdentical(StreamAll(values, 1, Extreme::kLargest), Vector{{3.0, 2.0, 5.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 2, Extreme::kLargest), Vector{{6.0, 4.0, 9.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 3, Extreme::kLargest), Vector{{7.0, 6.0, 12.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 4, Extreme::kLargest), Vector{{8.0, 8.0, 14.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 1, Extreme::kSmallest), Vector{{-1.0, 2.0, 1.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 2, Extreme::kSmallest), Vector{{0.0, 4.0, 3.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 3, Extreme::kSmallest), Vector{{1.0, 6.0, 6.0}}));
  EXPECT_TRUE(BitIdentical(StreamAll(values, 4, Extreme::kSmallest), Vector{{4.0, 8.0, 10.0}}));
}

TEST(StreamingExtremeSum, AddRowOneAtATimeIsBitIdenticalToAddRows) {
  Rng rng(103);
  const Matrix values = ContinuousMatrix(11, 29, &rng);
  for (int m : {0, 1, 4, 7, 10, 11}) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      StreamingExtremeSum acc(values.cols(), 11, m, which);
      for (Index r = 0; r < values.rows(); ++r) acc.AddRow(values.row(r).data());
      EXPECT_EQ(acc.rows_seen(), 11);
      EXPECT_TRUE(BitIdentical(acc.Result(ColumnSums(values)), StreamAll(values, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

TEST(StreamingExtremeSum, RowChunksAreBitIdenticalToTheWholeMatrix) {
  Rng rng(104);
  const Matrix values = ContinuousMatrix(17, 21, &rng);
  for (int m : {1, 5, 8, 9, 16}) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      StreamingExtremeSum acc(values.cols(), 17, m, which);
      const std::vector<Index> cuts = UnevenSplit(17, 5, &rng);
      for (size_t i = 0; i + 1 < cuts.size(); ++i) {
        acc.AddRows(values.middleRows(cuts[i], cuts[i + 1] - cuts[i]));
      }
      EXPECT_EQ(acc.rows_seen(), 17);
      EXPECT_TRUE(BitIdentical(acc.Result(ColumnSums(values)), StreamAll(values, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

// Widths below, at and above the 8-wide vectorised test, in random row
// chunks, with the row stride of the whole matrix.
TEST(StreamingExtremeSum, AddBlockInColumnBlocksOfAnyWidthIsBitIdenticalToAddRows) {
  Rng rng(105);
  const Index cols = 61;
  const int b = 14;
  const Matrix values = ContinuousMatrix(b, cols, &rng);
  for (int m : {0, 1, 3, 7, 8, 12, 13, 14}) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      StreamingExtremeSum acc(cols, b, m, which);
      Index offset = 0;
      while (offset < cols) {
        const Index len = std::min<Index>(cols - offset, 1 + rng.UniformInt(19));
        const std::vector<Index> cuts = UnevenSplit(b, 3, &rng);
        for (size_t i = 0; i + 1 < cuts.size(); ++i) {
          if (cuts[i + 1] == cuts[i]) continue;  // &values(b, offset) is out of range
          acc.AddBlock(offset, len, cuts[i + 1] - cuts[i], &values(cuts[i], offset), cols);
        }
        offset += len;
      }
      EXPECT_TRUE(BitIdentical(acc.Result(ColumnSums(values)), StreamAll(values, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

TEST(StreamingExtremeSum, AddBlockFromAPackedBufferEqualsTheSortedSum) {
  Rng rng(106);
  const int b = 9;
  const Matrix values = TiedMatrix(b, 12, &rng);
  for (int m = 0; m <= b; ++m) {
    StreamingExtremeSum acc(12, b, m, Extreme::kSmallest);
    // Columns [0, 5) and [5, 12) each copied into their own packed block.
    const Matrix left = values.leftCols(5), right = values.rightCols(7);
    acc.AddBlock(5, 7, b, right.data(), 7);
    acc.AddBlock(0, 5, b, left.data(), 5);
    EXPECT_TRUE(BitIdentical(acc.Result(ColumnSums(values)),
                             SortedExtremeSums(values, m, Extreme::kSmallest)))
        << "m=" << m;
  }
}

TEST(StreamingExtremeSum, MergingLanesWithUnevenRowCountsEqualsTheSortedSum) {
  Rng rng(107);
  for (int b : {1, 3, 6, 10}) {
    for (int trial = 0; trial < 6; ++trial) {
      const Matrix values = TiedMatrix(b, 15, &rng);
      // Up to b + 2 lanes, so that some are empty and many hold fewer rows
      // than the slots they keep.
      const int lanes = 1 + static_cast<int>(rng.UniformInt(b + 2));
      const std::vector<Index> cuts = UnevenSplit(b, lanes, &rng);
      for (int m = 0; m <= b; ++m) {
        for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
          std::vector<StreamingExtremeSum> accs;
          for (int l = 0; l < lanes; ++l) {
            accs.emplace_back(values.cols(), b, m, which);
            accs.back().AddRows(values.middleRows(cuts[l], cuts[l + 1] - cuts[l]));
          }
          for (int l = 1; l < lanes; ++l) accs[0].Merge(accs[l]);
          EXPECT_EQ(accs[0].rows_seen(), b);
          EXPECT_TRUE(
              BitIdentical(accs[0].Result(ColumnSums(values)), SortedExtremeSums(values, m, which)))
              << "b=" << b << " m=" << m << " lanes=" << lanes << " " << SideName(which);
        }
      }
    }
  }
}

// The kept extremes are a multiset fixed by the values, so merging lanes must
// not change even the rounding of the result (given the same total).
TEST(StreamingExtremeSum, MergedLanesAreBitIdenticalToOneAccumulatorOnContinuousValues) {
  Rng rng(108);
  const int b = 12;
  const Matrix values = ContinuousMatrix(b, 27, &rng);
  const std::vector<Index> cuts = {0, 1, 1, 2, 9, 12};  // lanes of 1, 0, 1, 7, 3 rows
  for (int m : {1, 2, 5, 6, 7, 10, 11}) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      StreamingExtremeSum merged(values.cols(), b, m, which);
      for (size_t l = 0; l + 1 < cuts.size(); ++l) {
        StreamingExtremeSum lane(values.cols(), b, m, which);
        lane.AddRows(values.middleRows(cuts[l], cuts[l + 1] - cuts[l]));
        merged.Merge(lane);
      }
      EXPECT_TRUE(BitIdentical(merged.Result(ColumnSums(values)), StreamAll(values, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

TEST(StreamingExtremeSum, ResetThenReuseGivesTheResultOfAFreshAccumulator) {
  Rng rng(109);
  const int b = 10;
  for (int m : {0, 2, 5, 8, 10}) {
    for (Extreme which : {Extreme::kLargest, Extreme::kSmallest}) {
      const Matrix first = ContinuousMatrix(b, 13, &rng);
      // The second batch is far below the first, so a slot left over from the
      // first would win against it.
      const Matrix second = (ContinuousMatrix(b, 13, &rng).array() - 100.0).matrix();
      StreamingExtremeSum reused(13, b, m, which);
      reused.AddRows(first);
      reused.Reset();
      EXPECT_EQ(reused.rows_seen(), 0);
      reused.AddRows(second);
      EXPECT_TRUE(BitIdentical(reused.Result(ColumnSums(second)), StreamAll(second, m, which)))
          << "m=" << m << " " << SideName(which);
      const Matrix third = (second.array() + 200.0).matrix();
      reused.Reset();
      reused.AddRows(third);
      EXPECT_TRUE(BitIdentical(reused.Result(ColumnSums(third)), StreamAll(third, m, which)))
          << "m=" << m << " " << SideName(which);
    }
  }
}

TEST(StreamingExtremeSum, InfiniteValuesAreKeptLikeAnyOther) {
  const double inf = std::numeric_limits<double>::infinity();
  Matrix values(4, 1);
  values << 1.0, inf, 2.0, 3.0;
  EXPECT_EQ(StreamAll(values, 1, Extreme::kLargest)[0], inf);
  EXPECT_EQ(StreamAll(values, 2, Extreme::kSmallest)[0], 3.0);
}

// ---------------------------------------------------------------------------
// Aggregator: the header's formulas, by brute force.

constexpr AggregationKind kKinds[] = {AggregationKind::kRemoval, AggregationKind::kSubstitution,
                                      AggregationKind::kBoundedPoisoning};

const char* KindName(AggregationKind kind) {
  switch (kind) {
    case AggregationKind::kRemoval:
      return "removal";
    case AggregationKind::kSubstitution:
      return "substitution";
    case AggregationKind::kBoundedPoisoning:
      return "poisoning";
  }
  return "?";
}

// Per-sample bounds of one batch: lower <= upper, and for poisoning
// perturbed_lower <= lower, upper <= perturbed_upper (the perturbed bounds
// cover the unperturbed input too).
struct Batch {
  Matrix lower, upper, perturbed_lower, perturbed_upper;
};

Batch TiedBatch(int b, Index p, Rng* rng) {
  Batch batch;
  batch.lower = TiedMatrix(b, p, rng);
  batch.upper = batch.lower + TiedMatrix(b, p, rng).cwiseAbs();
  batch.perturbed_lower = batch.lower - TiedMatrix(b, p, rng).cwiseAbs();
  batch.perturbed_upper = batch.upper + TiedMatrix(b, p, rng).cwiseAbs();
  return batch;
}

DescentBounds Aggregate(AggregationKind kind, const Batch& batch, int k, double gamma,
                        const std::vector<Index>& cuts) {
  const int lanes = static_cast<int>(cuts.size()) - 1;
  Aggregator agg(kind, batch.lower.cols(), static_cast<int>(batch.lower.rows()), k, gamma, lanes);
  for (int l = 0; l < lanes; ++l) {
    const Matrix lo = batch.lower.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
    const Matrix hi = batch.upper.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
    const Matrix plo = batch.perturbed_lower.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
    const Matrix phi = batch.perturbed_upper.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
    agg.Add(l, FragmentBounds{&lo, &hi, &plo, &phi});
  }
  return agg.Finish();
}

// The formulas of aggregate.h, from sorted columns.
DescentBounds HeaderFormula(AggregationKind kind, const Batch& batch, int k, double gamma) {
  const int b = static_cast<int>(batch.lower.rows());
  DescentBounds out;
  switch (kind) {
    case AggregationKind::kRemoval:
      out.lower = SortedExtremeSums(batch.lower, b - k, Extreme::kSmallest) / (b - k);
      out.upper = SortedExtremeSums(batch.upper, b - k, Extreme::kLargest) / (b - k);
      break;
    case AggregationKind::kSubstitution:
      out.lower =
          (SortedExtremeSums(batch.lower, b - k, Extreme::kSmallest).array() - k * gamma) / b;
      out.upper =
          (SortedExtremeSums(batch.upper, b - k, Extreme::kLargest).array() + k * gamma) / b;
      break;
    case AggregationKind::kBoundedPoisoning: {
      const Matrix dl = batch.perturbed_lower - batch.lower;
      const Matrix du = batch.perturbed_upper - batch.upper;
      out.lower = (ColumnSums(batch.lower) + SortedExtremeSums(dl, k, Extreme::kSmallest)) / b;
      out.upper = (ColumnSums(batch.upper) + SortedExtremeSums(du, k, Extreme::kLargest)) / b;
      break;
    }
  }
  return out;
}

TEST(Aggregator, DescentBoundsEqualTheHeaderFormulasForEveryBudgetAndLaneSplit) {
  Rng rng(201);
  const double gamma = 2.5;  // a multiple of 1/4 keeps k * gamma exact
  for (int b : {1, 2, 4, 7, 12}) {
    for (int trial = 0; trial < 3; ++trial) {
      const Batch batch = TiedBatch(b, 17, &rng);
      for (AggregationKind kind : kKinds) {
        const int k_max = kind == AggregationKind::kBoundedPoisoning ? b : b - 1;
        for (int k = 0; k <= k_max; ++k) {
          const DescentBounds want = HeaderFormula(kind, batch, k, gamma);
          for (int lanes : {1, 2, 5}) {
            const DescentBounds got = Aggregate(kind, batch, k, gamma, UnevenSplit(b, lanes, &rng));
            const std::string what =
                absl::StrCat(KindName(kind), " b=", b, " k=", k, " lanes=", lanes);
            EXPECT_TRUE(BitIdentical(got.lower, want.lower)) << what;
            EXPECT_TRUE(BitIdentical(got.upper, want.upper)) << what;
          }
        }
      }
    }
  }
}

TEST(Aggregator, HandComputedRemovalSubstitutionAndPoisoningBounds) {
  // One parameter, b = 4.
  Batch batch;
  batch.lower = Matrix{{-1.0}, {0.5}, {2.0}, {-3.0}};
  batch.upper = Matrix{{1.0}, {1.5}, {2.0}, {-1.0}};
  batch.perturbed_lower = Matrix{{-2.0}, {0.5}, {-2.0}, {-3.5}};  // differences -1, 0, -4, -0.5
  batch.perturbed_upper = Matrix{{1.0}, {3.5}, {2.5}, {3.0}};     // differences 0, 2, 0.5, 4
  const std::vector<Index> one_lane = {0, 4};
  // Removal, k = 1: lower = (-3 - 1 + 0.5) / 3, upper = (2 + 1.5 + 1) / 3.
  DescentBounds d = Aggregate(AggregationKind::kRemoval, batch, 1, 0.0, one_lane);
  EXPECT_DOUBLE_EQ(d.lower[0], -3.5 / 3.0);
  EXPECT_DOUBLE_EQ(d.upper[0], 4.5 / 3.0);
  // Substitution, k = 1, gamma = 4: lower = (-3.5 - 4) / 4, upper = (4.5 + 4) / 4.
  d = Aggregate(AggregationKind::kSubstitution, batch, 1, 4.0, one_lane);
  EXPECT_EQ(d.lower[0], -7.5 / 4.0);
  EXPECT_EQ(d.upper[0], 8.5 / 4.0);
  // Poisoning, k = 2: lower = (-1.5 - 4 - 1) / 4, upper = (3.5 + 4 + 2) / 4.
  d = Aggregate(AggregationKind::kBoundedPoisoning, batch, 2, 0.0, one_lane);
  EXPECT_EQ(d.lower[0], -6.5 / 4.0);
  EXPECT_EQ(d.upper[0], 9.5 / 4.0);
  // Poisoning, k = 0: the plain means of the bounds.
  d = Aggregate(AggregationKind::kBoundedPoisoning, batch, 0, 0.0, one_lane);
  EXPECT_EQ(d.lower[0], -1.5 / 4.0);
  EXPECT_EQ(d.upper[0], 3.5 / 4.0);
}

// Feeding the parameters in column blocks through AddBlock must not change a
// bit: each parameter still sees its rows in the same order in the same lane.
TEST(Aggregator, AddBlockOverColumnRangesIsBitIdenticalToAddOfWholeFragments) {
  Rng rng(202);
  const int b = 10;
  const Index p = 37;
  Batch batch;
  batch.lower = ContinuousMatrix(b, p, &rng);
  batch.upper = batch.lower + ContinuousMatrix(b, p, &rng).cwiseAbs();
  batch.perturbed_lower = batch.lower - ContinuousMatrix(b, p, &rng).cwiseAbs();
  batch.perturbed_upper = batch.upper + ContinuousMatrix(b, p, &rng).cwiseAbs();
  const std::vector<Index> cuts = {0, 3, 3, 10};
  for (AggregationKind kind : kKinds) {
    for (int k : {0, 1, 4, 6, 9}) {
      const DescentBounds whole = Aggregate(kind, batch, k, 3.0, cuts);
      Aggregator agg(kind, p, b, k, 3.0, 3);
      const bool poisoning = kind == AggregationKind::kBoundedPoisoning;
      for (int l = 0; l < 3; ++l) {
        Index offset = 0;
        while (offset < p) {
          const Index len = std::min<Index>(p - offset, 1 + rng.UniformInt(12));
          const Index r0 = cuts[l], rows = cuts[l + 1] - cuts[l];
          agg.AddBlock(l, offset, len, rows, p, &batch.lower(r0, offset), &batch.upper(r0, offset),
                       poisoning ? &batch.perturbed_lower(r0, offset) : nullptr,
                       poisoning ? &batch.perturbed_upper(r0, offset) : nullptr);
          offset += len;
        }
      }
      const DescentBounds blocks = agg.Finish();
      EXPECT_TRUE(BitIdentical(blocks.lower, whole.lower)) << KindName(kind) << " k=" << k;
      EXPECT_TRUE(BitIdentical(blocks.upper, whole.upper)) << KindName(kind) << " k=" << k;
    }
  }
}

// Rump factors of a batch for one weight row of width p: per sample an
// output-gradient interval [m +- r] and p input intervals [mz +- rz].
struct RumpBatch {
  Vector m, r;         // b
  Matrix mz, amz, rz;  // b x p
  bool point = false;  // rz unused: point inputs
  simd::RumpRow Row(Index i) const {
    return {m[i], r[i], mz.row(i).data(), amz.row(i).data(), point ? nullptr : rz.row(i).data()};
  }
};

RumpBatch RandomRumpBatch(int b, Index p, bool point, double widen, Rng* rng) {
  RumpBatch f;
  f.m = ContinuousMatrix(b, 1, rng).col(0);
  f.r = ContinuousMatrix(b, 1, rng).col(0).cwiseAbs() * widen;
  f.mz = ContinuousMatrix(b, p, rng);
  for (Index c = 0; c < p; c += 7) f.mz.col(c).setZero();  // zero pixels, as in images
  f.amz = f.mz.cwiseAbs();
  f.rz = ContinuousMatrix(b, p, rng).cwiseAbs() * widen;
  f.point = point;
  return f;
}

// RumpScaleRow's rule and ClampInPlace's, written out: the block that the
// expansion path stores before AddBlock.
void ExpandRumpRow(const RumpBatch& f, Index i, bool clip, double gamma, double* lo, double* hi) {
  const double m = f.m[i], r = f.r[i], am = std::abs(m);
  for (Index c = 0; c < f.mz.cols(); ++c) {
    const double center = m * f.mz(i, c);
    const double rad =
        f.point ? r * f.amz(i, c) : (am * f.rz(i, c) + r * f.amz(i, c)) + r * f.rz(i, c);
    lo[c] = center - rad;
    hi[c] = center + rad;
    if (clip) {
      lo[c] = std::min(std::max(lo[c], -gamma), gamma);
      hi[c] = std::min(std::max(hi[c], -gamma), gamma);
    }
  }
}

// The fused path (no stored bounds) against expanding each row and feeding
// it to AddBlock: the same bits, for every kind, budgets on both sides of
// b/2 (kept extremes or their complement), clipping, point and interval
// inputs, rows wider than one filter span, and calls of 1 to kSelectRows
// rows (a later row of a call can be outbid by an earlier one's insert).
TEST(Aggregator, AddRumpRowsIsBitIdenticalToExpandingTheRowsThenAddBlock) {
  Rng rng(203);
  const int b = 40;
  const Index calls[] = {1, simd::kSelectRows, 5, simd::kSelectRows, 2};  // 40 rows
  for (Index p : {Index{5}, Index{131}, simd::kFilterSpan + 37}) {
    for (bool point : {false, true}) {
      const RumpBatch bound = RandomRumpBatch(b, p, point, 0.05, &rng);
      // The perturbed factors enclose the bound's: same midpoints, wider radii.
      RumpBatch perturbed = bound;
      perturbed.point = false;
      perturbed.r = bound.r + ContinuousMatrix(b, 1, &rng).col(0).cwiseAbs() * 0.01;
      perturbed.rz =
          (point ? Matrix::Zero(b, p) : bound.rz) + ContinuousMatrix(b, p, &rng).cwiseAbs() * 0.01;
      for (AggregationKind kind : kKinds) {
        const bool poisoning = kind == AggregationKind::kBoundedPoisoning;
        for (int k : {0, 3, 25, b - 1}) {
          for (bool clip : {false, true}) {
            const double gamma = 0.3;
            const Index offset = 2;  // parameters before this weight row
            Aggregator fused(kind, p + offset, b, k, gamma, 1);
            Aggregator expanded(kind, p + offset, b, k, gamma, 1);
            Matrix lo(1, p + offset), hi(1, p + offset), plo(1, p + offset), phi(1, p + offset);
            lo.setZero();
            hi.setZero();
            plo.setZero();
            phi.setZero();
            Index i0 = 0;
            for (Index rows : calls) {
              simd::RumpRow brows[simd::kSelectRows], prows[simd::kSelectRows];
              for (Index j = 0; j < rows; ++j) {
                brows[j] = bound.Row(i0 + j);
                prows[j] = perturbed.Row(i0 + j);
              }
              fused.AddRumpRows(0, offset, p, brows, poisoning ? prows : nullptr, rows, clip,
                                gamma);
              for (Index i = i0; i < i0 + rows; ++i) {
                ExpandRumpRow(bound, i, clip, gamma, lo.data() + offset, hi.data() + offset);
                ExpandRumpRow(perturbed, i, clip, gamma, plo.data() + offset,
                              phi.data() + offset);
                expanded.AddBlock(0, offset, p, 1, p + offset, lo.data() + offset,
                                  hi.data() + offset, poisoning ? plo.data() + offset : nullptr,
                                  poisoning ? phi.data() + offset : nullptr);
                // The first two parameters belong to no row here: both paths
                // give them the same zeros.
                fused.AddBlock(0, 0, offset, 1, p + offset, lo.data(), hi.data(),
                               poisoning ? plo.data() : nullptr, poisoning ? phi.data() : nullptr);
                expanded.AddBlock(0, 0, offset, 1, p + offset, lo.data(), hi.data(),
                                  poisoning ? plo.data() : nullptr,
                                  poisoning ? phi.data() : nullptr);
              }
              i0 += rows;
            }
            ASSERT_EQ(i0, b);
            const DescentBounds want = expanded.Finish();
            const DescentBounds got = fused.Finish();
            const std::string what =
                absl::StrCat(KindName(kind), " p=", p, " point=", point, " k=", k, " clip=", clip);
            EXPECT_TRUE(BitIdentical(got.lower, want.lower)) << what;
            EXPECT_TRUE(BitIdentical(got.upper, want.upper)) << what;
            // Not vacuous: the budgets move the bounds.
            if (k == 3) {
              EXPECT_GT((want.upper - want.lower).maxCoeff(), 0.0) << what;
            }
          }
        }
      }
    }
  }
}

TEST(Aggregator, ResetThenReuseGivesTheBoundsOfAFreshAggregator) {
  Rng rng(203);
  const int b = 8;
  for (AggregationKind kind : kKinds) {
    for (int k : {0, 1, 3, 7}) {
      const Batch first = TiedBatch(b, 11, &rng);
      Batch second = TiedBatch(b, 11, &rng);
      second.lower.array() -= 50.0;
      second.upper.array() -= 50.0;
      second.perturbed_lower.array() -= 60.0;
      second.perturbed_upper.array() -= 40.0;
      const std::vector<Index> cuts = {0, 2, 8};
      Aggregator agg(kind, 11, b, k, 1.0, 2);
      for (const Batch* batch : std::vector<const Batch*>{&first, &second}) {
        agg.Reset();
        for (int l = 0; l < 2; ++l) {
          const Matrix lo = batch->lower.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
          const Matrix hi = batch->upper.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
          const Matrix plo = batch->perturbed_lower.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
          const Matrix phi = batch->perturbed_upper.middleRows(cuts[l], cuts[l + 1] - cuts[l]);
          agg.Add(l, FragmentBounds{&lo, &hi, &plo, &phi});
        }
        const DescentBounds got = agg.Finish();
        const DescentBounds fresh = Aggregate(kind, *batch, k, 1.0, cuts);
        EXPECT_TRUE(BitIdentical(got.lower, fresh.lower)) << KindName(kind) << " k=" << k;
        EXPECT_TRUE(BitIdentical(got.upper, fresh.upper)) << KindName(kind) << " k=" << k;
      }
    }
  }
}

// Rows removed in place give batches of other sizes: Reset(batch_size) must
// behave as a fresh aggregator of that size, shrinking and growing, and the
// nominal mean divides by the new size.
TEST(Aggregator, ResetToAnotherBatchSizeGivesTheBoundsOfAFreshAggregatorOfThatSize) {
  Rng rng(211);
  for (AggregationKind kind : kKinds) {
    for (int k : {0, 1, 3}) {
      Aggregator agg(kind, 9, 8, k, 1.0, 2);
      NominalAggregator nominal(9, 8, 2);
      for (int b : {8, 5, 4, 11, 8}) {
        if (b <= k) continue;
        const Batch batch = TiedBatch(b, 9, &rng);
        const std::vector<Index> cuts = {0, b / 2, b};
        agg.Reset(b);
        nominal.Reset(b);
        EXPECT_EQ(agg.batch_size(), b);
        for (int l = 0; l < 2; ++l) {
          const Index n = cuts[l + 1] - cuts[l];
          const Matrix lo = batch.lower.middleRows(cuts[l], n);
          const Matrix hi = batch.upper.middleRows(cuts[l], n);
          const Matrix plo = batch.perturbed_lower.middleRows(cuts[l], n);
          const Matrix phi = batch.perturbed_upper.middleRows(cuts[l], n);
          agg.Add(l, FragmentBounds{&lo, &hi, &plo, &phi});
          nominal.Add(l, lo);
        }
        const DescentBounds got = agg.Finish();
        const DescentBounds fresh = Aggregate(kind, batch, k, 1.0, cuts);
        const std::string what = absl::StrCat(KindName(kind), " k=", k, " b=", b);
        EXPECT_TRUE(BitIdentical(got.lower, fresh.lower)) << what;
        EXPECT_TRUE(BitIdentical(got.upper, fresh.upper)) << what;
        const Vector mean = batch.lower.colwise().sum().transpose() / static_cast<double>(b);
        EXPECT_LT((nominal.Finish() - mean).cwiseAbs().maxCoeff(), 1e-15) << "b=" << b;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Aggregator: the soundness claims, by enumerating every perturbed batch of a
// small batch size.

constexpr double kTol = 1e-12;

// Per-sample bounds drawn with continuous values; a sampled gradient inside.
struct ContinuousBatch {
  Batch bounds;
  Matrix gradient;  // clean per-sample gradients, inside [lower, upper]
  Matrix poisoned;  // per-sample gradients of a poisoned row, inside the perturbed bounds
};

ContinuousBatch RandomContinuousBatch(int b, Index p, double gamma, Rng* rng) {
  ContinuousBatch out;
  Batch& bounds = out.bounds;
  bounds.lower.resize(b, p);
  bounds.upper.resize(b, p);
  out.gradient.resize(b, p);
  for (Index r = 0; r < b; ++r) {
    for (Index c = 0; c < p; ++c) {
      double lo = rng->Uniform(-gamma, gamma), hi = rng->Uniform(-gamma, gamma);
      if (lo > hi) std::swap(lo, hi);
      if (rng->UniformInt(4) == 0) hi = lo;  // some point bounds
      bounds.lower(r, c) = lo;
      bounds.upper(r, c) = hi;
      // Endpoints half of the time: the extreme gradients are the hardest.
      const uint64_t pick = rng->UniformInt(4);
      out.gradient(r, c) = pick == 0 ? lo : pick == 1 ? hi : rng->Uniform(lo, hi);
    }
  }
  bounds.perturbed_lower = bounds.lower - ContinuousMatrix(b, p, rng).cwiseAbs();
  bounds.perturbed_upper = bounds.upper + ContinuousMatrix(b, p, rng).cwiseAbs();
  out.poisoned.resize(b, p);
  for (Index r = 0; r < b; ++r) {
    for (Index c = 0; c < p; ++c) {
      const double lo = bounds.perturbed_lower(r, c), hi = bounds.perturbed_upper(r, c);
      const uint64_t pick = rng->UniformInt(4);
      out.poisoned(r, c) = pick == 0 ? lo : pick == 1 ? hi : rng->Uniform(lo, hi);
    }
  }
  return out;
}

::testing::AssertionResult Inside(const Vector& v, const DescentBounds& d) {
  for (Index i = 0; i < v.size(); ++i) {
    if (!(v[i] >= d.lower[i] - kTol && v[i] <= d.upper[i] + kTol)) {
      return ::testing::AssertionFailure() << "parameter " << i << ": " << v[i] << " outside ["
                                           << d.lower[i] << ", " << d.upper[i] << "]";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(AggregatorSoundness, RemovalBoundsContainTheMeanGradientOfEveryBatchWithoutKRows) {
  Rng rng(301);
  for (int b : {1, 3, 6, 9}) {
    for (int k = 0; k < b; ++k) {
      const ContinuousBatch cb = RandomContinuousBatch(b, 5, 1.0, &rng);
      const DescentBounds d =
          Aggregate(AggregationKind::kRemoval, cb.bounds, k, 0.0, UnevenSplit(b, 2, &rng));
      // The bounds are attained: some subset's mean lower bound equals d.lower.
      Vector lowest = Vector::Constant(5, std::numeric_limits<double>::infinity());
      Vector highest = -lowest;
      ForEachSubset(b, k, [&](uint32_t removed) {
        Vector sum = Vector::Zero(5), sum_lo = Vector::Zero(5), sum_hi = Vector::Zero(5);
        for (int r = 0; r < b; ++r) {
          if (removed & (1u << r)) continue;
          sum += cb.gradient.row(r).transpose();
          sum_lo += cb.bounds.lower.row(r).transpose();
          sum_hi += cb.bounds.upper.row(r).transpose();
        }
        EXPECT_TRUE(Inside(sum / (b - k), d)) << "b=" << b << " k=" << k << " removed " << removed;
        lowest = lowest.cwiseMin(sum_lo / (b - k));
        highest = highest.cwiseMax(sum_hi / (b - k));
      });
      EXPECT_LE((lowest - d.lower).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
      EXPECT_LE((highest - d.upper).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
    }
  }
}

TEST(AggregatorSoundness, SubstitutionBoundsContainTheMeanOfEveryBatchWithKRowsReplaced) {
  Rng rng(302);
  const double gamma = 1.5;
  for (int b : {1, 3, 6, 8}) {
    for (int k = 0; k < b; ++k) {
      const ContinuousBatch cb = RandomContinuousBatch(b, 4, gamma, &rng);
      const DescentBounds d =
          Aggregate(AggregationKind::kSubstitution, cb.bounds, k, gamma, UnevenSplit(b, 3, &rng));
      Vector lowest = Vector::Constant(4, std::numeric_limits<double>::infinity());
      Vector highest = -lowest;
      ForEachSubset(b, k, [&](uint32_t replaced) {
        // A replacement row's clipped gradient is anything in [-gamma, gamma]:
        // try both ends and a random value.
        for (double fill : {-gamma, gamma, rng.Uniform(-gamma, gamma)}) {
          Vector sum = Vector::Zero(4), sum_lo = Vector::Zero(4), sum_hi = Vector::Zero(4);
          for (int r = 0; r < b; ++r) {
            if (replaced & (1u << r)) {
              sum.array() += fill;
              sum_lo.array() += -gamma;
              sum_hi.array() += gamma;
            } else {
              sum += cb.gradient.row(r).transpose();
              sum_lo += cb.bounds.lower.row(r).transpose();
              sum_hi += cb.bounds.upper.row(r).transpose();
            }
          }
          EXPECT_TRUE(Inside(sum / b, d)) << "b=" << b << " k=" << k << " replaced " << replaced;
          lowest = lowest.cwiseMin(sum_lo / b);
          highest = highest.cwiseMax(sum_hi / b);
        }
      });
      EXPECT_LE((lowest - d.lower).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
      EXPECT_LE((highest - d.upper).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
    }
  }
}

TEST(AggregatorSoundness, PoisoningBoundsContainTheMeanOfEveryBatchWithAtMostKRowsPoisoned) {
  Rng rng(303);
  for (int b : {1, 3, 5, 8}) {
    for (int k = 0; k <= b; ++k) {
      const ContinuousBatch cb = RandomContinuousBatch(b, 4, 1.0, &rng);
      const DescentBounds d =
          Aggregate(AggregationKind::kBoundedPoisoning, cb.bounds, k, 0.0, UnevenSplit(b, 2, &rng));
      Vector lowest = Vector::Constant(4, std::numeric_limits<double>::infinity());
      Vector highest = -lowest;
      for (int poisoned_rows = 0; poisoned_rows <= k; ++poisoned_rows) {
        ForEachSubset(b, poisoned_rows, [&](uint32_t poisoned) {
          Vector sum = Vector::Zero(4), sum_lo = Vector::Zero(4), sum_hi = Vector::Zero(4);
          for (int r = 0; r < b; ++r) {
            const bool p = poisoned & (1u << r);
            sum += (p ? cb.poisoned : cb.gradient).row(r).transpose();
            sum_lo += (p ? cb.bounds.perturbed_lower : cb.bounds.lower).row(r).transpose();
            sum_hi += (p ? cb.bounds.perturbed_upper : cb.bounds.upper).row(r).transpose();
          }
          EXPECT_TRUE(Inside(sum / b, d)) << "b=" << b << " k=" << k << " poisoned " << poisoned;
          lowest = lowest.cwiseMin(sum_lo / b);
          highest = highest.cwiseMax(sum_hi / b);
        });
      }
      EXPECT_LE((lowest - d.lower).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
      EXPECT_LE((highest - d.upper).cwiseAbs().maxCoeff(), kTol) << "b=" << b << " k=" << k;
    }
  }
}

TEST(AggregatorSoundness, LargerBudgetsNeverGiveNarrowerBounds) {
  Rng rng(304);
  const int b = 9;
  const ContinuousBatch cb = RandomContinuousBatch(b, 6, 2.0, &rng);
  for (AggregationKind kind : kKinds) {
    const int k_max = kind == AggregationKind::kBoundedPoisoning ? b : b - 1;
    DescentBounds previous = Aggregate(kind, cb.bounds, 0, 2.0, {0, b});
    for (int k = 1; k <= k_max; ++k) {
      const DescentBounds d = Aggregate(kind, cb.bounds, k, 2.0, {0, 4, b});
      EXPECT_TRUE((d.lower.array() <= previous.lower.array() + kTol).all())
          << KindName(kind) << " k=" << k;
      EXPECT_TRUE((d.upper.array() >= previous.upper.array() - kTol).all())
          << KindName(kind) << " k=" << k;
      previous = d;
    }
  }
}

// ---------------------------------------------------------------------------
// NominalAggregator.

TEST(NominalAggregator, IsTheColumnMeanOverLanesAndBlocks) {
  Rng rng(401);
  const int b = 8;
  const Matrix grads = TiedMatrix(b, 9, &rng);
  NominalAggregator agg(9, b, 2);
  agg.Add(0, Matrix(grads.topRows(3)));
  const Matrix rest = grads.bottomRows(5);
  agg.AddBlock(1, 0, 4, 5, 9, rest.data());
  agg.AddBlock(1, 4, 5, 5, 9, rest.data() + 4);
  EXPECT_TRUE(BitIdentical(agg.Finish(), ColumnSums(grads) / b));
  agg.Reset();
  agg.Add(0, grads);
  EXPECT_TRUE(BitIdentical(agg.Finish(), ColumnSums(grads) / b));
}

}  // namespace
}  // namespace agt
