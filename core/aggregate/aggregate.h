// Sound aggregation of per-sample gradient bounds into bounds on the descent
// direction (paper section 6.4; Theorems 6, 8, 9; ARCHITECTURE.md section 3).
//
// Per parameter index, b = batch size, k = budget:
//   removal:      dL = SEMin_{b-k}(gL) / (b-k),           dU = SEMax_{b-k}(gU) / (b-k)
//   substitution: dL = (SEMin_{b-k}(gL) - k*gamma) / b,   dU = (SEMax_{b-k}(gU) + k*gamma) / b
//   poisoning:    dL = (sum gL + SEMin_k(g~L - gL)) / b,  dU = (sum gU + SEMax_k(g~U - gU)) / b
// where SEMax_m / SEMin_m is the sum of the m largest / smallest values, g the
// per-sample bounds over the parameter box and g~ those that also cover the
// perturbed inputs and labels. The nominal direction is sum g / b. For
// poisoning the differences are clamped to <= 0 (lower) and >= 0 (upper): a
// no-op in exact arithmetic (g~ encloses g), a guard against rounding that
// keeps the bound valid when fewer than k rows are poisoned.
//
// Soundness claim (Theorems 6, 8, 9): if every per-sample gradient reachable
// under the perturbation lies in its per-sample bounds (and, for substitution,
// every gradient is clipped to [-gamma, gamma]), the mean gradient of every
// perturbed batch lies in [dL, dU].
//
// Streaming: rows arrive in fragments; only min(m, b-m) extremes are kept per
// parameter (memory O(min(k, b-k) * P), never O(b * P)). Determinism: the
// batch is split into a fixed number of lanes (contiguous runs of rows); each
// lane adds its fragments in row order, the plain sums are reduced over lanes
// in lane order, and the kept extremes are summed sorted. So results depend
// on the lane count, never on which thread ran a lane or when.
//
// Thread-safety: Add/AddBlock calls for distinct lanes, or for disjoint
// parameter ranges, may run concurrently; the rows of one lane must reach
// each parameter in row order; Finish after all Adds.
#ifndef AGT_CORE_AGGREGATE_AGGREGATE_H_
#define AGT_CORE_AGGREGATE_AGGREGATE_H_

#include <memory>
#include <vector>

#include "core/backend/simd/kernels.h"
#include "core/common/types.h"

namespace agt {

enum class Extreme { kLargest, kSmallest };

// Streaming sum of the m largest (or smallest) of exactly `total_rows` values
// per column. Keeps min(m, total_rows - m) extremes per column plus the total.
class StreamingExtremeSum {
 public:
  StreamingExtremeSum(Index num_columns, int total_rows, int m, Extreme which);

  // Adds each row of `rows` (one value per column). Rows beyond total_rows are
  // a programmer error.
  void AddRows(const Eigen::Ref<const Matrix>& rows);
  // Adds one row given as a contiguous array of num_columns values.
  void AddRow(const double* row);
  // Adds `rows` rows of columns [column_offset, column_offset + len), row r
  // at block + r * ld. Every column must in the end have seen total_rows rows;
  // rows_seen() counts only full-width rows (AddRow/AddRows).
  // If sum is non-null, sum[c - column_offset] also accumulates the plain
  // column sums, row after row, in the same pass.
  void AddBlock(Index column_offset, Index len, Index rows, const double* block, Index ld,
                double* sum = nullptr);
  // One row of columns [column_offset, column_offset + len); sum as above.
  void AddSpan(Index column_offset, Index len, const double* values, double* sum);
  // Theorem 9's side of one row, without storing the differences: over
  // columns [column_offset, column_offset + len), bound_sum += bound and the
  // values d = perturbed - bound, clamped at 0 (upper: max(d, 0), lower:
  // min(d, 0)), are added as by AddSpan(.., d, value_sum).
  void AddClampedDifferenceSpan(Index column_offset, Index len, const double* bound,
                                const double* perturbed, bool upper, double* bound_sum,
                                double* value_sum);
  // For callers that filter values themselves (Aggregator::AddRumpRows): the
  // per-column thresholds a stored value must exceed, and whether values are
  // stored negated (stored = -value). Valid until the next insert.
  const double* thresholds() const { return threshold_.data(); }
  bool stores_negated() const;
  // Whether Result reads its `total` (it keeps the other side's extremes and
  // subtracts them); if not, the caller need not sum the values it feeds.
  bool uses_total() const { return keep_opposite_; }
  // Inserts stored[idx[w]] into column column_offset + idx[w] for w < count
  // (values by column, as the fused kernel writes them); the columns are
  // distinct and each such stored value exceeds the threshold that
  // thresholds() gave before this call.
  void InsertWinners(Index column_offset, const int32_t* idx, const double* stored, int64_t count);
  // Folds another accumulator (same shape and m) into this one.
  void Merge(const StreamingExtremeSum& other);
  // The extreme sums per column. `total` is the plain column sum of all rows
  // (supplied by the caller so that it can be reduced in a fixed order).
  Vector Result(const Vector& total) const;
  int rows_seen() const { return rows_seen_; }
  // Forgets every row (keeps the memory), ready for the next batch.
  void Reset();
  // The same for a batch of another size: total_rows and m change (a batch
  // with rows removed in place, train/batches.h); memory grows if needed.
  void Reset(int total_rows, int m);

