// Certificates (core/certify/certify.h) on hand-built logit bounds with
// hand-computed answers, plus sampling checks that ComputeLogitBounds and the
// certificates hold for every model in the box and every input in the ball.
// Decision rules: goldens README, "Semantics to match", item 8.

#include "core/certify/certify.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/rng.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/model/model.h"

namespace agt {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

IntervalMatrix Bounds(const Matrix& lower, const Matrix& upper) { return {lower, upper}; }

LogitBounds MakeLogits(const Matrix& nominal, const Matrix& lower, const Matrix& upper) {
  LogitBounds out;
  out.nominal = nominal;
  out.bounds = Bounds(lower, upper);
  return out;
}

// A forward pass written out here (not Forward from bounds/ibp.h): dense
// layers W x + b with W row-major (out x in) then b, ReLU in between.
Matrix ReferenceForward(const ModelSpec& spec, const Vector& theta, const Matrix& x) {
  Matrix h = x;
  const std::vector<DenseSlice> layout = spec.Layout();
  size_t dense = 0;
  for (const LayerSpec& layer : spec.layers) {
    if (layer.kind == LayerKind::kRelu) {
      h = h.cwiseMax(0.0);
      continue;
    }
    const DenseSlice& s = layout[dense++];
    Matrix next(h.rows(), s.out);
    for (Index r = 0; r < h.rows(); ++r) {
      for (int o = 0; o < s.out; ++o) {
        double acc = theta[s.bias_offset + o];
        for (int i = 0; i < s.in; ++i) acc += theta[s.weight_offset + o * s.in + i] * h(r, i);
        next(r, o) = acc;
      }
    }
    h = next;
  }
  return h;
}

// Uniform in [lower, upper], the endpoints one time in four each.
Matrix SampleIn(const Matrix& lower, const Matrix& upper, Rng* rng) {
  Matrix m(lower.rows(), lower.cols());
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      const uint64_t pick = rng->UniformInt(4);
      m(r, c) = pick == 0   ? lower(r, c)
                : pick == 1 ? upper(r, c)
                            : rng->Uniform(lower(r, c), upper(r, c));
    }
  }
  return m;
}

Vector SampleIn(const Vector& lower, const Vector& upper, Rng* rng) {
  return SampleIn(Matrix(lower), Matrix(upper), rng).col(0);
}

// ---------------------------------------------------------------------------
// PredictClasses.

TEST(PredictClasses, BinaryIsClassOneIffTheLogitIsStrictlyPositive) {
  const Matrix logits{{-1.0}, {0.0}, {-0.0}, {1e-300}, {2.0}, {-1e-300}};
  EXPECT_EQ(PredictClasses(logits), (std::vector<int>{0, 0, 0, 1, 1, 0}));
}

TEST(PredictClasses, MultiClassTakesTheArgMaxWithTheFirstIndexOnTies) {
  const Matrix logits{{1.0, 3.0, 3.0}, {2.0, 2.0, 2.0}, {-5.0, -6.0, -4.0}, {0.0, 1.0, 0.5}};
  EXPECT_EQ(PredictClasses(logits), (std::vector<int>{1, 0, 2, 1}));
}

// ---------------------------------------------------------------------------
// Stable.

TEST(Stable, BinaryIsStableIffBothEndsGiveTheSameClass) {
  // Class 1 iff logit > 0, so [-1, 0] and [0, 0] are all class 0 (stable),
  // while [0, 1] holds 0 (class 0) and 1 (class 1).
  const Matrix lower{{0.5}, {-1.0}, {-1.0}, {-1.0}, {0.0}, {0.0}, {1e-300}};
  const Matrix upper{{1.0}, {-0.5}, {1.0}, {0.0}, {1.0}, {0.0}, {1e-300}};
  EXPECT_EQ(Stable(Bounds(lower, upper)),
            (std::vector<bool>{true, true, false, true, false, true, true}));
}

TEST(Stable, BinaryNanBoundsAreNeverStable) {
  const Matrix lower{{kNan}, {0.5}, {kNan}, {-1.0}};
  const Matrix upper{{1.0}, {kNan}, {kNan}, {kNan}};
  EXPECT_EQ(Stable(Bounds(lower, upper)), (std::vector<bool>{false, false, false, false}));
}

