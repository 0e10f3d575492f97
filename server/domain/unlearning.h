// Unlearning gatekeeping for stored models (paper section 10.1;
// ARCHITECTURE.md section 3): which models can be gated, and per input
// whether its prediction is certified unchanged by d accepted deletions.
// The decisions are the core's (core/unlearn/unlearn.h); this layer reads
// the stored model (its removal budgets, ordered and deduplicated), runs the
// certifier (domain/certifier.h) and derives the retraining dataset.
//
// Soundness claim (inherited): if each stored removal box encloses every
// model retrained without up to n rows, a point reported certified
// unchanged gets the served model's prediction from the model retrained
// without the d deleted rows. Only classification models trained under
// PERTURBATION_KIND_REMOVAL qualify.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_DOMAIN_UNLEARNING_H_
#define AGT_SERVER_DOMAIN_UNLEARNING_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/unlearning.pb.h"
#include "core/data/dataset.h"
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

// Certifies `inputs` against the model's boxes and answers, per row, the
// prediction, whether it is certified unchanged by d deletions (core
// CertifiedUnchanged) and the largest stable removal budget. Errors as
// RemovalBudgets and CertifyPredictions (InvalidArgument naming
// "inputs..."); InvalidArgument if d < 0.
absl::StatusOr<agt::v1::CheckUnlearningResponse> CheckUnlearning(const ModelRecord& model,
                                                                 const agt::v1::Matrix& inputs,
                                                                 int64_t d);

// Sets certified_unchanged and deletions on every point of a
// CertifyPredictions response of a removal model (points in request order,
// `stable` in the model's budget order). Same errors as RemovalBudgets.
absl::Status AddUnlearningCertificates(const ModelRecord& model, int64_t d,
                                       agt::v1::CertifyPredictionsResponse* response);

// Up to max_rows rows of `data`, evenly spaced (always the same rows for the
// same data), as a Matrix of raw inputs.
agt::v1::Matrix AuditSample(const agt::Dataset& data, int64_t max_rows);

// `data` without the rows listed (ids outside the data are ignored), in the
// original order: the training set of a retraining.
agt::Dataset WithoutRows(const agt::Dataset& data, const std::vector<int64_t>& rows);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_UNLEARNING_H_
