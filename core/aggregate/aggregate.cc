#include "core/aggregate/aggregate.h"

#include <algorithm>
#include <cassert>

namespace agt {

StreamingExtremeSum::StreamingExtremeSum(Index num_columns, int total_rows, int m, Extreme which)
    : num_columns_(num_columns), total_rows_(total_rows), m_(m), which_(which) {
  assert(m >= 0 && m <= total_rows);
  // Keep the m extremes asked for, or the total_rows - m of the other side,
  // whichever is fewer; the latter's sum is subtracted from the total.
  keep_opposite_ = m > total_rows - m;
  keep_ = keep_opposite_ ? total_rows - m : m;
  slots_.assign(static_cast<size_t>(keep_) * num_columns_, 0.0);
  threshold_.assign(num_columns_, 0.0);
  threshold_slot_.assign(num_columns_, 0);
}

// Values are stored multiplied by `sign`, so the accumulator always keeps the
// largest stored values.
namespace {
inline double StoredSign(Extreme which, bool opposite) {
  const bool keep_largest = (which == Extreme::kLargest) != opposite;
  return keep_largest ? 1.0 : -1.0;
}

inline void FindMin(const double* slots, int keep, double* value, int* slot) {
  int best = 0;
  for (int s = 1; s < keep; ++s) {
    if (slots[s] < slots[best]) best = s;
  }
  *value = slots[best];
  *slot = best;
}
}  // namespace

void StreamingExtremeSum::AddRow(const double* row) {
  assert(rows_seen_ < total_rows_);
  const double sign = StoredSign(which_, keep_opposite_);
  if (keep_ == 0) {
    ++rows_seen_;
    return;
  }
  if (rows_seen_ < keep_) {
    for (Index c = 0; c < num_columns_; ++c) {
      slots_[c * keep_ + rows_seen_] = sign * row[c];
    }
    ++rows_seen_;
    if (rows_seen_ == keep_) {
      for (Index c = 0; c < num_columns_; ++c) {
        FindMin(&slots_[c * keep_], keep_, &threshold_[c], &threshold_slot_[c]);
      }
    }
    return;
  }
  ++rows_seen_;
  double* thr = threshold_.data();
  for (Index c = 0; c < num_columns_; ++c) {
    const double v = sign * row[c];
    if (v > thr[c]) Insert(c, v);
  }
}

void StreamingExtremeSum::Insert(Index column, double value) {
  double* slots = &slots_[column * keep_];
  slots[threshold_slot_[column]] = value;
  FindMin(slots, keep_, &threshold_[column], &threshold_slot_[column]);
}

void StreamingExtremeSum::AddRows(const Eigen::Ref<const Matrix>& rows) {
  assert(rows.cols() == num_columns_);
  for (Index r = 0; r < rows.rows(); ++r) AddRow(rows.row(r).data());
}

void StreamingExtremeSum::Merge(const StreamingExtremeSum& other) {
  assert(other.num_columns_ == num_columns_ && other.keep_ == keep_ &&
         other.keep_opposite_ == keep_opposite_ && other.which_ == which_);
  const int mine = std::min(rows_seen_, keep_);
  const int theirs = std::min(other.rows_seen_, keep_);
  rows_seen_ += other.rows_seen_;
  assert(rows_seen_ <= total_rows_);
  if (keep_ == 0 || theirs == 0) return;
  const int kept = std::min(keep_, mine + theirs);
  std::vector<double> buf(mine + theirs);
  for (Index c = 0; c < num_columns_; ++c) {
    double* slots = &slots_[c * keep_];
    std::copy(slots, slots + mine, buf.begin());
    std::copy(&other.slots_[c * keep_], &other.slots_[c * keep_] + theirs, buf.begin() + mine);
    std::partial_sort(buf.begin(), buf.begin() + kept, buf.end(), std::greater<double>());
    std::copy(buf.begin(), buf.begin() + kept, slots);
    if (kept == keep_) FindMin(slots, keep_, &threshold_[c], &threshold_slot_[c]);
  }
}

Vector StreamingExtremeSum::Result(const Vector& total) const {
  assert(rows_seen_ == total_rows_);
  const double sign = StoredSign(which_, keep_opposite_);
  Vector out(num_columns_);
  std::vector<double> buf(keep_);
  for (Index c = 0; c < num_columns_; ++c) {
    std::copy(&slots_[c * keep_], &slots_[c * keep_] + keep_, buf.begin());
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
  Vector value_sum_low;    // sum of the values fed to `low` (differences for poisoning)
  Vector value_sum_high;
  StreamingExtremeSum low;
  StreamingExtremeSum high;
  Matrix diff;  // poisoning scratch
};

Aggregator::Aggregator(AggregationKind kind, Index num_params, int batch_size, int k,
                       double gamma, int num_lanes)
    : kind_(kind), num_params_(num_params), batch_size_(batch_size), k_(k), gamma_(gamma) {
  assert(num_lanes >= 1);
  const int m = kind == AggregationKind::kBoundedPoisoning ? k : batch_size - k;
  lanes_.reserve(num_lanes);
  for (int i = 0; i < num_lanes; ++i) {
    lanes_.push_back(std::make_unique<Lane>(num_params, batch_size, m, Extreme::kSmallest,
                                            Extreme::kLargest));
  }
}

Aggregator::~Aggregator() = default;
Aggregator::Aggregator(Aggregator&&) noexcept = default;
Aggregator& Aggregator::operator=(Aggregator&&) noexcept = default;

void Aggregator::Add(int lane_index, const FragmentBounds& bounds) {
  Lane& lane = *lanes_[lane_index];
  const Matrix& lo = *bounds.lower;
  const Matrix& hi = *bounds.upper;
  lane.bound_sum_lower += lo.colwise().sum().transpose();
  lane.bound_sum_upper += hi.colwise().sum().transpose();
  if (kind_ != AggregationKind::kBoundedPoisoning) {
    lane.value_sum_low += lo.colwise().sum().transpose();
    lane.value_sum_high += hi.colwise().sum().transpose();
    lane.low.AddRows(lo);
    lane.high.AddRows(hi);
    return;
  }
  // Theorem 9: the extra effect of a poisoned row is bounded by the
  // difference between its perturbed and unperturbed bounds.
  lane.diff = *bounds.perturbed_lower - lo;
  lane.value_sum_low += lane.diff.colwise().sum().transpose();
  lane.low.AddRows(lane.diff);
  lane.diff = *bounds.perturbed_upper - hi;
  lane.value_sum_high += lane.diff.colwise().sum().transpose();
  lane.high.AddRows(lane.diff);
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
  const Vector low = first.low.Result(first.value_sum_low);
  const Vector high = first.high.Result(first.value_sum_high);
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
  lane_sum_.row(lane) += grads.colwise().sum();
}

Vector NominalAggregator::Finish() const {
  Vector total = lane_sum_.row(0).transpose();
  for (Index i = 1; i < lane_sum_.rows(); ++i) total += lane_sum_.row(i).transpose();
  return total / static_cast<double>(batch_size_);
}

}  // namespace agt
