// Unlearning gatekeeping (paper section 10.1; ARCHITECTURE.md section 3,
// "Unlearning gatekeeping"): the pure decisions behind a deletion ledger.
//
// A model trained under removal budgets N = {n_1 < ... < n_k} has boxes that
// enclose every model retrained without up to n_j rows (in total, dataset
// wide). With d distinct rows deleted, a prediction is certified unchanged
// iff it is stable at some trained n_j >= d; once d would pass max N no
// certificate covers the deletions and the model must be retrained. These
// functions decide; the server owns, persists and serialises the ledger.
//
// Soundness assumptions: the stability flags are sound certificates
// (core/certify/certify.h) from boxes trained under the removal perturbation
// model, and training is deterministic, so d = 0 reproduces the served model.
#ifndef AGT_CORE_UNLEARN_UNLEARN_H_
#define AGT_CORE_UNLEARN_UNLEARN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace agt {

// The outcome of one deletion request against the ledger.
struct DeletionDecision {
  std::vector<int64_t> new_rows;  // sorted, distinct, not deleted before
  // Ids that add nothing: repeats within the request, or rows already deleted.
  int64_t duplicate_count = 0;
  int64_t d_before = 0;  // distinct rows deleted before the request
  int64_t d_after = 0;   // d_before + new_rows.size()
  int max_budget = 0;    // max N (0 if the model has no removal budgets)
  // d_after <= max_budget: the rows may join the ledger and predictions can
  // still be certified. False: retraining required; the caller must not
  // serve the request as certified.
  bool accepted = false;
  bool retraining_required() const { return !accepted; }
};

// Decides a request for the rows `request` against `already_deleted` (the
// distinct row ids accepted so far, any order) on a model trained on
// `num_training_rows` rows with removal budgets `budgets_sorted`.
// InvalidArgument if the request is empty, names a row outside
// [0, num_training_rows) (the message names the id), or the budgets are not
// strictly increasing and >= 0; FailedPrecondition if `already_deleted` has a
// repeated or out-of-range id (a corrupt ledger).
absl::StatusOr<DeletionDecision> DecideDeletion(const std::vector<int>& budgets_sorted,
                                                int64_t num_training_rows,
                                                const std::vector<int64_t>& already_deleted,
                                                const std::vector<int64_t>& request);

// Per input, whether its prediction is certified unchanged after d distinct
// deletions: d == 0 (nothing deleted) or stable_per_budget[j][i] for some j
// with budgets_sorted[j] >= d. InvalidArgument if d < 0, the budgets are not
// strictly increasing and >= 0, or the flag table's shape does not match
// (one row of flags per budget, all of equal length).
absl::StatusOr<std::vector<bool>> CertifiedUnchanged(
    const std::vector<int>& budgets_sorted, const std::vector<std::vector<bool>>& stable_per_budget,
    int64_t d);

}  // namespace agt

#endif  // AGT_CORE_UNLEARN_UNLEARN_H_
