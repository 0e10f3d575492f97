// Private prediction (core/privacy): samplers checked exactly on a
// deterministic uniform source, the releases' label probabilities checked
// against the Cauchy / Laplace CDFs both on an exact quantile grid and on
// SecureNoise draws (5 binomial sigma), the SS bound of Theorem 11, n* from
// stability tables, input validation, and budget spend/refuse semantics.

#include "core/privacy/privacy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/privacy/budget.h"
#include "core/privacy/noise.h"

namespace agt {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// Always returns the same u.
class FixedSource : public UniformSource {
 public:
  explicit FixedSource(double u) : u_(u) {}
  double Uniform() override {
    ++draws_;
    return u_;
  }
  int draws() const { return draws_; }

 private:
  double u_;
  int draws_ = 0;
};

// The midpoints (i + 1/2) / m, i = 0..m-1, in turn: m draws hit every
// quantile cell once, so an empirical rate over them is within 1/m of the
// exact probability of an inverse-CDF sampler.
class GridSource : public UniformSource {
 public:
  explicit GridSource(int m) : m_(m) {}
  double Uniform() override {
    const double u = (i_ + 0.5) / m_;
    i_ = (i_ + 1) % m_;
    return u;
  }

 private:
  int m_;
  int i_ = 0;
};

// P[f + z > 1/2] for z ~ Cauchy(0, scale).
double CauchyReleaseOne(double f, double scale) {
  return 0.5 - std::atan((0.5 - f) / scale) / std::numbers::pi;
}

// P[f + z > 1/2] for z ~ Laplace(0, scale).
double LaplaceReleaseOne(double f, double scale) {
  const double t = 0.5 - f;
  return t >= 0.0 ? 0.5 * std::exp(-t / scale) : 1.0 - 0.5 * std::exp(t / scale);
}

std::unique_ptr<SecureNoise> MakeSecureNoise() {
  absl::StatusOr<std::unique_ptr<SecureNoise>> noise = SecureNoise::Create();
  EXPECT_TRUE(noise.ok()) << noise.status();
  return noise.ok() ? std::move(*noise) : nullptr;
}

TEST(SamplersTest, InverseCdfsAtKnownQuantiles) {
  FixedSource mid(0.5);
  EXPECT_EQ(mid.Cauchy(3.0), 0.0);
  EXPECT_EQ(mid.Laplace(3.0), 0.0);
  FixedSource upper(0.75);
  EXPECT_NEAR(upper.Cauchy(2.0), 2.0, 1e-12);                   // tan(pi/4)
  EXPECT_NEAR(upper.Laplace(2.0), 2.0 * std::log(2.0), 1e-12);  // -b ln(1/2)
  FixedSource lower(0.25);
  EXPECT_NEAR(lower.Cauchy(2.0), -2.0, 1e-12);
  EXPECT_NEAR(lower.Laplace(2.0), -2.0 * std::log(2.0), 1e-12);
}

TEST(SamplersTest, ExtremeUniformsGiveFiniteNoise) {
  for (double u : {0x1p-53, 1.0 - 0x1p-53}) {
    FixedSource source(u);
    EXPECT_TRUE(std::isfinite(source.Cauchy(1.0))) << u;
    EXPECT_TRUE(std::isfinite(source.Laplace(1.0))) << u;
  }
}

TEST(SecureNoiseTest, DrawsAre53BitUniformsStrictlyInsideUnitInterval) {
  std::unique_ptr<SecureNoise> noise = MakeSecureNoise();
  ASSERT_NE(noise, nullptr);
  constexpr int kDraws = 20000;
  double sum = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const double u = noise->Uniform();
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    const double scaled = u * 0x1p53;
    ASSERT_EQ(scaled, std::floor(scaled)) << "not a multiple of 2^-53: " << u;
    sum += u;
  }
  const double sigma = std::sqrt(1.0 / 12.0 / kDraws);
  EXPECT_NEAR(sum / kDraws, 0.5, 5.0 * sigma);
}

