// The vacuous-certificate checks (server/domain/vacuity.h) on hand-made
// models whose boxes are chosen around each threshold: the width ratio and
// its max(1, .) floor, non-finite bounds, budget 0, the stability check on
// a sample of training rows, regression models, and the sample itself.
#include "server/domain/vacuity.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "agt/v1/training.pb.h"

namespace agt::server {
namespace {

// A linear binary classifier, logit = w0 x0 + w1 x1 + b, with one box per
// radius around the nominal parameters (budget n = index + 1 unless given).
ModelRecord LinearModel(const Vector& nominal, const std::vector<double>& radii,
                        const std::vector<int>& budgets = {}, int num_classes = 2) {
  agt::v1::TrainingJobSpec spec;
  spec.set_loss(num_classes > 0 ? agt::v1::LOSS_BINARY_CROSS_ENTROPY : agt::v1::LOSS_MSE);
  spec.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  ModelRecord m;
  m.id = "mdl-v";
  m.job_id = "job-v";
  m.spec = spec.SerializeAsString();
  m.architecture = ModelSpec::Mlp({2, 1});
  m.input_features = 2;
  m.num_classes = num_classes;
  m.nominal = nominal;
  for (size_t j = 0; j < radii.size(); ++j) {
    BoxRecord box;
    box.budget.n = budgets.empty() ? static_cast<int>(j) + 1 : budgets[j];
    box.box.lower = nominal.array() - radii[j];
    box.box.upper = nominal.array() + radii[j];
    box.total_width = (box.box.upper - box.box.lower).sum();
    box.max_width = (box.box.upper - box.box.lower).maxCoeff();
    m.boxes.push_back(box);
  }
  return m;
}

// Rows with |x0 - x1| >= 1 and |x| <= 1, labelled by the sign of x0 - x1.
agt::Dataset Separable(int rows) {
  agt::Dataset d;
  d.x = Matrix(rows, 2);
  d.y = Vector(rows);
  d.num_classes = 2;
  for (int i = 0; i < rows; ++i) {
    const double s = i % 2 == 0 ? 1.0 : -1.0;
    d.x(i, 0) = s * 0.6;
    d.x(i, 1) = -s * 0.4 - s * 0.001 * (i % 7);
    d.y[i] = s > 0 ? 1.0 : 0.0;
  }
  return d;
}

Vector Nominal(double w0, double w1, double b) {
  Vector v(3);
  v << w0, w1, b;
  return v;
}

std::vector<JobWarningCode> Codes(const std::vector<JobWarningRecord>& warnings) {
  std::vector<JobWarningCode> out;
  for (const JobWarningRecord& w : warnings) out.push_back(w.code);
  return out;
}

TEST(VacuityTest, ATightModelThatCertifiesHasNoWarning) {
  const ModelRecord m = LinearModel(Nominal(1, -1, 0), {0.01, 0.05});
  absl::StatusOr<std::vector<JobWarningRecord>> w = VacuityWarnings(m, Separable(50));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->empty()) << (*w)[0].message;
}

TEST(VacuityTest, TheWidthThresholdIsAThousandTimesTheLargestParameterOrOne) {
  // Nominal parameters of magnitude below 1: the floor of 1 applies, so the
  // limit is 1000 (a radius of 500 is a width of 1000, exactly at it).
  const agt::Dataset data = Separable(20);
  ModelRecord small = LinearModel(Nominal(0.5, -0.5, 0), {0.01, 500.0, 500.001});
  absl::StatusOr<std::vector<JobWarningRecord>> w = VacuityWarnings(small, data);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ((*w)[0].code, JobWarningCode::kBoundsTooWide);
  ASSERT_TRUE((*w)[0].budget.has_value());
  EXPECT_EQ((*w)[0].budget->n, 3);
  EXPECT_TRUE(absl::StrContains((*w)[0].message, "budget n=3")) << (*w)[0].message;
  EXPECT_TRUE(absl::StrContains((*w)[0].message, "1000 x max(1")) << (*w)[0].message;

  // Parameters up to 4 in magnitude: the limit is 4000; a width of 3000 is
  // not flagged, 4000.02 is.
  ModelRecord large = LinearModel(Nominal(4, -4, 0), {0.01, 1500.0, 2000.01});
  w = VacuityWarnings(large, data);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ((*w)[0].budget->n, 3);
}

TEST(VacuityTest, NonFiniteBoundsAreFlaggedAsSuch) {
  ModelRecord m = LinearModel(Nominal(1, -1, 0), {0.01, 0.01});
  m.boxes[1].box.upper[2] = std::numeric_limits<double>::infinity();
  m.boxes[1].total_width = std::numeric_limits<double>::infinity();
  m.boxes[1].max_width = std::numeric_limits<double>::infinity();
  absl::StatusOr<std::vector<JobWarningRecord>> w = VacuityWarnings(m, Separable(20));
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(Codes(*w), std::vector<JobWarningCode>{JobWarningCode::kBoundsNonFinite});
  EXPECT_EQ((*w)[0].budget->n, 2);
}

TEST(VacuityTest, NoRowStableAtAnyPositiveBudgetIsOneWarningForTheJob) {
  // Radius 10: every logit interval contains 0 on these rows, yet the boxes
  // are far below the width threshold. Budget 0 (the nominal model, width 0)
  // is stable everywhere and does not count.
  const ModelRecord m = LinearModel(Nominal(1, -1, 0), {0.0, 10.0, 20.0}, {0, 1, 2});
  absl::StatusOr<std::vector<JobWarningRecord>> w = VacuityWarnings(m, Separable(30));
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(Codes(*w), std::vector<JobWarningCode>{JobWarningCode::kNothingCertified});
  EXPECT_FALSE((*w)[0].budget.has_value());
  EXPECT_TRUE(absl::StrContains((*w)[0].message, "30 sampled")) << (*w)[0].message;
  EXPECT_TRUE(absl::StrContains((*w)[0].message, "n=1 0, n=2 0")) << (*w)[0].message;

  // One budget that certifies something is enough.
  const ModelRecord some = LinearModel(Nominal(1, -1, 0), {0.0, 0.05, 20.0}, {0, 1, 2});
  w = VacuityWarnings(some, Separable(30));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->empty());

