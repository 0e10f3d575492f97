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

absl::StatusOr<DeletionDecision> DecideDeletion(const std::vector<int>& budgets_sorted,
                                                int64_t num_training_rows,
                                                const std::vector<int64_t>& already_deleted,
                                                const std::vector<int64_t>& request) {
  if (absl::Status s = CheckBudgets(budgets_sorted); !s.ok()) return s;
  if (request.empty()) return absl::InvalidArgumentError("deletion request names no row ids");
  for (int64_t id : request) {
    if (id < 0 || id >= num_training_rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("row id ", id, " is outside the ", num_training_rows, " training rows"));
    }
  }
  std::vector<int64_t> deleted = already_deleted;
  std::sort(deleted.begin(), deleted.end());
  for (size_t i = 0; i < deleted.size(); ++i) {
    if (deleted[i] < 0 || deleted[i] >= num_training_rows ||
        (i > 0 && deleted[i] == deleted[i - 1])) {
      return absl::FailedPreconditionError(absl::StrCat("deletion ledger is corrupt: row id ",
                                                        deleted[i], " is repeated or outside the ",
                                                        num_training_rows, " training rows"));
    }
  }

  std::vector<int64_t> asked = request;
  std::sort(asked.begin(), asked.end());
  asked.erase(std::unique(asked.begin(), asked.end()), asked.end());
  DeletionDecision out;
  std::set_difference(asked.begin(), asked.end(), deleted.begin(), deleted.end(),
                      std::back_inserter(out.new_rows));
  out.duplicate_count = static_cast<int64_t>(request.size() - out.new_rows.size());
  out.d_before = static_cast<int64_t>(deleted.size());
  out.d_after = out.d_before + static_cast<int64_t>(out.new_rows.size());
  out.max_budget = budgets_sorted.empty() ? 0 : budgets_sorted.back();
  out.accepted = out.d_after <= out.max_budget;
  return out;
}

absl::StatusOr<std::vector<bool>> CertifiedUnchanged(
    const std::vector<int>& budgets_sorted, const std::vector<std::vector<bool>>& stable_per_budget,
    int64_t d) {
  if (d < 0) return absl::InvalidArgumentError(absl::StrCat("deletion count ", d, " is negative"));
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
  // Nothing deleted: retraining on the same rows reproduces the served model.
  std::vector<bool> out(inputs, d == 0);
  for (size_t j = 0; j < budgets_sorted.size(); ++j) {
    if (budgets_sorted[j] < d) continue;
    for (size_t i = 0; i < inputs; ++i) {
      if (stable_per_budget[j][i]) out[i] = true;
    }
  }
  return out;
}

}  // namespace agt
