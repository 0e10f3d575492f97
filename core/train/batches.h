// The fixed batches of a training run (paper section 5.2 and 5.3: "the fixed
// index sets I(t) ... assigning training samples to each batch"), and rows
// removed from them in place.
//
// Batch k of every epoch is rows [k b, (k + 1) b) of the dataset, for
// k < num_rows / b; the incomplete tail (the last num_rows % b rows) is never
// trained. Removing rows in place keeps every other row in its own batch:
// batch k becomes its rows minus the removed ones, of size b_k = b - (rows
// removed from batch k), the same batches in the same order every epoch, the
// same dropped tail. This is the retraining that a removal certificate of
// budget n is about: the removal aggregation (Theorem 6) encloses the mean
// gradient over any subset of a batch of at least b - n rows, so a model
// retrained in place without at most n rows of every batch lies in the box of
// budget n. Compacting the dataset instead (Dataset::Select) moves every row
// after the first removed one into another batch: a trajectory no removal
// certificate covers.
//
// A batch with every row removed is empty; the trainer skips its steps (no
// update; the step counter, hence the learning-rate schedule, still advances).
//
// Thread-safety: immutable after Create; const methods may be called
// concurrently.
#ifndef AGT_CORE_TRAIN_BATCHES_H_
#define AGT_CORE_TRAIN_BATCHES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/types.h"

namespace agt {

class BatchPlan {
 public:
  // The batches of `num_rows` rows in batches of `batch_size`, with
  // `removed_rows` (any order) removed in place. InvalidArgument if
  // batch_size < 1 or num_rows < 0 ("batch_size: ..."), or a removed id is
  // outside [0, num_rows) or repeated ("removed_rows[i]: ...", i its position
  // in the argument). Rows in the dropped tail may be named; they change
  // nothing.
  static absl::StatusOr<BatchPlan> Create(int64_t num_rows, int batch_size,
                                          std::vector<int64_t> removed_rows = {});

  int64_t num_rows() const { return num_rows_; }
  int batch_size() const { return batch_size_; }
  int64_t batches_per_epoch() const { return num_rows_ / batch_size_; }
  // The incomplete tail, never trained (removed rows of the tail included).
  int64_t dropped_rows() const { return num_rows_ % batch_size_; }
  // The removed ids, ascending.
  const std::vector<int64_t>& removed_rows() const { return removed_; }
  // True when some trained batch lost a row (rows removed from the tail only
  // leave every batch as it was).
  bool changes_batches() const { return removed_in_batches_ > 0; }

  // The batch that trains `row` (0 <= row < num_rows), or -1 for a row of the
  // dropped tail. A removed row still maps to the batch it was removed from.
  int64_t BatchOf(int64_t row) const;
  bool IsRemoved(int64_t row) const;
  // Rows batch k (0 <= k < batches_per_epoch) removed in place.
  int RemovedFrom(int64_t k) const;
  // b_k: the rows batch k trains.
  int RowsIn(int64_t k) const { return batch_size_ - RemovedFrom(k); }
  // The rows batch k trains, ascending.
  std::vector<Index> Rows(int64_t k) const;
  // The smallest b_k over batches that keep at least one row (batch_size when
  // nothing is removed; 0 when every batch is empty), and one batch with that
  // size (-1 when every batch is empty).
  int SmallestBatch() const { return smallest_; }
  int64_t SmallestBatchIndex() const { return smallest_index_; }

 private:
  BatchPlan() = default;

  int64_t num_rows_ = 0;
  int batch_size_ = 1;
  std::vector<int64_t> removed_;
  int64_t removed_in_batches_ = 0;
  int smallest_ = 0;
  int64_t smallest_index_ = -1;
};

}  // namespace agt

#endif  // AGT_CORE_TRAIN_BATCHES_H_