TEST(SecureNoiseTest, TwoInstancesGiveDifferentStreams) {
  std::unique_ptr<SecureNoise> a = MakeSecureNoise();
  std::unique_ptr<SecureNoise> b = MakeSecureNoise();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  int equal = 0;
  for (int i = 0; i < 8; ++i) equal += a->Uniform() == b->Uniform() ? 1 : 0;
  EXPECT_EQ(equal, 0);  // chance of any collision: about 8 * 2^-53
}

TEST(SmoothSensitivityBoundTest, ValuesOfTheorem11) {
  EXPECT_EQ(SmoothSensitivityBound(0, 1.0), 1.0);  // global sensitivity
  EXPECT_EQ(SmoothSensitivityBound(0, 50.0), 1.0);
  EXPECT_NEAR(SmoothSensitivityBound(6, 1.0), std::exp(-1.0), 1e-15);
  EXPECT_NEAR(SmoothSensitivityBound(10, 2.0), std::exp(-10.0 / 3.0), 1e-15);
}

TEST(SmoothSensitivityBoundTest, StrictlyDecreasingInNStar) {
  for (double epsilon : {0.01, 0.5, 2.0}) {
    double previous = SmoothSensitivityBound(0, epsilon);
    for (int n = 1; n <= 50; ++n) {
      const double ss = SmoothSensitivityBound(n, epsilon);
      EXPECT_LT(ss, previous) << "n* " << n << " epsilon " << epsilon;
      EXPECT_GT(ss, 0.0);
      previous = ss;
    }
  }
}

TEST(NStarTest, LargestStableTrainedBudgetOrZero) {
  const std::vector<int> budgets = {1, 5, 20};
  // Input 0 stable nowhere; 1 only at 1; 2 at 1 and 5; 3 at all; 4 at 20 only.
  const std::vector<std::vector<bool>> stable = {{false, true, true, true, false},
                                                 {false, false, true, true, false},
                                                 {false, false, false, true, true}};
  absl::StatusOr<std::vector<int>> n_star = NStar(budgets, stable);
  ASSERT_TRUE(n_star.ok()) << n_star.status();
  EXPECT_EQ(*n_star, (std::vector<int>{0, 1, 5, 20, 20}));
}

