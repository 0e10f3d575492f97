// Unlearning gatekeeping for stored models (paper section 10.1;
// ARCHITECTURE.md section 3): which models can be gated, the batches a model
// was trained on, its accepted deletions counted per batch, per input
// whether its prediction is certified unchanged, and the in-place retraining
// that the certificate is about. The decisions are the core's
// (core/unlearn/unlearn.h, core/train/batches.h); this layer reads the
// stored model (its spec, its removal budgets, ordered and deduplicated),
// runs the certifier (domain/certifier.h) and builds the retraining's spec.
//
// Soundness claim (inherited): if each stored removal box encloses every
// model retrained in place without up to n rows of every batch (the batches'
// index sets fixed), a point reported certified unchanged gets the served
// model's prediction from the model retrained in place without the accepted
// deletions (PlanInPlaceRetraining's job, trained by the job runner with
// TrainingJobSpec.removed_rows). Only classification models trained under
// PERTURBATION_KIND_REMOVAL qualify.
//
// Thread-safety: pure functions, except CountAcceptedDeletions (reads the
// store, which is thread-safe).
#ifndef AGT_SERVER_DOMAIN_UNLEARNING_H_
#define AGT_SERVER_DOMAIN_UNLEARNING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/unlearning.pb.h"
#include "agt/v1/training.pb.h"
#include "core/data/dataset.h"
#include "core/train/batches.h"
#include "core/unlearn/unlearn.h"
#include "server/domain/certifier.h"
#include "server/store/store.h"

namespace agt::server {

// The most row ids one RequestDeletion may carry.
inline constexpr int64_t kMaxDeletionRowIds = 100'000;
// The most training rows certified for the audit fraction of a status.
inline constexpr int64_t kMaxAuditRows = 1000;

// The model's distinct removal budgets n, ascending. FailedPrecondition
// naming the model when it was not trained under PERTURBATION_KIND_REMOVAL
// or is a regression model (no stability certificates); DataLoss when its
// stored spec does not parse.
absl::StatusOr<std::vector<int>> RemovalBudgets(const ModelRecord& model);

// The batches `model` was trained on: its spec's batch_size and removed_rows
// over its dataset's `num_rows` rows. DataLoss when the stored spec does not
// parse or its removed rows do not fit num_rows.
absl::StatusOr<agt::BatchPlan> TrainingBatches(const ModelRecord& model, int64_t num_rows);

// The model's accepted deletions counted per batch of its training (d, m).
// Reads the ledger and the row count of the training dataset; when that
// dataset was deleted, every ledger row is counted as if trained (the tail is
// not known): m can only come out larger, never unsound. NotFound for an
// unknown or foreign model.
absl::StatusOr<agt::DeletionCount> CountAcceptedDeletions(Store& store, const std::string& tenant,
                                                          const ModelRecord& model);

// Certifies `inputs` against the model's boxes and answers, per row, the
// prediction, whether it is certified unchanged by the deletions `d` (core
// CertifiedUnchanged at d.max_per_batch) and the largest stable removal
// budget. Errors as RemovalBudgets and CertifyPredictions (InvalidArgument
// naming "inputs..."; `options`: its chunks, stop checks and shared memory).
absl::StatusOr<agt::v1::CheckUnlearningResponse> CheckUnlearning(const ModelRecord& model,
                                                                 const agt::v1::Matrix& inputs,
                                                                 const agt::DeletionCount& d,
                                                                 const CertifyOptions& options = {});

// Sets certified_unchanged, deletions and max_deletions_per_batch on every
// point of a CertifyPredictions response of a removal model (points in
// request order, `stable` in the model's budget order). Same errors as
// RemovalBudgets.
absl::Status AddUnlearningCertificates(const ModelRecord& model, const agt::DeletionCount& d,
                                       agt::v1::CertifyPredictionsResponse* response);

// Up to max_rows rows of `data`, evenly spaced (always the same rows for the
// same data), as a Matrix of raw inputs.
agt::v1::Matrix AuditSample(const agt::Dataset& data, int64_t max_rows);

// The spec of the in-place retraining of `model` without `ledger_rows` (its
// ledger, accepted or not), on its own dataset `dataset`: the model's spec
// with removed_rows = the rows its training removed plus ledger_rows (sorted,
// distinct), and only the budgets that still fit every non-empty batch
// (removal budget n < the smallest batch left); budget 0 when none does.
struct InPlaceRetraining {
  agt::v1::TrainingJobSpec spec;
  std::vector<int> budgets;          // the job's removal budgets, in spec order
  std::vector<int> dropped_budgets;  // the model's budgets that did not fit
  int smallest_batch = 0;            // rows of the smallest non-empty batch
  int64_t smallest_batch_index = -1;
};
// FailedPrecondition naming the model when no row would be left to train or
// the spec no longer resolves against the dataset (ResolveJobSpec's message);
// DataLoss when the stored spec does not parse.
absl::StatusOr<InPlaceRetraining> PlanInPlaceRetraining(const ModelRecord& model,
                                                        const DatasetRecord& dataset,
                                                        const std::vector<int64_t>& ledger_rows);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_UNLEARNING_H_
