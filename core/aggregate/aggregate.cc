#include "core/aggregate/aggregate.h"

#include <algorithm>
#include <cassert>
#include <limits>

#include "core/backend/simd/isa.h"

namespace agt {

StreamingExtremeSum::StreamingExtremeSum(Index num_columns, int total_rows, int m, Extreme which)
    : num_columns_(num_columns), total_rows_(total_rows), m_(m), which_(which) {
  assert(m >= 0 && m <= total_rows);
  // Keep the m extremes asked for, or the total_rows - m of the other side,
  // whichever is fewer; the latter's sum is subtracted from the total.
  keep_opposite_ = m > total_rows - m;
  keep_ = keep_opposite_ ? total_rows - m : m;
  const double empty = -std::numeric_limits<double>::infinity();
  slots_.assign(static_cast<size_t>(keep_) * num_columns_, empty);
  threshold_.assign(num_columns_, keep_ > 0 ? empty : std::numeric_limits<double>::infinity());
}

// Values are stored multiplied by `sign`, so the accumulator always keeps the
// largest stored values.
namespace {
inline double StoredSign(Extreme which, bool opposite) {
  const bool keep_largest = (which == Extreme::kLargest) != opposite;
  return keep_largest ? 1.0 : -1.0;
}

}  // namespace

bool StreamingExtremeSum::stores_negated() const { return StoredSign(which_, keep_opposite_) < 0; }

void StreamingExtremeSum::InsertWinners(Index column_offset, const int32_t* idx,
                                        const double* stored, int64_t count) {
  if (count == 0) return;
  if (keep_ <= kSortedKeep) {
    simd::ActiveKernels().insert_sorted(slots_.data() + column_offset * keep_, keep_, idx, stored,
                                        count, threshold_.data() + column_offset);
    return;
  }
  for (int64_t w = 0; w < count; ++w) Insert(column_offset + idx[w], stored[idx[w]]);
}

void StreamingExtremeSum::AddSpan(Index column_offset, Index len, const double* values,
                                  double* sum) {
  const simd::Kernels& k = simd::ActiveKernels();
  if (keep_ == 0) {
    if (sum) k.add_to(values, len, sum);
    return;
  }
  const bool negate = StoredSign(which_, keep_opposite_) < 0;
  const double* thr = threshold_.data() + column_offset;
  // Most candidates lose against their column's threshold: a vectorised
  // compare finds the few winners (and the optional plain sum rides along in
  // the same pass), then they are inserted in a batch. Each column appears
  // once in a span, so filtering the whole span first sees the same
  // thresholds as inserting as we go.
  int32_t winners[simd::kFilterSpan + simd::kFilterSlack];
  double stored[simd::kFilterSpan];  // by column; only the winners' are written
  for (Index c0 = 0; c0 < len; c0 += simd::kFilterSpan) {
    const Index n = std::min<Index>(simd::kFilterSpan, len - c0);
    const int64_t count =
        k.filter_above(values + c0, thr + c0, n, negate, sum ? sum + c0 : nullptr, winners);
    if (!negate) {
      InsertWinners(column_offset + c0, winners, values + c0, count);
      continue;
    }
    for (int64_t w = 0; w < count; ++w) stored[winners[w]] = -values[c0 + winners[w]];
    InsertWinners(column_offset + c0, winners, stored, count);
  }
}

void StreamingExtremeSum::AddClampedDifferenceSpan(Index column_offset, Index len,
                                                   const double* bound, const double* perturbed,
                                                   bool upper, double* bound_sum,
                                                   double* value_sum) {
  const simd::Kernels& k = simd::ActiveKernels();
  // With nothing kept the thresholds are +infinity: the kernel finds no
  // winner and only sums.
  const bool negate = StoredSign(which_, keep_opposite_) < 0;
  const double* thr = threshold_.data() + column_offset;
  int32_t winners[simd::kFilterSpan + simd::kFilterSlack];
  double stored[simd::kFilterSpan];  // by column; only the winners' are written
  for (Index c0 = 0; c0 < len; c0 += simd::kFilterSpan) {
    const Index n = std::min<Index>(simd::kFilterSpan, len - c0);
    const int64_t count = k.poison_filter(bound + c0, perturbed + c0, n, upper, negate,
                                          bound_sum + c0, value_sum + c0, thr + c0, winners);
    for (int64_t w = 0; w < count; ++w) {
      const Index c = c0 + winners[w];
      const double d = perturbed[c] - bound[c];
      const double v = upper ? std::max(d, 0.0) : std::min(d, 0.0);
      stored[winners[w]] = negate ? -v : v;
    }
    InsertWinners(column_offset + c0, winners, stored, count);
  }
}

void StreamingExtremeSum::Reset() {
  rows_seen_ = 0;
  std::fill(slots_.begin(), slots_.end(), -std::numeric_limits<double>::infinity());
  std::fill(threshold_.begin(), threshold_.end(),
            keep_ > 0 ? -std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::infinity());
}

void StreamingExtremeSum::Reset(int total_rows, int m) {
  assert(m >= 0 && m <= total_rows);
  total_rows_ = total_rows;
  m_ = m;
  keep_opposite_ = m > total_rows - m;
  keep_ = keep_opposite_ ? total_rows - m : m;
  slots_.resize(static_cast<size_t>(keep_) * num_columns_);
  Reset();
}

void StreamingExtremeSum::AddRow(const double* row) {
  assert(rows_seen_ < total_rows_);
  ++rows_seen_;
  AddSpan(0, num_columns_, row, nullptr);
}

void StreamingExtremeSum::AddBlock(Index column_offset, Index len, Index rows, const double* block,
                                   Index ld, double* sum) {
  assert(column_offset + len <= num_columns_);
  for (Index r = 0; r < rows; ++r) AddSpan(column_offset, len, block + r * ld, sum);
}

void StreamingExtremeSum::Insert(Index column, double value) {
  // The kept values of a column form a min-heap: the root is the threshold.
  // The caller guarantees value > the threshold.
  double* heap = slots_.data() + column * keep_;
  if (keep_ <= kSortedKeep) {
    // Few kept values: an ascending array (itself a min-heap). Dropping the
    // smallest and inserting `value` is, per slot j (slot keep_ read as
    // +infinity), new[j] = old[j+1] < value ? old[j+1] : max(old[j], value):
    // the same work for every value, so no branch to mispredict (a shift
    // loop's exit, or a heap's sift-down, would be one per insert).
    const int last = keep_ - 1;
    for (int j = 0; j < last; ++j) {
      const double next = heap[j + 1];
      const double here = heap[j] < value ? value : heap[j];
      heap[j] = next < value ? next : here;
    }
    heap[last] = heap[last] < value ? value : heap[last];
    threshold_[column] = heap[0];
    return;
  }
  int i = 0;
  for (;;) {
    const int l = 2 * i + 1;
    if (l >= keep_) break;
    const int r = l + 1;
    const int m = (r < keep_ && heap[r] < heap[l]) ? r : l;
    if (!(heap[m] < value)) break;
    heap[i] = heap[m];
    i = m;
  }
  heap[i] = value;
  threshold_[column] = heap[0];
}

void StreamingExtremeSum::AddRows(const Eigen::Ref<const Matrix>& rows) {
  assert(rows.cols() == num_columns_);
  for (Index r = 0; r < rows.rows(); ++r) AddRow(rows.row(r).data());
}

void StreamingExtremeSum::Merge(const StreamingExtremeSum& other) {
  assert(other.num_columns_ == num_columns_ && other.keep_ == keep_ &&
         other.keep_opposite_ == keep_opposite_ && other.which_ == which_);
  rows_seen_ += other.rows_seen_;
  if (keep_ == 0) return;
  std::vector<double> buf(2 * keep_);
  for (Index c = 0; c < num_columns_; ++c) {
    double* slots = slots_.data() + c * keep_;
    const double* theirs = other.slots_.data() + c * keep_;
    std::copy(slots, slots + keep_, buf.begin());
    std::copy(theirs, theirs + keep_, buf.begin() + keep_);
    std::partial_sort(buf.begin(), buf.begin() + keep_, buf.end(), std::greater<double>());
    // Ascending order is a valid min-heap.
    std::reverse_copy(buf.begin(), buf.begin() + keep_, slots);
    threshold_[c] = slots[0];
  }
}

Vector StreamingExtremeSum::Result(const Vector& total) const {
  const double sign = StoredSign(which_, keep_opposite_);
  Vector out(num_columns_);
  std::vector<double> buf(keep_);
  for (Index c = 0; c < num_columns_; ++c) {
    const double* slots = slots_.data() + c * keep_;
    std::copy(slots, slots + keep_, buf.begin());
    std::sort(buf.begin(), buf.end());  // a fixed summation order
    double kept = 0.0;
    for (double v : buf) kept += v;
    kept *= sign;
    out[c] = keep_opposite_ ? total[c] - kept : kept;
  }
  return out;
}

struct Aggregator::Lane {
  Lane(Index p, int b, int m, Extreme low_side, Extreme high_side)
      : bound_sum_lower(Vector::Zero(p)),
        bound_sum_upper(Vector::Zero(p)),
        value_sum_low(Vector::Zero(p)),
        value_sum_high(Vector::Zero(p)),
        low(p, b, m, low_side),
        high(p, b, m, high_side) {}

