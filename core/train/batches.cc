#include "core/train/batches.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace agt {

absl::StatusOr<BatchPlan> BatchPlan::Create(int64_t num_rows, int batch_size,
                                            std::vector<int64_t> removed_rows) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size: ", batch_size, " must be >= 1"));
  }
  if (num_rows < 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_rows: ", num_rows, " must be >= 0"));
  }
  // Sort positions so that a repeat names both places it occurs.
  std::vector<size_t> order(removed_rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return removed_rows[a] < removed_rows[b]; });
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t row = removed_rows[order[i]];
    if (row < 0 || row >= num_rows) {
      return absl::InvalidArgumentError(absl::StrCat("removed_rows[", order[i], "]: ", row,
                                                     " is outside the dataset's ", num_rows,
                                                     " rows (0..", num_rows - 1, ")"));
    }
    if (i > 0 && removed_rows[order[i - 1]] == row) {
      return absl::InvalidArgumentError(absl::StrCat("removed_rows[", order[i], "]: ", row,
                                                     " is repeated (also removed_rows[",
                                                     order[i - 1], "])"));
    }
  }
  BatchPlan plan;
  plan.num_rows_ = num_rows;
  plan.batch_size_ = batch_size;
  std::sort(removed_rows.begin(), removed_rows.end());
  plan.removed_ = std::move(removed_rows);

  // Only batches that lost rows are smaller than batch_size.
  const int64_t batches = plan.batches_per_epoch();
  const int64_t trained_end = batches * batch_size;
  int64_t first_whole = batches > 0 ? 0 : -1;  // the first batch that lost nothing
  int64_t batches_hit = 0;
  int smallest_hit = batch_size + 1;  // the smallest non-empty batch that lost rows
  int64_t smallest_hit_index = -1;
  auto it = plan.removed_.begin();
  while (it != plan.removed_.end() && *it < trained_end) {
    const int64_t k = *it / batch_size;
    const auto end = std::lower_bound(it, plan.removed_.end(), (k + 1) * batch_size);
    const int left = batch_size - static_cast<int>(end - it);
    plan.removed_in_batches_ += end - it;
    ++batches_hit;
    if (first_whole == k) first_whole = k + 1;
    if (left > 0 && left < smallest_hit) {
      smallest_hit = left;
      smallest_hit_index = k;
    }
    it = end;
  }
  if (smallest_hit_index >= 0) {
    plan.smallest_ = smallest_hit;
    plan.smallest_index_ = smallest_hit_index;
  } else if (batches_hit < batches) {
    plan.smallest_ = batch_size;
    plan.smallest_index_ = first_whole;
  } else {
    plan.smallest_ = 0;  // every batch is empty, or there is none
    plan.smallest_index_ = -1;
  }
  return plan;
}

int64_t BatchPlan::BatchOf(int64_t row) const {
  const int64_t k = row / batch_size_;
  return k < batches_per_epoch() ? k : -1;
}

bool BatchPlan::IsRemoved(int64_t row) const {
  return std::binary_search(removed_.begin(), removed_.end(), row);
}

int BatchPlan::RemovedFrom(int64_t k) const {
  const auto begin = std::lower_bound(removed_.begin(), removed_.end(), k * batch_size_);
  const auto end = std::lower_bound(begin, removed_.end(), (k + 1) * batch_size_);
  return static_cast<int>(end - begin);
}

std::vector<Index> BatchPlan::Rows(int64_t k) const {
  const int64_t first = k * batch_size_;
  auto removed = std::lower_bound(removed_.begin(), removed_.end(), first);
  std::vector<Index> rows;
  rows.reserve(static_cast<size_t>(batch_size_));
  for (int64_t row = first; row < first + batch_size_; ++row) {
    if (removed != removed_.end() && *removed == row) {
      ++removed;
      continue;
    }
    rows.push_back(static_cast<Index>(row));
  }
  return rows;
}

}  // namespace agt