TEST(Stable, MultiClassNanBoundsAreNeverStable) {
  // Without the NaN each row would be stable for class 0.
  const Matrix lower{{kNan, 0.0, 0.0}, {5.0, kNan, 0.0}, {5.0, 0.0, 0.0}};
  const Matrix upper{{6.0, 1.0, 1.0}, {6.0, 1.0, 1.0}, {6.0, 1.0, kNan}};
  EXPECT_EQ(Stable(Bounds(lower, upper)), (std::vector<bool>{false, false, false}));
}

TEST(Stable, MultiClassSeparatedSoftmaxBoundsAreStableForWhicheverClassWins) {
  const Matrix lower{{5.0, 0.0, 0.0}, {0.0, 0.0, 5.0}, {1.0, 2.0, 0.0}};
  const Matrix upper{{6.0, 1.0, 1.0}, {1.0, 1.0, 6.0}, {1.0, 2.0, 0.0}};
  EXPECT_EQ(Stable(Bounds(lower, upper)), (std::vector<bool>{true, true, true}));
}

TEST(Stable, MultiClassTiesAreNotStable) {
  // Identical intervals, then identical points.
  const Matrix lower{{0.0, 0.0, -3.0}, {2.0, 2.0, 1.0}};
  const Matrix upper{{1.0, 1.0, -2.0}, {2.0, 2.0, 1.0}};
  std::vector<bool> got = Stable(Bounds(lower, upper));
  EXPECT_EQ(got, (std::vector<bool>{false, false}));
  // Two classes: [0, 3] vs [3, 4] touch at 3; the point (3, 3) is a tie.
  got = Stable(Bounds(Matrix{{0.0, 3.0}}, Matrix{{3.0, 4.0}}));
  EXPECT_EQ(got, (std::vector<bool>{false}));
}

// With three classes the softmax rule (eq. 63) is stricter than separated
// logit intervals: class 0's logit [1, 1.5] is above both others' [0, 0.9],
// but p0 >= 1 / (1 + 2 e^-0.1) = 0.356 while p1 can reach
// 1 / (1 + e^0.1 + e^-0.9) = 0.398.
TEST(Stable, ThreeClassSoftmaxRuleIsStricterThanSeparatedLogits) {
  const Matrix lower{{1.0, 0.0, 0.0}};
  const Matrix upper{{1.5, 0.9, 0.9}};
  EXPECT_EQ(Stable(Bounds(lower, upper)), (std::vector<bool>{false}));
  // Raising class 0 to [2, 2.5] makes p0 >= 0.600 > p1 <= 0.227.
  EXPECT_EQ(Stable(Bounds(Matrix{{2.0, 0.0, 0.0}}, Matrix{{2.5, 0.9, 0.9}})),
            (std::vector<bool>{true}));
}

// With two classes p0 = sigmoid(z0 - z1), so the softmax rule is exactly
// "one logit interval lies strictly above the other".
TEST(Stable, TwoClassSoftmaxRuleIsLogitSeparation) {
  Rng rng(11);
  const int n = 400;
  Matrix lower(n, 2), upper(n, 2);
  std::vector<bool> want(n);
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < 2; ++c) {
      // Multiples of 1/8 make ties common and comparisons exact.
      const double a = static_cast<double>(rng.UniformInt(33)) / 8.0 - 2.0;
      const double w = static_cast<double>(rng.UniformInt(9)) / 8.0;
      lower(i, c) = a;
      upper(i, c) = a + w;
    }
    want[i] = lower(i, 0) > upper(i, 1) || lower(i, 1) > upper(i, 0);
  }
  EXPECT_EQ(Stable(Bounds(lower, upper)), want);
}

// ---------------------------------------------------------------------------
// CertifyClassification.