 private:
  // Up to this many kept values per column are held sorted ascending (a
  // valid min-heap too); more as a binary min-heap.
  static constexpr int kSortedKeep = 32;
  void Insert(Index column, double value);

  Index num_columns_;
  int total_rows_;
  int m_;
  Extreme which_;
  int keep_;            // how many extremes are kept per column
  bool keep_opposite_;  // true: keep total_rows - m of the other side
  int rows_seen_ = 0;
  // keep_ slots per column, column-major (column c: [c*keep_, (c+1)*keep_)),
  // each column's slots a min-heap (sorted ascending, itself a
  // min-heap, when keep_ <= kSortedKeep: Insert).
  // Slots start at -infinity, so every column fills as values arrive.
  std::vector<double> slots_;
  // Per column: the kept value that the next candidate must beat (the heap's root).
  std::vector<double> threshold_;
};

// Per-sample gradient bounds of one fragment of a batch (rows = samples).
// perturbed_* are needed by bounded poisoning only.
struct FragmentBounds {
  const Matrix* lower = nullptr;
  const Matrix* upper = nullptr;
  const Matrix* perturbed_lower = nullptr;
  const Matrix* perturbed_upper = nullptr;
};

// Bounds on the descent direction of one batch.
struct DescentBounds {
  Vector lower;
  Vector upper;
};

enum class AggregationKind { kRemoval, kSubstitution, kBoundedPoisoning };

class Aggregator {
 public:
  // The lanes together receive exactly batch_size rows. gamma is the clipping
  // bound (substitution only). Preconditions (programmer errors):
  // 0 <= k < batch_size for removal/substitution, 0 <= k <= batch_size for
  // poisoning.
  Aggregator(AggregationKind kind, Index num_params, int batch_size, int k, double gamma,
             int num_lanes);
  ~Aggregator();
  Aggregator(Aggregator&&) noexcept;
  Aggregator& operator=(Aggregator&&) noexcept;

  void Add(int lane, const FragmentBounds& bounds);
  // The same for parameters [offset, offset + len) of `rows` rows: blocks are
  // row-major with row stride ld (perturbed_* for poisoning only). The hot
  // path calls this per weight row so that everything stays in cache.
  void AddBlock(int lane, Index offset, Index len, Index rows, Index ld, const double* lower,
                const double* upper, const double* perturbed_lower, const double* perturbed_upper);
  // Sample rows bound[0 .. rows) (rows <= simd::kSelectRows) of parameters
  // [offset, offset + len), each given by its Rump factors (the bounds over
  // the box, and for poisoning perturbed[i], those that also cover the
  // perturbation), each value first clamped to [-gamma, gamma] when clip:
  // the same result, bit for bit, as expanding the rows with RumpScaleRow,
  // clamping them and calling AddBlock row after row, but without storing
  // the bounds (the fused kernel, simd::Kernels::rump_select). The rows of
  // one call are all point rows (rz null) or none is (one factors object's
  // rows), and likewise the perturbed ones.
  void AddRumpRows(int lane, Index offset, Index len, const simd::RumpRow* bound,
                   const simd::RumpRow* perturbed, Index rows, bool clip, double gamma);
  DescentBounds Finish();
  // Forgets every row (keeps the memory), ready for the next batch.
  void Reset();
  // Ready for a batch of `batch_size` rows (a batch with rows removed in
  // place): every aggregation of the next Finish uses it, e.g. removal
  // SEMin_{batch_size-k} / (batch_size - k). Same preconditions on k as the
  // constructor.
  void Reset(int batch_size);
  int batch_size() const { return batch_size_; }

 private:
  struct Lane;

  AggregationKind kind_;
  Index num_params_;
  int batch_size_;
  int k_;
  double gamma_;
  std::vector<std::unique_ptr<Lane>> lanes_;
};

// Plain mean of per-sample nominal gradients, reduced in lane order.
class NominalAggregator {
 public:
  NominalAggregator(Index num_params, int batch_size, int num_lanes);
  void Add(int lane, const Matrix& grads);
  void AddBlock(int lane, Index offset, Index len, Index rows, Index ld, const double* grads);
  // The lane's running sums (num_params values), for callers that fold rows
  // in themselves; the same contract as AddBlock (rows in order per lane).
  double* LaneSum(int lane) { return lane_sum_.row(lane).data(); }
  Vector Finish() const;  // sum / batch_size
  void Reset();
  // Ready for a batch of `batch_size` rows (rows removed in place).
  void Reset(int batch_size);
  int batch_size() const { return batch_size_; }

 private:
  int batch_size_;
  Matrix lane_sum_;  // num_lanes x num_params
};

}  // namespace agt

#endif  // AGT_CORE_AGGREGATE_AGGREGATE_H_
