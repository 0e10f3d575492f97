#include "server/domain/unlearning.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "core/unlearn/unlearn.h"
#include "server/domain/certifier.h"

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
    return absl::FailedPreconditionError(
        absl::StrCat("model ", model.id, " was trained under ",
                     agt::v1::PerturbationKind_Name(spec.perturbation().kind()),
                     "; unlearning needs a model trained under PERTURBATION_KIND_REMOVAL"));
  }
  if (model.num_classes == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", model.id, " is a regression model; unlearning certificates need classes"));
  }
  return DistinctBudgets(model);
}

absl::StatusOr<agt::v1::CheckUnlearningResponse> CheckUnlearning(const ModelRecord& model,
                                                                 const agt::v1::Matrix& inputs,
                                                                 int64_t d) {
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(model);
  if (!budgets.ok()) return budgets.status();
  agt::v1::CertifyPredictionsRequest request;
  *request.mutable_inputs() = inputs;
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> certified =
      CertifyPredictions(model, request);
  if (!certified.ok()) return certified.status();
  const std::vector<std::vector<bool>> stable =
      StablePerDistinctBudget(model, *budgets, *certified);
  absl::StatusOr<std::vector<bool>> unchanged = agt::CertifiedUnchanged(*budgets, stable, d);
  if (!unchanged.ok()) return unchanged.status();

  agt::v1::CheckUnlearningResponse response;
  for (int i = 0; i < certified->points_size(); ++i) {
    agt::v1::UnlearningCheck* check = response.add_points();
    check->set_predicted_class(certified->points(i).predicted_class());
    check->set_certified_unchanged((*unchanged)[i]);
    check->set_largest_stable_budget(LargestStable(*budgets, stable, i));
  }
  response.set_deletions(d);
  response.set_max_budget(budgets->empty() ? 0 : budgets->back());
  response.set_guarantee(absl::StrCat(
      GuaranteeText(model, 0.0), " With d = ", d,
      " rows deleted, a prediction is certified unchanged iff it is stable at a trained removal "
      "budget n >= d (d = 0: the served model itself)."));
  return response;
}

absl::Status AddUnlearningCertificates(const ModelRecord& model, int64_t d,
                                       agt::v1::CertifyPredictionsResponse* response) {
  absl::StatusOr<std::vector<int>> budgets = RemovalBudgets(model);
  if (!budgets.ok()) return budgets.status();
  const std::vector<std::vector<bool>> stable = StablePerDistinctBudget(model, *budgets, *response);
  absl::StatusOr<std::vector<bool>> unchanged = agt::CertifiedUnchanged(*budgets, stable, d);
  if (!unchanged.ok()) return unchanged.status();
  for (int i = 0; i < response->points_size(); ++i) {
    response->mutable_points(i)->set_certified_unchanged((*unchanged)[i]);
    response->mutable_points(i)->set_deletions(d);
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

agt::Dataset WithoutRows(const agt::Dataset& data, const std::vector<int64_t>& rows) {
  std::vector<bool> drop(data.size(), false);
  for (int64_t r : rows) {
    if (r >= 0 && r < data.size()) drop[r] = true;
  }
  std::vector<agt::Index> keep;
  for (agt::Index i = 0; i < data.size(); ++i) {
    if (!drop[i]) keep.push_back(i);
  }
  return data.Select(keep);
}

}  // namespace agt::server