TEST(CertifyClassification, BinaryWorstAndBestCaseUseTheFarEndsOfTheInterval) {
  const LogitBounds logits = MakeLogits(Matrix{{0.7}, {0.7}, {-0.5}, {1.0}, {-1.5}},
                                        Matrix{{0.5}, {-0.5}, {-1.0}, {0.0}, {-2.0}},
                                        Matrix{{1.0}, {1.0}, {0.0}, {2.0}, {-1.0}});
  const Vector labels{{1.0, 1.0, 0.0, 0.0, 1.0}};
  const ClassificationCertificate cert = CertifyClassification(logits, labels);
  // Nominal: rows 0, 1, 2 right. Worst (label 1 at l, label 0 at u): rows 0
  // and 2 (u = 0 is class 0). Best (label 1 at u, label 0 at l): rows 0-3.
  EXPECT_DOUBLE_EQ(cert.accuracy_nominal, 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(cert.accuracy_worst, 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(cert.accuracy_best, 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(cert.stable_fraction, 3.0 / 5.0);
  EXPECT_EQ(cert.stable, (std::vector<bool>{true, false, true, false, true}));
  // Row 4 is stable but wrong.
  EXPECT_EQ(cert.correct, (std::vector<bool>{true, false, true, false, false}));
}

TEST(CertifyClassification, MultiClassWorstCaseBreaksTiesTowardsTheFirstIndex) {
  // Row 0 (label 1): worst (2, 2, 0) is a tie won by class 0, so wrong.
  // Row 1 (label 0): worst (2, 2, 0) is the same tie, now won by the label.
  // Row 2 (label 2): clearly right and stable.
  // Row 3 (label 0): stable for class 1, so wrong everywhere.
  const Matrix nominal{{1.0, 2.5, -0.5}, {2.5, 1.0, -0.5}, {0.5, 0.5, 4.5}, {-0.5, 3.5, 0.5}};
  const Matrix lower{{0.0, 2.0, -1.0}, {2.0, 0.0, -1.0}, {0.0, 0.0, 4.0}, {-1.0, 3.0, 0.0}};
  const Matrix upper{{2.0, 3.0, 0.0}, {3.0, 2.0, 0.0}, {1.0, 1.0, 5.0}, {0.0, 4.0, 1.0}};
  const Vector labels{{1.0, 0.0, 2.0, 0.0}};
  const ClassificationCertificate cert =
      CertifyClassification(MakeLogits(nominal, lower, upper), labels);
  EXPECT_DOUBLE_EQ(cert.accuracy_nominal, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(cert.accuracy_worst, 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(cert.accuracy_best, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(cert.stable_fraction, 2.0 / 4.0);
  EXPECT_EQ(cert.stable, (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(cert.correct, (std::vector<bool>{false, false, true, false}));
}

TEST(CertifyClassification, NanBoundsAreNeitherStableNorCorrect) {
  const LogitBounds logits =
      MakeLogits(Matrix{{1.0}, {-1.0}}, Matrix{{kNan}, {kNan}}, Matrix{{kNan}, {kNan}});
  const ClassificationCertificate cert = CertifyClassification(logits, Vector{{1.0, 0.0}});
  EXPECT_DOUBLE_EQ(cert.accuracy_nominal, 1.0);
  EXPECT_EQ(cert.stable_fraction, 0.0);
  EXPECT_EQ(cert.correct, (std::vector<bool>{false, false}));
}

// BUG (reported, core/certify/certify.cc): the worst case of a label-0 row is
// !(u > 0), which a NaN u satisfies, so NaN bounds count as certified-correct
// for label 0 (binary), and a NaN lower bound of the true class wins the
// arg-max (multi-class: NaN never compares greater). Certified accuracy must
// not count rows whose bounds are NaN. Enable once certify.cc is fixed.
TEST(CertifyClassification, NanBoundsNeverCountTowardsCertifiedAccuracy) {
  const LogitBounds binary =
      MakeLogits(Matrix{{1.0}, {-1.0}}, Matrix{{kNan}, {-2.0}}, Matrix{{kNan}, {kNan}});
  EXPECT_EQ(CertifyClassification(binary, Vector{{1.0, 0.0}}).accuracy_worst, 0.0);
  const LogitBounds multi =
      MakeLogits(Matrix{{1.0, 0.0, 0.0}}, Matrix{{kNan, 0.0, 0.0}}, Matrix{{2.0, 1.0, 1.0}});
  EXPECT_EQ(CertifyClassification(multi, Vector{{0.0}}).accuracy_worst, 0.0);
}

TEST(CertifyClassification, PointBoundsAtTheNominalLogitsCertifyTheNominalAccuracy) {
  Rng rng(21);
  for (int classes : {1, 4}) {
    Matrix nominal(50, classes);
    Vector labels(50);
    for (Index i = 0; i < 50; ++i) {
      for (int c = 0; c < classes; ++c) nominal(i, c) = rng.Normal();
      labels[i] = static_cast<double>(rng.UniformInt(classes == 1 ? 2 : classes));
    }
    const ClassificationCertificate cert =
        CertifyClassification(MakeLogits(nominal, nominal, nominal), labels);
    EXPECT_DOUBLE_EQ(cert.accuracy_worst, cert.accuracy_nominal) << classes;
    EXPECT_DOUBLE_EQ(cert.accuracy_best, cert.accuracy_nominal) << classes;
    EXPECT_DOUBLE_EQ(cert.stable_fraction, 1.0) << classes;
    // Count by hand.
    double right = 0.0;
    for (Index i = 0; i < 50; ++i) {
      Index arg = 0;
      if (classes == 1) {
        arg = nominal(i, 0) > 0.0 ? 1 : 0;
      } else {
        nominal.row(i).maxCoeff(&arg);
      }
      right += arg == static_cast<Index>(labels[i]);
    }
    EXPECT_DOUBLE_EQ(cert.accuracy_nominal, right / 50.0) << classes;
  }
}

// ---------------------------------------------------------------------------
// CertifyRegression.

TEST(CertifyRegression, WorstAndBestSquaredErrorsOverTheIntervalAreAveraged) {
  // Row 0: target 1 inside [0.5, 2] (best 0, worst 1). Row 1: target 0 below
  // [1, 3] (best 1, worst 9). Row 2: target -1 above [-3, -2] (best 1, worst
  // 4). Row 3: target 2 at the lower end of [2, 2.5] (best 0, worst 0.25).
  const LogitBounds logits =
      MakeLogits(Matrix{{1.5}, {2.0}, {-2.5}, {2.25}}, Matrix{{0.5}, {1.0}, {-3.0}, {2.0}},
                 Matrix{{2.0}, {3.0}, {-2.0}, {2.5}});
  const RegressionCertificate cert = CertifyRegression(logits, Vector{{1.0, 0.0, -1.0, 2.0}});
  EXPECT_DOUBLE_EQ(cert.mse_nominal, (0.25 + 4.0 + 2.25 + 0.0625) / 4.0);
  EXPECT_DOUBLE_EQ(cert.mse_worst, (1.0 + 9.0 + 4.0 + 0.25) / 4.0);
  EXPECT_DOUBLE_EQ(cert.mse_best, (0.0 + 1.0 + 1.0 + 0.0) / 4.0);
}

TEST(CertifyRegression, BestIsZeroWhenEveryTargetIsInsideItsInterval) {
  const LogitBounds logits =
      MakeLogits(Matrix{{0.0}, {5.0}}, Matrix{{-1.0}, {4.0}}, Matrix{{1.0}, {4.0}});
  const RegressionCertificate cert = CertifyRegression(logits, Vector{{0.999, 4.0}});
  EXPECT_EQ(cert.mse_best, 0.0);
  EXPECT_GT(cert.mse_worst, 0.0);
}

// BUG (reported, core/certify/certify.cc): std::max(|l - y|, NaN) returns
// |l - y|, so a NaN upper bound gives a finite, too small worst-case MSE.
// Enable once certify.cc is fixed.
TEST(CertifyRegression, NanBoundsNeverGiveAFiniteWorstCase) {
  const LogitBounds logits = MakeLogits(Matrix{{0.5}}, Matrix{{0.0}}, Matrix{{kNan}});
  EXPECT_FALSE(std::isfinite(CertifyRegression(logits, Vector{{0.0}}).mse_worst));
}

// ---------------------------------------------------------------------------
// LargestStableBudget.

TEST(LargestStableBudget, TakesTheLargestStableIndexEvenWhenFlagsAreNotMonotone) {
  // stable_per_budget[j][i]: budget j, row i.
  const std::vector<std::vector<bool>> flags = {
      {true, false, true, false, false},
      {false, false, true, false, false},
      {true, true, false, false, false},
      {false, false, false, true, false},
  };
  EXPECT_EQ(LargestStableBudget(flags), (std::vector<int>{2, 2, 1, 3, -1}));
}

TEST(LargestStableBudget, NoBudgetsGiveNoRowsAndOneBudgetGivesZeroOrMinusOne) {
  EXPECT_TRUE(LargestStableBudget({}).empty());
  EXPECT_EQ(LargestStableBudget({{true, false}}), (std::vector<int>{0, -1}));
}

// ---------------------------------------------------------------------------
// ComputeLogitBounds.

// y = w0 x0 + w1 x1 + b with w in [0.9, 1.1] x [-2.1, -1.9], b in [0.4, 0.6].
struct LinearCase {
  ModelSpec spec = ModelSpec::Mlp({2, 1});
  Vector theta{{1.0, -2.0, 0.5}};
  ParameterBox box{Vector{{0.9, -2.1, 0.4}}, Vector{{1.1, -1.9, 0.6}}};
  Matrix x{{1.0, 1.0}, {2.0, -1.0}};
};

constexpr MatMulMethod kMethods[] = {MatMulMethod::kRump, MatMulMethod::kExact,
                                     MatMulMethod::kNguyen};

TEST(ComputeLogitBounds, LinearModelOnPointInputsGetsTheExactRangeWithEveryMethod) {
  const LinearCase lc;
  for (MatMulMethod method : kMethods) {
    const LogitBounds b = ComputeLogitBounds(lc.spec, lc.theta, lc.box, lc.x, 0.0, method);
    EXPECT_NEAR(b.nominal(0, 0), -0.5, 1e-15);
    EXPECT_NEAR(b.nominal(1, 0), 4.5, 1e-15);
    EXPECT_NEAR(b.bounds.lower(0, 0), -0.8, 1e-12);
    EXPECT_NEAR(b.bounds.upper(0, 0), -0.2, 1e-12);
    EXPECT_NEAR(b.bounds.lower(1, 0), 4.1, 1e-12);
    EXPECT_NEAR(b.bounds.upper(1, 0), 4.9, 1e-12);
  }
}

TEST(ComputeLogitBounds, TestEpsilonWidensTheBoundsButNotTheNominalLogits) {
  const LinearCase lc;
  // Exact interval arithmetic with x in [x - 0.1, x + 0.1]: row 0 gives
  // [0.81 - 2.31 + 0.4, 1.21 - 1.71 + 0.6], row 1 [1.71 + 1.71 + 0.4, 2.31 + 2.31 + 0.6].
  const LogitBounds exact =
      ComputeLogitBounds(lc.spec, lc.theta, lc.box, lc.x, 0.1, MatMulMethod::kExact);
  EXPECT_NEAR(exact.nominal(0, 0), -0.5, 1e-15);
  EXPECT_NEAR(exact.bounds.lower(0, 0), -1.1, 1e-12);
  EXPECT_NEAR(exact.bounds.upper(0, 0), 0.1, 1e-12);
  EXPECT_NEAR(exact.bounds.lower(1, 0), 3.82, 1e-12);
  EXPECT_NEAR(exact.bounds.upper(1, 0), 5.22, 1e-12);
  for (MatMulMethod method : kMethods) {
    const LogitBounds wide = ComputeLogitBounds(lc.spec, lc.theta, lc.box, lc.x, 0.1, method);
    // Every method encloses the exact range, and Rump is at most 1.5x wider.
    EXPECT_TRUE((wide.bounds.lower.array() <= exact.bounds.lower.array() + 1e-12).all());
    EXPECT_TRUE((wide.bounds.upper.array() >= exact.bounds.upper.array() - 1e-12).all());
    const Matrix width = wide.bounds.upper - wide.bounds.lower;
    const Matrix exact_width = exact.bounds.upper - exact.bounds.lower;
    EXPECT_TRUE((width.array() <= 1.5 * exact_width.array() + 1e-12).all());
  }
  // Without test_epsilon the row-0 interval [-0.8, -0.2] is stable; with it,
  // [-1.1, 0.1] is not.
  EXPECT_EQ(Stable(exact.bounds), (std::vector<bool>{false, true}));
}

// A random MLP, a box around its parameters, random inputs.
struct MlpCase {
  ModelSpec spec;
  Vector theta;
  ParameterBox box;
  Matrix x;
};

MlpCase RandomMlp(const std::vector<int>& widths, int rows, Rng* rng) {
  MlpCase mc;
  mc.spec = ModelSpec::Mlp(widths);
  mc.theta = InitParameters(mc.spec, rng->NextU64());
  Vector radius(mc.theta.size());
  for (Index i = 0; i < radius.size(); ++i) {
    radius[i] = rng->UniformInt(3) == 0 ? 0.0 : rng->Uniform(0.0, 0.03);
  }
  mc.box = ParameterBox{mc.theta - radius, mc.theta + radius};
  mc.x.resize(rows, widths.front());
  for (Index r = 0; r < rows; ++r) {
    for (int c = 0; c < widths.front(); ++c) mc.x(r, c) = rng->Normal();
  }
  return mc;
}

TEST(ComputeLogitBounds, NominalLogitsAreTheForwardPassAtTheNominalParameters) {
  Rng rng(31);
  const MlpCase mc = RandomMlp({3, 7, 4}, 9, &rng);
  const LogitBounds b = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, 0.2);
  const Matrix want = ReferenceForward(mc.spec, mc.theta, mc.x);
  EXPECT_LE((b.nominal - want).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(ComputeLogitBounds, ContainTheLogitsOfSampledModelsOnSampledPerturbedInputs) {
  Rng rng(32);
  for (const std::vector<int>& widths :
       {std::vector<int>{2, 1}, std::vector<int>{3, 8, 1}, std::vector<int>{4, 6, 5, 3}}) {
    const MlpCase mc = RandomMlp(widths, 12, &rng);
    for (double eps : {0.0, 0.05}) {
      for (MatMulMethod method : kMethods) {
        const LogitBounds b = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, eps, method);
        ASSERT_TRUE(b.bounds.IsValid());
        const Matrix x_lo = (mc.x.array() - eps).matrix(), x_hi = (mc.x.array() + eps).matrix();
        for (int s = 0; s < 60; ++s) {
          const Vector theta = SampleIn(mc.box.lower, mc.box.upper, &rng);
          const Matrix x = SampleIn(x_lo, x_hi, &rng);
          const Matrix z = ReferenceForward(mc.spec, theta, x);
          EXPECT_TRUE(b.bounds.Contains(z, 1e-12))
              << mc.spec.Describe() << " eps=" << eps << " method " << static_cast<int>(method);
        }
      }
    }
  }
}

TEST(ComputeLogitBounds, TestEpsilonBoundsContainTheBoundsWithoutIt) {
  Rng rng(33);
  const MlpCase mc = RandomMlp({3, 8, 8, 2}, 10, &rng);
  for (MatMulMethod method : kMethods) {
    const LogitBounds point = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, 0.0, method);
    for (double eps : {1e-3, 0.05, 0.3}) {
      const LogitBounds ball = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, eps, method);
      EXPECT_TRUE((ball.bounds.lower.array() <= point.bounds.lower.array() + 1e-12).all())
          << "eps=" << eps << " method " << static_cast<int>(method);
      EXPECT_TRUE((ball.bounds.upper.array() >= point.bounds.upper.array() - 1e-12).all())
          << "eps=" << eps << " method " << static_cast<int>(method);
    }
  }
}

TEST(ComputeLogitBounds, RowsPastOneChunkAreEachChunksOwnBoundsWhateverTheThreads) {
  // 2.5 chunks of rows: every row's bounds are those of its chunk bounded
  // alone (so the chunks are joined in order), with margins, for every
  // method and thread count; and sampled models stay inside.
  Rng rng(35);
  const Index rows = kLogitChunkRows * 5 / 2;
  const MlpCase mc = RandomMlp({5, 9, 4}, static_cast<int>(rows), &rng);
  for (MatMulMethod method : kMethods) {
    for (double eps : {0.0, 0.05}) {
      const LogitBounds one =
          ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, eps, method, true, 1);
      ASSERT_EQ(one.nominal.rows(), rows);
      ASSERT_EQ(one.margin_lower.rows(), rows);
      for (int threads : {2, 3, 0}) {
        const LogitBounds many =
            ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, eps, method, true, threads);
        EXPECT_TRUE((many.nominal.array() == one.nominal.array()).all()) << threads;
        EXPECT_TRUE((many.bounds.lower.array() == one.bounds.lower.array()).all()) << threads;
        EXPECT_TRUE((many.bounds.upper.array() == one.bounds.upper.array()).all()) << threads;
        EXPECT_TRUE((many.margin_lower.array() == one.margin_lower.array()).all()) << threads;
      }
      for (Index r0 = 0; r0 < rows; r0 += kLogitChunkRows) {
        const Index n = std::min(kLogitChunkRows, rows - r0);
        const LogitBounds alone = ComputeLogitBounds(mc.spec, mc.theta, mc.box,
                                                     mc.x.middleRows(r0, n), eps, method, true);
        EXPECT_TRUE((alone.nominal.array() == one.nominal.middleRows(r0, n).array()).all());
        EXPECT_TRUE(
            (alone.bounds.lower.array() == one.bounds.lower.middleRows(r0, n).array()).all());
        EXPECT_TRUE(
            (alone.bounds.upper.array() == one.bounds.upper.middleRows(r0, n).array()).all());
        EXPECT_TRUE(
            (alone.margin_lower.array() == one.margin_lower.middleRows(r0, n).array()).all());
      }
      const Matrix x_lo = (mc.x.array() - eps).matrix(), x_hi = (mc.x.array() + eps).matrix();
      for (int s = 0; s < 10; ++s) {
        const Vector theta = SampleIn(mc.box.lower, mc.box.upper, &rng);
        const Matrix z = ReferenceForward(mc.spec, theta, SampleIn(x_lo, x_hi, &rng));
        EXPECT_TRUE(one.bounds.Contains(z, 1e-12)) << static_cast<int>(method) << " " << eps;
      }
    }
  }
}

// The certificates' promises, checked on models and inputs sampled from the
// box and the ball: a stable row keeps its nominal prediction, and each
// sampled model's accuracy / MSE lies between the worst and best case.
TEST(Certificates, HoldForEverySampledModelAndPerturbedInput) {
  Rng rng(34);
  for (const std::vector<int>& widths : {std::vector<int>{2, 6, 1}, std::vector<int>{3, 6, 4}}) {
    const MlpCase mc = RandomMlp(widths, 40, &rng);
    const int classes = widths.back() == 1 ? 2 : widths.back();
    Vector labels(40);
    for (Index i = 0; i < 40; ++i) labels[i] = static_cast<double>(rng.UniformInt(classes));
    const double eps = 0.02;
    const LogitBounds b = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, eps);
    const ClassificationCertificate cert = CertifyClassification(b, labels);
    const std::vector<int> nominal = PredictClasses(b.nominal);
    int stable = 0;
    for (bool s : cert.stable) stable += s;
    // The case must exercise both kinds of rows.
    EXPECT_GT(stable, 0) << mc.spec.Describe();
    EXPECT_LT(stable, 40) << mc.spec.Describe();
    const Matrix x_lo = (mc.x.array() - eps).matrix(), x_hi = (mc.x.array() + eps).matrix();
    for (int s = 0; s < 200; ++s) {
      const Vector theta = SampleIn(mc.box.lower, mc.box.upper, &rng);
      const std::vector<int> pred =
          PredictClasses(ReferenceForward(mc.spec, theta, SampleIn(x_lo, x_hi, &rng)));
      double right = 0.0;
      for (Index i = 0; i < 40; ++i) {
        if (cert.stable[i]) {
          EXPECT_EQ(pred[i], nominal[i]) << "row " << i;
        }
        right += pred[i] == static_cast<int>(labels[i]);
      }
      EXPECT_GE(right / 40.0, cert.accuracy_worst - 1e-12);
      EXPECT_LE(right / 40.0, cert.accuracy_best + 1e-12);
    }
  }
}

TEST(Certificates, RegressionMseOfEverySampledModelLiesBetweenBestAndWorst) {
  Rng rng(35);
  const MlpCase mc = RandomMlp({3, 6, 1}, 30, &rng);
  Vector targets(30);
  for (Index i = 0; i < 30; ++i) targets[i] = rng.Normal(0.0, 0.5);
  const LogitBounds b = ComputeLogitBounds(mc.spec, mc.theta, mc.box, mc.x, 0.01);
  const RegressionCertificate cert = CertifyRegression(b, targets);
  EXPECT_LE(cert.mse_best, cert.mse_nominal);
  EXPECT_GE(cert.mse_worst, cert.mse_nominal);
  for (int s = 0; s < 200; ++s) {
    const Vector theta = SampleIn(mc.box.lower, mc.box.upper, &rng);
    const Matrix x_lo = (mc.x.array() - 0.01).matrix(), x_hi = (mc.x.array() + 0.01).matrix();
    const Matrix x = SampleIn(x_lo, x_hi, &rng);
    const double mse = (ReferenceForward(mc.spec, theta, x).col(0) - targets).squaredNorm() / 30.0;
    EXPECT_GE(mse, cert.mse_best - 1e-12);
    EXPECT_LE(mse, cert.mse_worst + 1e-12);
  }
}

}  // namespace
}  // namespace agt
