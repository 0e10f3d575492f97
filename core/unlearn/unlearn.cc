#include "core/unlearn/unlearn.h"

#include <algorithm>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace agt {
namespace {

absl::Status CheckBudgets(const std::vector<int>& budgets_sorted) {
  for (size_t j = 0; j < budgets_sorted.size(); ++j) {
    if (budgets_sorted[j] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("removal budget ", budgets_sorted[j], " at index ", j, " is negative"));
    }
    if (j > 0 && budgets_sorted[j] <= budgets_sorted[j - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("removal budgets must be strictly increasing: budget ", budgets_sorted[j],
                       " at index ", j, " follows ", budgets_sorted[j - 1]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

DeletionCount CountPerBatch(const BatchPlan& training, const std::vector<int64_t>& rows) {
  std::vector<int64_t> sorted = rows;
  std::sort(sorted.begin(), sorted.end());
  DeletionCount out;
  out.total = static_cast<int64_t>(sorted.size());
  size_t i = 0;
  while (i < sorted.size()) {
    const int64_t k = training.BatchOf(sorted[i]);
    if (k < 0) break;  // the dropped tail and beyond: never trained
    const int64_t batch_end = (k + 1) * training.batch_size();
    size_t j = i;
    while (j < sorted.size() && sorted[j] < batch_end) ++j;
    const int64_t in_batch = static_cast<int64_t>(j - i);
    if (in_batch > out.max_per_batch) {
      out.max_per_batch = in_batch;
      out.fullest_batch = k;
    }
    i = j;
  }
  return out;
}

absl::StatusOr<DeletionDecision> DecideDeletion(const std::vector<int>& budgets_sorted,
                                                const BatchPlan& training,
                                                const std::vector<int64_t>& already_deleted,
                                                const std::vector<int64_t>& request) {
  if (absl::Status s = CheckBudgets(budgets_sorted); !s.ok()) return s;
  if (request.empty()) return absl::InvalidArgumentError("deletion request names no row ids");
  const int64_t num_rows = training.num_rows();
  for (int64_t id : request) {
    if (id < 0 || id >= num_rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("row id ", id, " is outside the ", num_rows, " training rows"));
    }
  }
  std::vector<int64_t> deleted = already_deleted;
  std::sort(deleted.begin(), deleted.end());
  for (size_t i = 0; i < deleted.size(); ++i) {
    if (deleted[i] < 0 || deleted[i] >= num_rows || (i > 0 && deleted[i] == deleted[i - 1]) ||
        training.IsRemoved(deleted[i])) {
      return absl::FailedPreconditionError(absl::StrCat(
          "deletion ledger is corrupt: row id ", deleted[i],
          " is repeated, outside the ", num_rows,
          " training rows, or one the model's training already removed"));
    }
  }

  std::vector<int64_t> asked = request;
  std::sort(asked.begin(), asked.end());
  asked.erase(std::unique(asked.begin(), asked.end()), asked.end());
  // Rows the training removed in place were never in this model: nothing to
  // forget.
  std::vector<int64_t> fresh;
  std::set_difference(asked.begin(), asked.end(), training.removed_rows().begin(),
                      training.removed_rows().end(), std::back_inserter(fresh));
  DeletionDecision out;
  std::set_difference(fresh.begin(), fresh.end(), deleted.begin(), deleted.end(),
                      std::back_inserter(out.new_rows));
  out.duplicate_count = static_cast<int64_t>(request.size() - out.new_rows.size());
  out.before = CountPerBatch(training, deleted);
  std::vector<int64_t> all;
  std::merge(deleted.begin(), deleted.end(), out.new_rows.begin(), out.new_rows.end(),
             std::back_inserter(all));
  out.after = CountPerBatch(training, all);
  out.max_budget = budgets_sorted.empty() ? 0 : budgets_sorted.back();
  out.accepted = out.after.max_per_batch <= out.max_budget;
  return out;
}

absl::StatusOr<std::vector<bool>> CertifiedUnchanged(
    const std::vector<int>& budgets_sorted, const std::vector<std::vector<bool>>& stable_per_budget,
    int64_t max_per_batch) {
  if (max_per_batch < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("deletions per batch ", max_per_batch, " is negative"));
  }
  if (absl::Status s = CheckBudgets(budgets_sorted); !s.ok()) return s;
  if (stable_per_budget.size() != budgets_sorted.size()) {
    return absl::InvalidArgumentError(absl::StrCat("stability table has ", stable_per_budget.size(),
                                                   " budgets, expected ", budgets_sorted.size()));
  }
  const size_t inputs = stable_per_budget.empty() ? 0 : stable_per_budget[0].size();
  for (size_t j = 1; j < stable_per_budget.size(); ++j) {
    if (stable_per_budget[j].size() != inputs) {
      return absl::InvalidArgumentError(absl::StrCat("stability flags at budget index ", j,
                                                     " cover ", stable_per_budget[j].size(),
                                                     " inputs, expected ", inputs));
    }
  }
  // No trained row deleted: the in-place retraining trains the same batches
  // and reproduces the served model.
  std::vector<bool> out(inputs, max_per_batch == 0);
  for (size_t j = 0; j < budgets_sorted.size(); ++j) {
    if (budgets_sorted[j] < max_per_batch) continue;
    for (size_t i = 0; i < inputs; ++i) {
      if (stable_per_budget[j][i]) out[i] = true;
    }
  }
  return out;
}

}  // namespace agt
