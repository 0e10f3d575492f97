// A small version of the Figure 13 (left) experiment (examples/
// privacy_utility.h): n* must be consistent with the nested substitution
// budgets it comes from, and the smooth-sensitivity mechanism must beat the
// global-sensitivity baseline at a moderate epsilon while both approach the
// noise-free accuracy at a large one. Noise comes from a seeded source, so
// the test is deterministic.

#include "examples/privacy_utility.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "core/certify/certify.h"
#include "core/privacy/noise.h"
#include "core/privacy/privacy.h"

namespace agt::examples {
namespace {

// SplitMix64 mapped to the midpoints (k + 1/2) 2^-53, strictly inside (0, 1).
class SeededUniform : public UniformSource {
 public:
  explicit SeededUniform(uint64_t seed) : state_(seed) {}
  double Uniform() override {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (static_cast<double>(z >> 11) + 0.5) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

PrivacyUtilityConfig SmallConfig() {
  PrivacyUtilityConfig config;
  config.samples = 1000;  // 800 train rows in one batch, 200 test rows
  config.hidden = 32;
  config.max_budget = 40;
  return config;
}

const CertifiedPredictions& SmallModel() {
  static const CertifiedPredictions* model = [] {
    absl::StatusOr<CertifiedPredictions> result = TrainAndCertify(SmallConfig());
    EXPECT_TRUE(result.ok()) << result.status();
    return new CertifiedPredictions(result.ok() ? *std::move(result) : CertifiedPredictions{});
  }();
  return *model;
}

double AccuracyOf(const std::vector<AccuracyPoint>& points, PrivacyMechanism mechanism) {
  for (const AccuracyPoint& p : points) {
    if (p.mechanism == mechanism) return p.mean;
  }
  ADD_FAILURE() << "no point for " << MechanismName(mechanism);
  return 0.0;
}

TEST(PrivacyUtilityTest, TrainsALearnableButNotTrivialModel) {
  const CertifiedPredictions& model = SmallModel();
  ASSERT_EQ(model.test.size(), 200);
  EXPECT_EQ(model.batch_size, 800);
  EXPECT_GT(model.noise_free_accuracy, 0.8);
  EXPECT_LT(model.noise_free_accuracy, 1.0);
}

TEST(PrivacyUtilityTest, NStarIsTheLargestNestedBudgetAtWhichAPointIsStable) {
  const CertifiedPredictions& model = SmallModel();
  ASSERT_EQ(model.stable.size(), 40u);
  const std::vector<int> largest = LargestStableBudget(model.stable);
  int positive = 0;
  for (Index i = 0; i < model.test.size(); ++i) {
    const int n_star = model.n_star[i];
    ASSERT_GE(n_star, 0);
    ASSERT_LE(n_star, 40);
    EXPECT_EQ(n_star, largest[i] < 0 ? 0 : model.budgets[largest[i]]) << "point " << i;
    // The boxes grow with n, so stability may only be lost, never regained:
    // stable at every budget up to n*, at none above it.
    for (size_t j = 0; j < model.budgets.size(); ++j) {
      EXPECT_EQ(model.stable[j][i], model.budgets[j] <= n_star)
          << "point " << i << " budget " << model.budgets[j] << " n* " << n_star;
    }
    positive += n_star > 0;
  }
  // Most points are far from the boundary of well-separated blobs.
  EXPECT_GT(positive, model.test.size() / 2);
}

TEST(PrivacyUtilityTest, SmoothSensitivityBeatsGlobalAtModerateEpsilon) {
  SeededUniform noise(42);
  absl::StatusOr<std::vector<AccuracyPoint>> points =
      MeasurePrivateAccuracy(SmallModel(), {1.0}, /*repeats=*/5, noise);
  ASSERT_TRUE(points.ok()) << points.status();
  const double ss = AccuracyOf(*points, PrivacyMechanism::kSmoothSensitivityCauchy);
  const double gs = AccuracyOf(*points, PrivacyMechanism::kGlobalSensitivityLaplace);
  // Cauchy scale 6 e^{-40/6} ~ 0.008 at n* = 40 against Laplace scale 1,
  // which flips a label with probability e^{-1/2} / 2 ~ 0.30.
  EXPECT_GT(ss, gs + 0.1) << "SS " << ss << " GS " << gs;
  EXPECT_GT(ss, SmallModel().noise_free_accuracy - 0.05);
}

TEST(PrivacyUtilityTest, BothMechanismsApproachNoiseFreeAccuracyAtLargeEpsilon) {
  SeededUniform noise(7);
  absl::StatusOr<std::vector<AccuracyPoint>> points =
      MeasurePrivateAccuracy(SmallModel(), {20.0}, /*repeats=*/5, noise);
  ASSERT_TRUE(points.ok()) << points.status();
  const double noise_free = SmallModel().noise_free_accuracy;
  EXPECT_NEAR(AccuracyOf(*points, PrivacyMechanism::kSmoothSensitivityCauchy), noise_free, 0.02);
  EXPECT_NEAR(AccuracyOf(*points, PrivacyMechanism::kGlobalSensitivityLaplace), noise_free, 0.02);
}

TEST(PrivacyUtilityTest, BothMechanismsAreCoinFlipsAtTinyEpsilon) {
  SeededUniform noise(3);
  absl::StatusOr<std::vector<AccuracyPoint>> points =
      MeasurePrivateAccuracy(SmallModel(), {1e-3}, /*repeats=*/5, noise);
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_NEAR(AccuracyOf(*points, PrivacyMechanism::kSmoothSensitivityCauchy), 0.5, 0.06);
  EXPECT_NEAR(AccuracyOf(*points, PrivacyMechanism::kGlobalSensitivityLaplace), 0.5, 0.06);
}

TEST(PrivacyUtilityTest, RefusesBadArguments) {
  PrivacyUtilityConfig config = SmallConfig();
  config.max_budget = 0;
  EXPECT_EQ(TrainAndCertify(config).status().code(), absl::StatusCode::kInvalidArgument);
  SeededUniform noise(1);
  EXPECT_EQ(MeasurePrivateAccuracy(SmallModel(), {1.0}, 0, noise).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasurePrivateAccuracy(SmallModel(), {0.0}, 1, noise).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PrivacyUtilityTest, SmallestEpsilonReachingPicksTheFirstGridPointAtTarget) {
  const std::vector<AccuracyPoint> points = {
      {0.1, PrivacyMechanism::kSmoothSensitivityCauchy, 0.6, 0.0},
      {1.0, PrivacyMechanism::kSmoothSensitivityCauchy, 0.9, 0.0},
      {1.0, PrivacyMechanism::kGlobalSensitivityLaplace, 0.7, 0.0}};
  EXPECT_EQ(SmallestEpsilonReaching(points, PrivacyMechanism::kSmoothSensitivityCauchy, 0.85), 1.0);
  EXPECT_FALSE(SmallestEpsilonReaching(points, PrivacyMechanism::kGlobalSensitivityLaplace, 0.85));
}

}  // namespace
}  // namespace agt::examples
