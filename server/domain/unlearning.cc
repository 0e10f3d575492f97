#include "server/domain/unlearning.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "core/common/status_details.h"
#include "core/unlearn/unlearn.h"
#include "server/domain/certifier.h"
#include "server/domain/job_spec.h"

namespace agt::server {
namespace {

int LargestStable(const std::vector<int>& budgets, const std::vector<std::vector<bool>>& stable,
                  int point) {
  for (int j = static_cast<int>(budgets.size()) - 1; j >= 0; --j) {
    if (stable[j][point]) return budgets[j];
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::vector<int>> RemovalBudgets(const ModelRecord& model) {
  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(model.spec)) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
  }
  if (spec.perturbation().kind() != agt::v1::PERTURBATION_KIND_REMOVAL) {
    return WithMetadata(
        WithReason(absl::FailedPreconditionError(absl::StrCat(
                       "model ", model.id, " was trained under ",
                       agt::v1::PerturbationKind_Name(spec.perturbation().kind()),
                       "; unlearning needs a model trained under PERTURBATION_KIND_REMOVAL")),
                   kReasonModelKindNotSupported),
        "model_id", model.id);
  }
  if (model.num_classes == 0) {
    return WithMetadata(
        WithReason(absl::FailedPreconditionError(absl::StrCat(
                       "model ", model.id,
                       " is a regression model; unlearning certificates need classes")),
                   kReasonModelKindNotSupported),
        "model_id", model.id);
  }
  return DistinctBudgets(model);
}

absl::StatusOr<agt::BatchPlan> TrainingBatches(const ModelRecord& model, int64_t num_rows) {
  agt::v1::TrainingJobSpec spec;
  if (!spec.ParseFromString(model.spec)) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
  }
  absl::StatusOr<agt::BatchPlan> plan = agt::BatchPlan::Create(
      num_rows, spec.batch_size(),
      std::vector<int64_t>(spec.removed_rows().begin(), spec.removed_rows().end()));
  if (!plan.ok()) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": its training batches (",
                                            num_rows, " rows) do not match its spec: ",
                                            plan.status().message()));
  }
  return plan;
}

absl::StatusOr<agt::DeletionCount> CountAcceptedDeletions(Store& store, const std::string& tenant,
                                                          const ModelRecord& model) {
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store.ListDeletions(tenant, model.id);
  if (!ledger.ok()) return ledger.status();
  std::vector<int64_t> rows;
  for (const DeletionRecord& r : *ledger) {
    if (r.accepted) rows.push_back(r.row_id);
  }
  int64_t num_rows = 0;
  absl::StatusOr<DatasetRecord> dataset = store.GetDataset(tenant, model.dataset_id);
  if (dataset.ok()) {
    num_rows = dataset->num_rows;
  } else if (absl::IsNotFound(dataset.status())) {
    // The dataset is gone, and with it where its dropped tail began: count
    // every row as trained, with as many whole batches as the ids need.
    agt::v1::TrainingJobSpec spec;
    if (!spec.ParseFromString(model.spec) || spec.batch_size() < 1) {
      return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
    }
    int64_t largest = -1;
    for (int64_t r : rows) largest = std::max(largest, r);
    for (int64_t r : spec.removed_rows()) largest = std::max(largest, r);
    const int64_t b = spec.batch_size();
    num_rows = (largest + b) / b * b;
  } else {
    return dataset.status();
  }
  absl::StatusOr<agt::BatchPlan> batches = TrainingBatches(model, num_rows);
  if (!batches.ok()) return batches.status();
  return agt::CountPerBatch(*batches, rows);
}

absl::StatusOr<agt::v1::CheckUnlearningResponse> CheckUnlearning(const ModelRecord& model,
                                                                 const agt::v1::Matrix& inputs,
                                                                 const agt::DeletionCount& d,
                                                                 const CertifyOptions& options) {
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(model);
  if (!budgets.ok()) return budgets.status();
  agt::v1::CertifyPredictionsRequest request;
  *request.mutable_inputs() = inputs;
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> certified =
      CertifyPredictions(model, request, options);
  if (!certified.ok()) return certified.status();
  const std::vector<std::vector<bool>> stable =
      StablePerDistinctBudget(model, *budgets, *certified);
  absl::StatusOr<std::vector<bool>> unchanged =
      agt::CertifiedUnchanged(*budgets, stable, d.max_per_batch);
  if (!unchanged.ok()) return unchanged.status();

  agt::v1::CheckUnlearningResponse response;
  for (int i = 0; i < certified->points_size(); ++i) {
    agt::v1::UnlearningCheck* check = response.add_points();
    check->set_predicted_class(certified->points(i).predicted_class());
    check->set_certified_unchanged((*unchanged)[i]);
    check->set_largest_stable_budget(LargestStable(*budgets, stable, i));
  }
  response.set_deletions(d.total);
  response.set_max_deletions_per_batch(d.max_per_batch);
  response.set_max_budget(budgets->empty() ? 0 : budgets->back());
  response.set_guarantee(absl::StrCat(
      GuaranteeText(model, 0.0), " With d = ", d.total, " rows deleted, at most m = ",
      d.max_per_batch,
      " of them in one trained batch, a prediction is certified unchanged iff it is stable at a "
      "trained removal budget n >= m (m = 0: the served model itself). The claim is about the "
      "model retrained in place without the deleted rows (every other row in its batch, the "
      "batches' index sets fixed: RetrainInPlace), not about a retraining on a compacted "
      "dataset."));
  return response;
}

