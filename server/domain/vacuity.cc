#include "server/domain/vacuity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agt::server {
namespace {

std::string BudgetName(const agt::Budget& b) {
  return b.label_n > 0 ? absl::StrCat("n=", b.n, " label_n=", b.label_n) : absl::StrCat("n=", b.n);
}

bool Positive(const agt::Budget& b) { return b.n > 0 || b.label_n > 0; }

}  // namespace

agt::Dataset VacuitySample(const agt::Dataset& data) {
  const Index rows = data.size();
  if (rows <= kVacuitySampleRows) return data;
  std::vector<Index> pick;
  pick.reserve(kVacuitySampleRows);
  for (int64_t k = 0; k < kVacuitySampleRows; ++k) {
    // Row floor(k * rows / sample): the first row and every stretch of the
    // data in proportion.
    pick.push_back(static_cast<Index>(k * static_cast<int64_t>(rows) / kVacuitySampleRows));
  }
  return data.Select(pick);
}

absl::StatusOr<std::vector<JobWarningRecord>> VacuityWarnings(const ModelRecord& model,
                                                              const agt::Dataset& sample,
                                                              const CertifyOptions& options) {
  std::vector<JobWarningRecord> out;
  const double scale =
      std::max(1.0, model.nominal.size() > 0 ? model.nominal.cwiseAbs().maxCoeff() : 0.0);
  const double limit = kVacuousWidthRatio * scale;
  bool any_finite_positive = false;
  for (const BoxRecord& box : model.boxes) {
    const bool finite = box.box.lower.allFinite() && box.box.upper.allFinite() &&
                        std::isfinite(box.total_width) && std::isfinite(box.max_width);
    if (!finite) {
      out.push_back({JobWarningCode::kBoundsNonFinite, box.budget,
                     absl::StrFormat("budget %s: the bounds are not finite (total width %g, "
                                     "widest interval %g); its certificates are vacuous",
                                     BudgetName(box.budget), box.total_width, box.max_width)});
      continue;
    }
    if (Positive(box.budget)) any_finite_positive = true;
    if (box.max_width > limit) {
      out.push_back({JobWarningCode::kBoundsTooWide, box.budget,
                     absl::StrFormat(
                         "budget %s: the widest parameter interval is %.3g, more than %g x "
                         "max(1, largest nominal |parameter| %.3g) = %.3g; its certificates "
                         "are vacuous",
                         BudgetName(box.budget), box.max_width, kVacuousWidthRatio, scale, limit)});
    }
  }
  if (model.num_classes <= 0 || sample.size() == 0) return out;
  bool any_positive = false;
  for (const BoxRecord& box : model.boxes) any_positive |= Positive(box.budget);
  if (!any_positive) return out;
  std::string fractions;
  bool certified = false;
  if (any_finite_positive) {
    absl::StatusOr<agt::v1::CertifyDatasetResponse> cert =
        CertifyDataset(model, sample, 0.0, agt::v1::STABILITY_RULE_UNSPECIFIED, options);
    if (!cert.ok()) return cert.status();
    for (int j = 0; j < cert->budgets_size() && j < static_cast<int>(model.boxes.size()); ++j) {
      const agt::Budget& b = model.boxes[j].budget;
      if (!Positive(b)) continue;
      const double f = cert->budgets(j).stable_fraction();
      certified |= f > 0.0;
      absl::StrAppend(&fractions, fractions.empty() ? "" : ", ", BudgetName(b), " ",
                      absl::StrFormat("%g", f));
    }
  }
  if (!certified) {
    out.push_back(
        {JobWarningCode::kNothingCertified, std::nullopt,
         absl::StrFormat("no training row (%d sampled) is certified stable at any "
                         "budget n > 0 (stable fraction %s); the certificates are "
                         "vacuous: lower the learning rate, the epochs or the budgets",
                         sample.size(), fractions.empty() ? "0: no finite box" : fractions)});
  }
  return out;
}

}  // namespace agt::server
