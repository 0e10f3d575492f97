// Unlearning gatekeeping (paper section 10.1; ARCHITECTURE.md section 3,
// "Unlearning gatekeeping"): the pure decisions behind a deletion ledger.
//
// A model trained under removal budgets N = {n_1 < ... < n_k} has boxes that
// enclose every model retrained without up to n_j rows PER BATCH, with the
// batches' index sets fixed (paper section 5.3, Theorem 6): the retraining
// that removes the rows in place (core/train/batches.h), where every other
// row stays in its batch. So deletions are counted per batch: with m = the
// largest number of deleted rows in any one trained batch (rows of the
// dropped tail were never trained and count 0), a prediction is certified
// unchanged by the in-place retraining iff it is stable at some trained
// n_j >= m; more deletions than max N in total are covered when they are
// spread over the batches. Once m would pass max N no certificate covers
// the deletions and the model must be retrained. These functions decide; the
// server owns, persists and serialises the ledger.
//
// Soundness assumptions: the stability flags are sound certificates
// (core/certify/certify.h) from boxes trained under the removal perturbation
// model, the retraining removes the rows in place with every other setting
// unchanged (data order, initialisation, hyper-parameters), and training is
// deterministic, so m = 0 reproduces the served model bit for bit. The claim
// is not about a retraining on a compacted dataset (rows moved between
// batches).
#ifndef AGT_CORE_UNLEARN_UNLEARN_H_
#define AGT_CORE_UNLEARN_UNLEARN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/train/batches.h"

namespace agt {

// A set of deleted rows counted over a model's batches.
struct DeletionCount {
  int64_t total = 0;          // d: distinct rows
  int64_t max_per_batch = 0;  // m: the most rows in one trained batch
  int64_t fullest_batch = -1;  // a batch holding m rows (-1 when m == 0)
};

// Counts `rows` (distinct ids in [0, training.num_rows()), none removed by
// the training itself; the caller guarantees it) per batch of `training`.
DeletionCount CountPerBatch(const BatchPlan& training, const std::vector<int64_t>& rows);

// The outcome of one deletion request against the ledger.
struct DeletionDecision {
  std::vector<int64_t> new_rows;  // sorted, distinct, not deleted before
  // Ids that add nothing: repeats within the request, rows already deleted,
  // or rows the model's own training removed (a retrained model).
  int64_t duplicate_count = 0;
  DeletionCount before;  // the accepted deletions before the request
  DeletionCount after;   // before plus new_rows
  int max_budget = 0;    // max N (0 if the model has no removal budgets)
  // after.max_per_batch <= max_budget: the rows may join the ledger and
  // predictions can still be certified. False: retraining required; the
  // caller must not serve the request as certified.
  bool accepted = false;
  bool retraining_required() const { return !accepted; }
};

// Decides a request for the rows `request` against `already_deleted` (the
// distinct row ids accepted so far, any order) on a model whose training had
// the batches `training` (its dataset's rows, batch size and the rows it
// removed in place) and removal budgets `budgets_sorted`.
// InvalidArgument if the request is empty, names a row outside
// [0, training.num_rows()) (the message names the id), or the budgets are not
// strictly increasing and >= 0; FailedPrecondition if `already_deleted` has a
// repeated, out-of-range or training-removed id (a corrupt ledger).
absl::StatusOr<DeletionDecision> DecideDeletion(const std::vector<int>& budgets_sorted,
                                                const BatchPlan& training,
                                                const std::vector<int64_t>& already_deleted,
                                                const std::vector<int64_t>& request);

// Per input, whether its prediction is certified unchanged by deletions with
// at most `max_per_batch` deleted rows in any one trained batch (m of
// DeletionCount), for the in-place retraining: m == 0 (no trained row
// deleted) or stable_per_budget[j][i] for some j with budgets_sorted[j] >= m.
// InvalidArgument if m < 0, the budgets are not strictly increasing and >= 0,
// or the flag table's shape does not match (one row of flags per budget, all
// of equal length).
absl::StatusOr<std::vector<bool>> CertifiedUnchanged(
    const std::vector<int>& budgets_sorted, const std::vector<std::vector<bool>>& stable_per_budget,
    int64_t max_per_batch);

}  // namespace agt

#endif  // AGT_CORE_UNLEARN_UNLEARN_H_