TEST(NStarTest, RejectsUnsortedBudgetsAndRaggedTables) {
  EXPECT_EQ(NStar({5, 1}, {{true}, {true}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NStar({1, 1}, {{true}, {true}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NStar({-1}, {{true}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NStar({1, 2}, {{true}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NStar({1, 2}, {{true}, {true, false}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SmoothSensitivityReleaseTest, ReportsTheGuaranteeUsed) {
  FixedSource source(0.5);
  absl::StatusOr<PrivateRelease> r = SmoothSensitivityRelease(1.0, 12, 0.5, source);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mechanism, PrivacyMechanism::kSmoothSensitivityCauchy);
  EXPECT_EQ(r->n_star, 12);
  EXPECT_EQ(r->epsilon, 0.5);
  EXPECT_NEAR(r->sensitivity, std::exp(-1.0), 1e-15);
  EXPECT_NEAR(r->noise_scale, 6.0 * std::exp(-1.0) / 0.5, 1e-12);
  EXPECT_EQ(r->label, 1);  // z = 0
  EXPECT_EQ(source.draws(), 1);
}

TEST(SmoothSensitivityReleaseTest, RejectsBadInputsWithoutDrawing) {
  FixedSource source(0.5);
  for (double epsilon : {0.0, -1.0, kInf, kNan}) {
    EXPECT_EQ(SmoothSensitivityRelease(1.0, 3, epsilon, source).status().code(),
              absl::StatusCode::kInvalidArgument)
        << epsilon;
  }
  EXPECT_EQ(SmoothSensitivityRelease(1.0, -1, 1.0, source).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A probability is not a label: Theorem 11 bounds label changes only.
  for (double f : {0.5, 0.99, -1.0, 2.0, kNan}) {
    EXPECT_EQ(SmoothSensitivityRelease(f, 3, 1.0, source).status().code(),
              absl::StatusCode::kInvalidArgument)
        << f;
  }
  EXPECT_EQ(source.draws(), 0);
}

TEST(GlobalSensitivityReleaseTest, LaplaceScaleAndBadInputs) {
  FixedSource source(0.5);
  absl::StatusOr<PrivateRelease> r = GlobalSensitivityRelease(0.7, 4.0, source);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mechanism, PrivacyMechanism::kGlobalSensitivityLaplace);
  EXPECT_EQ(r->noise_scale, 0.25);
  EXPECT_EQ(r->sensitivity, 1.0);
  EXPECT_EQ(r->label, 1);
  for (double f : {-0.1, 1.1, kNan}) {
    EXPECT_EQ(GlobalSensitivityRelease(f, 1.0, source).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(GlobalSensitivityRelease(0.5, 0.0, source).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(source.draws(), 1);
}

struct SsCase {
  double f;
  int n_star;
  double epsilon;
};
const SsCase kSsCases[] = {
    {1.0, 0, 1.0}, {1.0, 10, 1.0}, {0.0, 5, 2.0}, {0.0, 0, 0.1}, {1.0, 30, 1.0}};

// Fraction of `draws` releases with label 1.
template <typename Release>
double RateOfOne(int draws, Release release) {
  int ones = 0;
  for (int i = 0; i < draws; ++i) ones += release();
  return static_cast<double>(ones) / draws;
}

TEST(SmoothSensitivityReleaseTest, ExactQuantileGridMatchesCauchyCdf) {
  constexpr int kM = 100000;
  for (const SsCase& c : kSsCases) {
    GridSource grid(kM);
    const double scale = 6.0 * SmoothSensitivityBound(c.n_star, c.epsilon) / c.epsilon;
    const double rate = RateOfOne(
        kM, [&] { return SmoothSensitivityRelease(c.f, c.n_star, c.epsilon, grid)->label; });
    EXPECT_NEAR(rate, CauchyReleaseOne(c.f, scale), 1.0 / kM + 1e-12)
        << "f " << c.f << " n* " << c.n_star << " epsilon " << c.epsilon;
  }
}

TEST(SmoothSensitivityReleaseTest, SecureNoiseFlipRatesMatchCauchyCdf) {
  std::unique_ptr<SecureNoise> noise = MakeSecureNoise();
  ASSERT_NE(noise, nullptr);
  constexpr int kDraws = 20000;
  for (const SsCase& c : kSsCases) {
    const double scale = 6.0 * SmoothSensitivityBound(c.n_star, c.epsilon) / c.epsilon;
    const double p = CauchyReleaseOne(c.f, scale);
    const double rate = RateOfOne(
        kDraws, [&] { return SmoothSensitivityRelease(c.f, c.n_star, c.epsilon, *noise)->label; });
    // 5 binomial sigma (false alarm about 6e-7 per case); the floor keeps a
    // case with p near 0 or 1 from demanding an exact count.
    const double sigma = std::sqrt(p * (1.0 - p) / kDraws);
    EXPECT_NEAR(rate, p, std::max(5.0 * sigma, 5.0 / kDraws))
        << "f " << c.f << " n* " << c.n_star << " epsilon " << c.epsilon;
  }
}

TEST(SmoothSensitivityReleaseTest, LargerNStarFlipsLess) {
  // The flip probability of a label-1 prediction falls as n* grows.
  double previous = 1.0;
  for (int n_star : {0, 2, 5, 10, 20}) {
    const double scale = 6.0 * SmoothSensitivityBound(n_star, 1.0) / 1.0;
    const double flip = 1.0 - CauchyReleaseOne(1.0, scale);
    EXPECT_LT(flip, previous);
    previous = flip;
  }
}

struct LaplaceCase {
  double f;
  double epsilon;
};
const LaplaceCase kLaplaceCases[] = {{1.0, 1.0}, {0.0, 0.5}, {0.3, 2.0}, {0.8, 0.1}, {1.0, 5.0}};

TEST(GlobalSensitivityReleaseTest, ExactQuantileGridMatchesLaplaceCdf) {
  constexpr int kM = 100000;
  for (const LaplaceCase& c : kLaplaceCases) {
    GridSource grid(kM);
    const double rate =
        RateOfOne(kM, [&] { return GlobalSensitivityRelease(c.f, c.epsilon, grid)->label; });
    EXPECT_NEAR(rate, LaplaceReleaseOne(c.f, 1.0 / c.epsilon), 1.0 / kM + 1e-12)
        << "f " << c.f << " epsilon " << c.epsilon;
  }
}

TEST(GlobalSensitivityReleaseTest, SecureNoiseRatesMatchLaplaceCdf) {
  std::unique_ptr<SecureNoise> noise = MakeSecureNoise();
  ASSERT_NE(noise, nullptr);
  constexpr int kDraws = 20000;
  for (const LaplaceCase& c : kLaplaceCases) {
    const double p = LaplaceReleaseOne(c.f, 1.0 / c.epsilon);
    const double rate =
        RateOfOne(kDraws, [&] { return GlobalSensitivityRelease(c.f, c.epsilon, *noise)->label; });
    const double sigma = std::sqrt(p * (1.0 - p) / kDraws);
    EXPECT_NEAR(rate, p, std::max(5.0 * sigma, 5.0 / kDraws))
        << "f " << c.f << " epsilon " << c.epsilon;
  }
}

TEST(PrivacyBudgetTest, SpendsUpToTheExactTotal) {
  absl::StatusOr<PrivacyBudget> budget = PrivacyBudget::Create(1.0);
  ASSERT_TRUE(budget.ok()) << budget.status();
  EXPECT_TRUE(budget->Spend(0.25).ok());
  EXPECT_TRUE(budget->Spend(0.75).ok());
  EXPECT_EQ(budget->spent(), 1.0);
  EXPECT_EQ(budget->remaining(), 0.0);
}

TEST(PrivacyBudgetTest, RoundingOfRepeatedSpendsFitsTheTotal) {
  absl::StatusOr<PrivacyBudget> budget = PrivacyBudget::Create(1.0);
  ASSERT_TRUE(budget.ok());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget->Spend(0.1).ok()) << i;
  EXPECT_EQ(budget->Spend(0.1).code(), absl::StatusCode::kResourceExhausted);
}

TEST(PrivacyBudgetTest, RefusalSpendsNothing) {
  absl::StatusOr<PrivacyBudget> budget = PrivacyBudget::Create(2.0);
  ASSERT_TRUE(budget.ok());
  ASSERT_TRUE(budget->Spend(1.5).ok());
  const absl::Status refused = budget->Spend(0.6);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(budget->spent(), 1.5);
  EXPECT_EQ(budget->remaining(), 0.5);
  // Just over the exact boundary, by more than the tolerance.
  EXPECT_EQ(budget->Spend(0.5 + 1e-9).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(budget->spent(), 1.5);
  EXPECT_TRUE(budget->Spend(0.5).ok());
  EXPECT_EQ(budget->Spend(1e-6).code(), absl::StatusCode::kResourceExhausted);
}

TEST(PrivacyBudgetTest, RejectsBadEpsilonsAndTotals) {
  absl::StatusOr<PrivacyBudget> budget = PrivacyBudget::Create(1.0);
  ASSERT_TRUE(budget.ok());
  for (double epsilon : {0.0, -0.5, kInf, kNan}) {
    EXPECT_EQ(budget->Spend(epsilon).code(), absl::StatusCode::kInvalidArgument) << epsilon;
  }
  EXPECT_EQ(budget->spent(), 0.0);
  EXPECT_EQ(PrivacyBudget::Create(-1.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrivacyBudget::Create(kInf).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrivacyBudget::Create(1.0, 1.5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrivacyBudget::Create(1.0, -0.1).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PrivacyBudget> restored = PrivacyBudget::Create(1.0, 0.4);
  ASSERT_TRUE(restored.ok());
  EXPECT_NEAR(restored->remaining(), 0.6, 1e-15);
}

TEST(PrivacyBudgetTest, ZeroTotalRefusesEverySpend) {
  absl::StatusOr<PrivacyBudget> budget = PrivacyBudget::Create(0.0);
  ASSERT_TRUE(budget.ok());
  EXPECT_EQ(budget->Spend(1e-3).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(budget->spent(), 0.0);
}

}  // namespace
}  // namespace agt