absl::Status AddUnlearningCertificates(const ModelRecord& model, const agt::DeletionCount& d,
                                       agt::v1::CertifyPredictionsResponse* response) {
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(model);
  if (!budgets.ok()) return budgets.status();
  const std::vector<std::vector<bool>> stable = StablePerDistinctBudget(model, *budgets, *response);
  absl::StatusOr<std::vector<bool>> unchanged =
      agt::CertifiedUnchanged(*budgets, stable, d.max_per_batch);
  if (!unchanged.ok()) return unchanged.status();
  for (int i = 0; i < response->points_size(); ++i) {
    response->mutable_points(i)->set_certified_unchanged((*unchanged)[i]);
    response->mutable_points(i)->set_deletions(d.total);
    response->mutable_points(i)->set_max_deletions_per_batch(d.max_per_batch);
  }
  return absl::OkStatus();
}

agt::v1::Matrix AuditSample(const agt::Dataset& data, int64_t max_rows) {
  const int64_t n = data.size();
  const int64_t rows = std::min(n, std::max<int64_t>(max_rows, 0));
  agt::v1::Matrix m;
  m.set_rows(rows);
  m.set_cols(data.dim());
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t row = i * n / rows;  // evenly spaced, first row included
    for (int64_t j = 0; j < data.dim(); ++j) m.add_values(data.x(row, j));
  }
  return m;
}

absl::StatusOr<InPlaceRetraining> PlanInPlaceRetraining(const ModelRecord& model,
                                                        const DatasetRecord& dataset,
                                                        const std::vector<int64_t>& ledger_rows) {
  InPlaceRetraining out;
  if (!out.spec.ParseFromString(model.spec)) {
    return absl::DataLossError(absl::StrCat("model ", model.id, ": stored spec does not parse"));
  }
  std::vector<int64_t> removed(out.spec.removed_rows().begin(), out.spec.removed_rows().end());
  removed.insert(removed.end(), ledger_rows.begin(), ledger_rows.end());
  std::sort(removed.begin(), removed.end());
  removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
  absl::StatusOr<agt::BatchPlan> plan =
      agt::BatchPlan::Create(dataset.num_rows, out.spec.batch_size(), removed);
  if (!plan.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot retrain model ", model.id, " in place: ", plan.status().message()));
  }
  if (plan->SmallestBatch() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot retrain model ", model.id, " in place: its ", removed.size(),
        " removed rows leave no row in any of the ", plan->batches_per_epoch(),
        " trained batches of batch_size ", out.spec.batch_size()));
  }
  out.smallest_batch = plan->SmallestBatch();
  out.smallest_batch_index = plan->SmallestBatchIndex();
  // A budget counts rows of a batch as it is trained: n must stay below the
  // smallest batch left. Such a budget certifies nothing about the
  // retraining's own deletions, so it is dropped rather than refused.
  google::protobuf::RepeatedPtrField<agt::v1::Budget> kept;
  for (const agt::v1::Budget& b : out.spec.budgets()) {
    if (b.n() < out.smallest_batch) {
      *kept.Add() = b;
      out.budgets.push_back(b.n());
    } else {
      out.dropped_budgets.push_back(b.n());
    }
  }
  if (kept.empty()) {
    kept.Add()->set_n(0);
    out.budgets.push_back(0);
  }
  *out.spec.mutable_budgets() = std::move(kept);
  out.spec.mutable_removed_rows()->Assign(removed.begin(), removed.end());
  out.spec.set_dataset_id(dataset.id);
  const std::string name =
      absl::StrCat(out.spec.name(), " (retrained in place without ", removed.size(), " rows)");
  out.spec.set_name(name.substr(0, kMaxJobNameLength));
  if (absl::StatusOr<ResolvedJob> resolved = ResolveJobSpec(out.spec, dataset); !resolved.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot retrain model ", model.id,
                                                      " in place: ", resolved.status().message()));
  }
  return out;
}

}  // namespace agt::server