  // Only budget 0: nothing to judge.
  const ModelRecord nominal_only = LinearModel(Nominal(1, -1, 0), {0.0}, {0});
  w = VacuityWarnings(nominal_only, Separable(30));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->empty());
}

TEST(VacuityTest, RegressionModelsAndMissingSamplesGetOnlyTheWidthChecks) {
  agt::Dataset targets = Separable(30);
  targets.num_classes = 0;
  const ModelRecord regression =
      LinearModel(Nominal(1, -1, 0), {10.0, 2000.0}, {}, /*num_classes=*/0);
  absl::StatusOr<std::vector<JobWarningRecord>> w = VacuityWarnings(regression, targets);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(Codes(*w), std::vector<JobWarningCode>{JobWarningCode::kBoundsTooWide});

  const ModelRecord classifier = LinearModel(Nominal(1, -1, 0), {10.0});
  w = VacuityWarnings(classifier, agt::Dataset{});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->empty());
}

TEST(VacuitySampleTest, TakesEvenlySpreadRowsWithTheirLabels) {
  agt::Dataset big;
  const int rows = 5000;
  big.x = Matrix(rows, 2);
  big.y = Vector(rows);
  big.num_classes = 2;
  for (int i = 0; i < rows; ++i) {
    big.x(i, 0) = i;
    big.x(i, 1) = -i;
    big.y[i] = i % 2;
  }
  const agt::Dataset s = VacuitySample(big);
  ASSERT_EQ(s.size(), kVacuitySampleRows);
  EXPECT_EQ(s.num_classes, 2);
  EXPECT_EQ(s.x(0, 0), 0);
  for (Index k = 0; k < s.size(); ++k) {
    const double row = s.x(k, 0);
    EXPECT_EQ(s.x(k, 1), -row);
    EXPECT_EQ(s.y[k], static_cast<int>(row) % 2);
    if (k > 0) {
      const double gap = row - s.x(k - 1, 0);
      EXPECT_GE(gap, 4);  // 5000 / 1024 = 4.88
      EXPECT_LE(gap, 5);
    }
  }
  EXPECT_GE(s.x(s.size() - 1, 0), rows - 5);

  const agt::Dataset small = Separable(10);
  EXPECT_EQ(VacuitySample(small).size(), 10);
}

}  // namespace
}  // namespace agt::server