  Vector bound_sum_lower;  // sum of per-sample lower bounds
  Vector bound_sum_upper;
  // Sum of the values fed to `low` (differences for poisoning; AddRumpRows
  // leaves them out when neither side's Result reads them).
  Vector value_sum_low;
  Vector value_sum_high;
  StreamingExtremeSum low;
  StreamingExtremeSum high;
};

Aggregator::Aggregator(AggregationKind kind, Index num_params, int batch_size, int k, double gamma,
                       int num_lanes)
    : kind_(kind), num_params_(num_params), batch_size_(batch_size), k_(k), gamma_(gamma) {
  assert(num_lanes >= 1);
  const int m = kind == AggregationKind::kBoundedPoisoning ? k : batch_size - k;
  lanes_.reserve(num_lanes);
  for (int i = 0; i < num_lanes; ++i) {
    lanes_.push_back(
        std::make_unique<Lane>(num_params, batch_size, m, Extreme::kSmallest, Extreme::kLargest));
  }
}

void Aggregator::Reset() {
  for (auto& lane : lanes_) {
    lane->bound_sum_lower.setZero();
    lane->bound_sum_upper.setZero();
    lane->value_sum_low.setZero();
    lane->value_sum_high.setZero();
    lane->low.Reset();
    lane->high.Reset();
  }
}

void Aggregator::Reset(int batch_size) {
  assert(kind_ == AggregationKind::kBoundedPoisoning ? k_ <= batch_size : k_ < batch_size);
  if (batch_size == batch_size_) {
    Reset();
    return;
  }
  batch_size_ = batch_size;
  const int m = kind_ == AggregationKind::kBoundedPoisoning ? k_ : batch_size - k_;
  for (auto& lane : lanes_) {
    lane->bound_sum_lower.setZero();
    lane->bound_sum_upper.setZero();
    lane->value_sum_low.setZero();
    lane->value_sum_high.setZero();
    lane->low.Reset(batch_size, m);
    lane->high.Reset(batch_size, m);
  }
}

Aggregator::~Aggregator() = default;
Aggregator::Aggregator(Aggregator&&) noexcept = default;
Aggregator& Aggregator::operator=(Aggregator&&) noexcept = default;

namespace {
// sum[c] += rows of the block, one row after another (the fixed order that
// makes a zero-width box match the nominal trajectory bit for bit).
void AddRowsTo(Index len, Index rows, const double* block, Index ld, double* sum) {
  const simd::Kernels& k = simd::ActiveKernels();
  for (Index r = 0; r < rows; ++r) k.add_to(block + r * ld, len, sum);
}
}  // namespace

void Aggregator::Add(int lane, const FragmentBounds& bounds) {
  const Matrix& lo = *bounds.lower;
  const bool poisoning = kind_ == AggregationKind::kBoundedPoisoning;
  AddBlock(lane, 0, num_params_, lo.rows(), num_params_, lo.data(), bounds.upper->data(),
           poisoning ? bounds.perturbed_lower->data() : nullptr,
           poisoning ? bounds.perturbed_upper->data() : nullptr);
}

void Aggregator::AddBlock(int lane_index, Index offset, Index len, Index rows, Index ld,
                          const double* lower, const double* upper, const double* perturbed_lower,
                          const double* perturbed_upper) {
  Lane& lane = *lanes_[lane_index];
  if (kind_ != AggregationKind::kBoundedPoisoning) {
    // The plain sums are taken in the same pass as the extremes.
    lane.low.AddBlock(offset, len, rows, lower, ld, lane.bound_sum_lower.data() + offset);
    lane.high.AddBlock(offset, len, rows, upper, ld, lane.bound_sum_upper.data() + offset);
    return;
  }
  // Theorem 9: the extra effect of a poisoned row is bounded by the
  // difference between its perturbed and unperturbed bounds.
  // One side: sum the bounds, and feed (perturbed - bound) to the extremes.
  // In exact arithmetic the perturbed bounds enclose the unperturbed ones
  // (interval products are inclusion-isotone), so the lower differences are
  // <= 0 and the upper ones >= 0; rounding can leave ulp-sized values of the
  // wrong sign, which would make SEMax_k smaller than the effect of poisoning
  // fewer than k rows. Clamping them at 0 keeps the bound sound.
  // The differences are computed, clamped, summed and filtered in one pass.
  for (Index r = 0; r < rows; ++r) {
    lane.low.AddClampedDifferenceSpan(offset, len, lower + r * ld, perturbed_lower + r * ld,
                                      /*upper=*/false, lane.bound_sum_lower.data() + offset,
                                      lane.value_sum_low.data() + offset);
    lane.high.AddClampedDifferenceSpan(offset, len, upper + r * ld, perturbed_upper + r * ld,
                                       /*upper=*/true, lane.bound_sum_upper.data() + offset,
                                       lane.value_sum_high.data() + offset);
  }
}

namespace {
// The factors of columns [c0, ...) of a row.
simd::RumpRow Advance(const simd::RumpRow& row, Index c0) {
  simd::RumpRow out = row;
  out.mz += c0;
  out.amz += c0;
  if (out.rz != nullptr) out.rz += c0;
  return out;
}
}  // namespace

void Aggregator::AddRumpRows(int lane_index, Index offset, Index len, const simd::RumpRow* bound,
                             const simd::RumpRow* perturbed, Index rows, bool clip,
                             double gamma) {
  Lane& lane = *lanes_[lane_index];
  const bool poison = kind_ == AggregationKind::kBoundedPoisoning;
  assert(poison == (perturbed != nullptr));
  assert(rows >= 0 && rows <= simd::kSelectRows);
#ifndef NDEBUG
  for (Index i = 1; i < rows; ++i) {  // the kernel reads row 0's pointness
    assert((bound[i].rz == nullptr) == (bound[0].rz == nullptr));
    assert(!poison || (perturbed[i].rz == nullptr) == (perturbed[0].rz == nullptr));
  }
#endif
  if (rows == 0) return;
  const simd::Kernels& k = simd::ActiveKernels();
  // The kernel flags every row's candidates against the thresholds at the
  // call; rump_winner_values then keeps, row after row and after the rows
  // before it are inserted, those above the thresholds as they are then.
  // Thresholds only rise, so that is exactly the winners of adding the rows
  // one by one (each column appears once in a row, so a row's own inserts
  // never move a threshold it still compares with).
  uint64_t win_low[simd::kSelectRows * simd::kSelectWords];
  uint64_t win_high[simd::kSelectRows * simd::kSelectWords];
  int32_t idx[simd::kFilterSpan];
  double val[simd::kFilterSpan];  // by column; only the candidates' are written
  simd::RumpRow b[simd::kSelectRows], p[simd::kSelectRows];
  simd::RumpSelectArgs a;
  a.bound = b;
  a.perturbed = poison ? p : nullptr;
  a.rows = rows;
  a.poison = poison;
  a.clip = clip;
  a.gamma = gamma;
  a.negate_low = lane.low.stores_negated();
  a.negate_high = lane.high.stores_negated();
  a.win_low = win_low;
  a.win_high = win_high;
  // Theorem 9's difference sums are Result's totals, read only when a side
  // keeps its other extremes (k > b/2); otherwise they are not taken.
  const bool value_sums = lane.low.uses_total() || lane.high.uses_total();
  for (Index c0 = 0; c0 < len; c0 += simd::kFilterSpan) {
    const Index at = offset + c0;
    a.n = std::min<Index>(simd::kFilterSpan, len - c0);
    for (Index i = 0; i < rows; ++i) {
      b[i] = Advance(bound[i], c0);
      if (poison) p[i] = Advance(perturbed[i], c0);
    }
    a.bound_sum_low = lane.bound_sum_lower.data() + at;
    a.bound_sum_high = lane.bound_sum_upper.data() + at;
    a.value_sum_low = value_sums ? lane.value_sum_low.data() + at : nullptr;
    a.value_sum_high = value_sums ? lane.value_sum_high.data() + at : nullptr;
    a.thr_low = lane.low.thresholds() + at;
    a.thr_high = lane.high.thresholds() + at;
    k.rump_select(a);
    for (Index i = 0; i < rows; ++i) {
      int64_t count = simd::WinnerColumns(win_low + i * simd::kSelectWords, a.n, idx);
      count = k.rump_winner_values(a, i, /*high=*/false, idx, count, val);
      lane.low.InsertWinners(at, idx, val, count);
      count = simd::WinnerColumns(win_high + i * simd::kSelectWords, a.n, idx);
      count = k.rump_winner_values(a, i, /*high=*/true, idx, count, val);
      lane.high.InsertWinners(at, idx, val, count);
    }
  }
}

DescentBounds Aggregator::Finish() {
  Lane& first = *lanes_[0];
  for (size_t i = 1; i < lanes_.size(); ++i) {
    Lane& other = *lanes_[i];
    first.bound_sum_lower += other.bound_sum_lower;
    first.bound_sum_upper += other.bound_sum_upper;
    first.value_sum_low += other.value_sum_low;
    first.value_sum_high += other.value_sum_high;
    first.low.Merge(other.low);
    first.high.Merge(other.high);
  }
  const bool poisoning = kind_ == AggregationKind::kBoundedPoisoning;
  const Vector low = first.low.Result(poisoning ? first.value_sum_low : first.bound_sum_lower);
  const Vector high = first.high.Result(poisoning ? first.value_sum_high : first.bound_sum_upper);
  const double b = batch_size_;
  DescentBounds out;
  switch (kind_) {
    case AggregationKind::kRemoval:  // Theorem 6
      out.lower = low / (b - k_);
      out.upper = high / (b - k_);
      break;
    case AggregationKind::kSubstitution:  // Theorem 8
      out.lower = (low.array() - k_ * gamma_) / b;
      out.upper = (high.array() + k_ * gamma_) / b;
      break;
    case AggregationKind::kBoundedPoisoning:  // Theorem 9
      out.lower = (first.bound_sum_lower + low) / b;
      out.upper = (first.bound_sum_upper + high) / b;
      break;
  }
  return out;
}

NominalAggregator::NominalAggregator(Index num_params, int batch_size, int num_lanes)
    : batch_size_(batch_size), lane_sum_(Matrix::Zero(num_lanes, num_params)) {}

void NominalAggregator::Add(int lane, const Matrix& grads) {
  AddBlock(lane, 0, grads.cols(), grads.rows(), grads.cols(), grads.data());
}

void NominalAggregator::AddBlock(int lane, Index offset, Index len, Index rows, Index ld,
                                 const double* grads) {
  AddRowsTo(len, rows, grads, ld, lane_sum_.row(lane).data() + offset);
}

void NominalAggregator::Reset() { lane_sum_.setZero(); }

void NominalAggregator::Reset(int batch_size) {
  batch_size_ = batch_size;
  Reset();
}

Vector NominalAggregator::Finish() const {
  Vector total = lane_sum_.row(0).transpose();
  for (Index i = 1; i < lane_sum_.rows(); ++i) total += lane_sum_.row(i).transpose();
  return total / static_cast<double>(batch_size_);
}

}  // namespace agt
