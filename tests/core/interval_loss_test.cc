// Property tests for interval arithmetic (core/interval/interval.h) and the
// loss gradients and their interval bounds (core/loss/loss.h): seeded random
// cases, all corners of tiny cases, and edge cases (points, zero, kinks, huge
// logits). Expected values come from the definitions, never from the code
// under test.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/rng.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"

namespace agt {
namespace {

constexpr double kTol = 1e-12;

struct NamedMethod {
  MatMulMethod method;
  const char* name;
};
constexpr NamedMethod kMethods[] = {{MatMulMethod::kRump, "rump"},
                                    {MatMulMethod::kExact, "exact"},
                                    {MatMulMethod::kNguyen, "nguyen"}};

// Entries of every kind: points, positive, negative, straddling zero (leaning
// either way), touching zero, and exact zeros.
IntervalMatrix RandomInterval(Index rows, Index cols, Rng* rng) {
  Matrix lo(rows, cols), hi(rows, cols);
  for (Index r = 0; r < rows; ++r) {
    for (Index c = 0; c < cols; ++c) {
      double a = rng->Normal(), b = rng->Normal();
      const uint64_t kind = rng->UniformInt(8);
      if (kind == 0) b = a;                   // a point
      if (kind == 1) a = 0.0;                 // touches zero
      if (kind == 2) a = b = 0.0;             // the point zero
      if (kind == 3) a = std::abs(a) * 1e-3;  // just above zero
      lo(r, c) = std::min(a, b);
      hi(r, c) = std::max(a, b);
    }
  }
  return {lo, hi};
}

Matrix SampleInside(const IntervalMatrix& m, Rng* rng) {
  Matrix out(m.rows(), m.cols());
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      const uint64_t pick = rng->UniformInt(4);
      out(r, c) = pick == 0   ? m.lower(r, c)
                  : pick == 1 ? m.upper(r, c)
                              : rng->Uniform(m.lower(r, c), m.upper(r, c));
    }
  }
  return out;
}

// The corner of m picked by the bits of `mask` (bit i: entry i row-major).
Matrix Corner(const IntervalMatrix& m, uint32_t mask) {
  Matrix out(m.rows(), m.cols());
  for (Index i = 0; i < m.rows() * m.cols(); ++i) {
    const Index r = i / m.cols(), c = i % m.cols();
    out(r, c) = (mask >> i) & 1u ? m.upper(r, c) : m.lower(r, c);
  }
  return out;
}

// Scale-aware: the tolerance grows with the magnitude of the bound.
::testing::AssertionResult Encloses(const IntervalMatrix& box, const Matrix& m, double tol) {
  if (m.rows() != box.rows() || m.cols() != box.cols()) {
    return ::testing::AssertionFailure() << "shape mismatch";
  }
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      const double lo = box.lower(r, c), hi = box.upper(r, c), v = m(r, c);
      const double t = tol * std::max({1.0, std::abs(lo), std::abs(hi)});
      if (!(v >= lo - t && v <= hi + t)) {
        return ::testing::AssertionFailure()
               << "(" << r << ", " << c << "): " << v << " outside [" << lo << ", " << hi << "]";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// MatMul.

// For tiny shapes every corner product is enumerated; the per-entry hull of
// the corners is the exact range (each entry is a sum of independent
// bilinear terms, each extreme at a corner).
TEST(IntervalMatMul, EveryMethodContainsEveryCornerProductAndExactIsTheirHull) {
  Rng rng(1);
  struct Shape {
    Index m, k, n;
  };
  for (const Shape& s : {Shape{1, 1, 1}, Shape{2, 2, 2}, Shape{1, 3, 2}, Shape{2, 3, 1}}) {
    for (int trial = 0; trial < 15; ++trial) {
      const IntervalMatrix a = RandomInterval(s.m, s.k, &rng);
      const IntervalMatrix b = RandomInterval(s.k, s.n, &rng);
      Matrix hull_lo = Matrix::Constant(s.m, s.n, std::numeric_limits<double>::infinity());
      Matrix hull_hi = -hull_lo;
      std::vector<IntervalMatrix> results;
      for (const NamedMethod& nm : kMethods) results.push_back(MatMul(a, b, nm.method));
      for (uint32_t ma = 0; ma < (1u << (s.m * s.k)); ++ma) {
        for (uint32_t mb = 0; mb < (1u << (s.k * s.n)); ++mb) {
          const Matrix p = Corner(a, ma) * Corner(b, mb);
          hull_lo = hull_lo.cwiseMin(p);
          hull_hi = hull_hi.cwiseMax(p);
          for (size_t i = 0; i < results.size(); ++i) {
            ASSERT_TRUE(Encloses(results[i], p, kTol)) << kMethods[i].name << " trial " << trial;
          }
        }
      }
      const IntervalMatrix& exact = results[1];
      EXPECT_LE((exact.lower - hull_lo).cwiseAbs().maxCoeff(), kTol) << "trial " << trial;
      EXPECT_LE((exact.upper - hull_hi).cwiseAbs().maxCoeff(), kTol) << "trial " << trial;
    }
  }
}

TEST(IntervalMatMul, EveryMethodContainsSampledProductsOfLargerMatrices) {
  Rng rng(2);
  for (int trial = 0; trial < 10; ++trial) {
    const IntervalMatrix a = RandomInterval(5, 9, &rng);
    const IntervalMatrix b = RandomInterval(9, 4, &rng);
    for (const NamedMethod& nm : kMethods) {
      const IntervalMatrix h = MatMul(a, b, nm.method);
      ASSERT_TRUE(h.IsValid()) << nm.name;
      for (int s = 0; s < 50; ++s) {
        ASSERT_TRUE(Encloses(h, SampleInside(a, &rng) * SampleInside(b, &rng), kTol))
            << nm.name << " trial " << trial;
      }
    }
  }
}

TEST(IntervalMatMul, ExactIsNeverWiderThanRumpOrNguyen) {
  Rng rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    const IntervalMatrix a = RandomInterval(4, 6, &rng);
    const IntervalMatrix b = RandomInterval(6, 3, &rng);
    const IntervalMatrix exact = MatMul(a, b, MatMulMethod::kExact);
    for (MatMulMethod other : {MatMulMethod::kRump, MatMulMethod::kNguyen}) {
      const IntervalMatrix h = MatMul(a, b, other);
      EXPECT_TRUE(Encloses(h, exact.lower, kTol)) << "trial " << trial;
      EXPECT_TRUE(Encloses(h, exact.upper, kTol)) << "trial " << trial;
    }
  }
}

// Rump (1999): the midpoint-radius product overestimates the radius of each
// term by at most a factor 1.5, so each entry's width is within 1.5x exact.
TEST(IntervalMatMul, RumpIsAtMostOneAndAHalfTimesWiderThanExact) {
  Rng rng(4);
  for (int trial = 0; trial < 100; ++trial) {
    const IntervalMatrix a = RandomInterval(3, 5, &rng);
    const IntervalMatrix b = RandomInterval(5, 4, &rng);
    const Matrix exact_width =
        MatMul(a, b, MatMulMethod::kExact).upper - MatMul(a, b, MatMulMethod::kExact).lower;
    const IntervalMatrix rump = MatMul(a, b, MatMulMethod::kRump);
    const Matrix rump_width = rump.upper - rump.lower;
    EXPECT_TRUE((rump_width.array() <= 1.5 * exact_width.array() + kTol).all())
        << "trial " << trial;
  }
}

// With one factor a point, each term of an entry is a point times an
// interval, whose exact range is spanned by choosing each interval entry's
// end by the sign of its point partner.
TEST(IntervalMatMul, RumpIsExactWhenEitherFactorIsAPoint) {
  Rng rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    const IntervalMatrix a = RandomInterval(4, 5, &rng);
    const IntervalMatrix b = RandomInterval(5, 3, &rng);
    const Matrix pa = SampleInside(a, &rng), pb = SampleInside(b, &rng);
    // Point left factor.
    Matrix lo = Matrix::Zero(4, 3), hi = Matrix::Zero(4, 3);
    for (Index i = 0; i < 4; ++i) {
      for (Index j = 0; j < 3; ++j) {
        for (Index p = 0; p < 5; ++p) {
          const double x = pa(i, p);
          lo(i, j) += x >= 0 ? x * b.lower(p, j) : x * b.upper(p, j);
          hi(i, j) += x >= 0 ? x * b.upper(p, j) : x * b.lower(p, j);
        }
      }
    }
    IntervalMatrix rump = MatMul(IntervalMatrix::Point(pa), b, MatMulMethod::kRump);
    EXPECT_LE((rump.lower - lo).cwiseAbs().maxCoeff(), kTol * (1.0 + lo.cwiseAbs().maxCoeff()));
    EXPECT_LE((rump.upper - hi).cwiseAbs().maxCoeff(), kTol * (1.0 + hi.cwiseAbs().maxCoeff()));
    // Point right factor.
    lo.setZero();
    hi.setZero();
    for (Index i = 0; i < 4; ++i) {
      for (Index j = 0; j < 3; ++j) {
        for (Index p = 0; p < 5; ++p) {
          const double y = pb(p, j);
          lo(i, j) += y >= 0 ? a.lower(i, p) * y : a.upper(i, p) * y;
          hi(i, j) += y >= 0 ? a.upper(i, p) * y : a.lower(i, p) * y;
        }
      }
    }
    rump = MatMul(a, IntervalMatrix::Point(pb), MatMulMethod::kRump);
    EXPECT_LE((rump.lower - lo).cwiseAbs().maxCoeff(), kTol * (1.0 + lo.cwiseAbs().maxCoeff()));
    EXPECT_LE((rump.upper - hi).cwiseAbs().maxCoeff(), kTol * (1.0 + hi.cwiseAbs().maxCoeff()));
  }
}

TEST(IntervalMatMul, PointTimesPointIsTheOrdinaryProductForEveryMethod) {
  Rng rng(6);
  const Matrix a = SampleInside(RandomInterval(3, 4, &rng), &rng);
  const Matrix b = SampleInside(RandomInterval(4, 2, &rng), &rng);
  const Matrix want = a * b;
  for (const NamedMethod& nm : kMethods) {
    const IntervalMatrix h = MatMul(IntervalMatrix::Point(a), IntervalMatrix::Point(b), nm.method);
    EXPECT_LE((h.lower - want).cwiseAbs().maxCoeff(), kTol) << nm.name;
    EXPECT_LE((h.upper - want).cwiseAbs().maxCoeff(), kTol) << nm.name;
  }
}

TEST(IntervalMatMul, HandComputedStraddlingProduct) {
  // [-1, 2] * [-3, 1] = [-6, 3] exactly; Rump: mid 0.5 * -1 = -0.5, radius
  // 0.5 * 2 + 1.5 * 1 + 1.5 * 2 = 5.5, so [-6, 5].
  const IntervalMatrix a{Matrix{{-1.0}}, Matrix{{2.0}}};
  const IntervalMatrix b{Matrix{{-3.0}}, Matrix{{1.0}}};
  const IntervalMatrix exact = MatMul(a, b, MatMulMethod::kExact);
  EXPECT_EQ(exact.lower(0, 0), -6.0);
  EXPECT_EQ(exact.upper(0, 0), 3.0);
  const IntervalMatrix rump = MatMul(a, b, MatMulMethod::kRump);
  EXPECT_DOUBLE_EQ(rump.lower(0, 0), -6.0);
  EXPECT_DOUBLE_EQ(rump.upper(0, 0), 5.0);
}

// ---------------------------------------------------------------------------
// Elementwise operations.

TEST(IntervalElementwise, ProductIsTheHullOfTheFourEndpointProducts) {
  Rng rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const IntervalMatrix a = RandomInterval(3, 4, &rng);
    const IntervalMatrix b = RandomInterval(3, 4, &rng);
    const IntervalMatrix h = ElementwiseProduct(a, b);
    ASSERT_TRUE(h.IsValid());
    for (int s = 0; s < 40; ++s) {
      const Matrix p = SampleInside(a, &rng).cwiseProduct(SampleInside(b, &rng));
      ASSERT_TRUE(Encloses(h, p, 0.0)) << "trial " << trial;
    }
    // Tight: each bound is attained by an endpoint product.
    for (Index r = 0; r < 3; ++r) {
      for (Index c = 0; c < 4; ++c) {
        const double ends[] = {a.lower(r, c) * b.lower(r, c), a.lower(r, c) * b.upper(r, c),
                               a.upper(r, c) * b.lower(r, c), a.upper(r, c) * b.upper(r, c)};
        EXPECT_EQ(h.lower(r, c), *std::min_element(ends, ends + 4));
        EXPECT_EQ(h.upper(r, c), *std::max_element(ends, ends + 4));
      }
    }
  }
}

TEST(IntervalElementwise, HandComputedProductsAcrossZero) {
  const IntervalMatrix a{Matrix{{-2.0, -2.0, 1.0, 0.0}}, Matrix{{3.0, -1.0, 2.0, 0.0}}};
  const IntervalMatrix b{Matrix{{-1.0, -4.0, -3.0, -5.0}}, Matrix{{4.0, 2.0, -1.0, 5.0}}};
  const IntervalMatrix h = ElementwiseProduct(a, b);
  EXPECT_EQ(h.lower, (Matrix{{-8.0, -4.0, -6.0, 0.0}}));
  EXPECT_EQ(h.upper, (Matrix{{12.0, 8.0, -1.0, 0.0}}));
}

TEST(IntervalElementwise, ReluClampsBothEndsAtZero) {
  const IntervalMatrix a{Matrix{{-2.0, -1.0, 0.0, 0.5, -0.0}}, Matrix{{-1.0, 3.0, 0.0, 2.0, 1.0}}};
  const IntervalMatrix r = Relu(a);
  EXPECT_EQ(r.lower, (Matrix{{0.0, 0.0, 0.0, 0.5, 0.0}}));
  EXPECT_EQ(r.upper, (Matrix{{0.0, 3.0, 0.0, 2.0, 1.0}}));
  Rng rng(8);
  const IntervalMatrix x = RandomInterval(4, 5, &rng);
  const IntervalMatrix rx = Relu(x);
  for (int s = 0; s < 100; ++s) {
    ASSERT_TRUE(Encloses(rx, SampleInside(x, &rng).cwiseMax(0.0), 0.0));
  }
}

TEST(IntervalElementwise, HeavisideIsStrictAtZero) {
  const IntervalMatrix a{Matrix{{-1.0, 0.0, -1.0, 1e-300, 0.0, -2.0}},
                         Matrix{{0.0, 1.0, 1.0, 1.0, 0.0, -1.0}}};
  const IntervalMatrix h = Heaviside(a);
  EXPECT_EQ(h.lower, (Matrix{{0.0, 0.0, 0.0, 1.0, 0.0, 0.0}}));
  EXPECT_EQ(h.upper, (Matrix{{0.0, 1.0, 1.0, 1.0, 0.0, 0.0}}));
  Rng rng(9);
  const IntervalMatrix x = RandomInterval(4, 5, &rng);
  const IntervalMatrix hx = Heaviside(x);
  for (int s = 0; s < 100; ++s) {
    const Matrix z = SampleInside(x, &rng);
    ASSERT_TRUE(Encloses(hx, (z.array() > 0.0).cast<double>().matrix(), 0.0));
  }
}

TEST(IntervalElementwise, SubtractionPairsOppositeEnds) {
  const IntervalMatrix a{Matrix{{1.0, -1.0}}, Matrix{{2.0, 0.0}}};
  const IntervalMatrix b{Matrix{{0.5, -3.0}}, Matrix{{3.0, -2.0}}};
  const IntervalMatrix d = Sub(a, b);
  EXPECT_EQ(d.lower, (Matrix{{-2.0, 1.0}}));
  EXPECT_EQ(d.upper, (Matrix{{1.5, 3.0}}));
  // a - a is not {0}: the two operands vary independently.
  const IntervalMatrix self = Sub(a, a);
  EXPECT_EQ(self.lower, (Matrix{{-1.0, -1.0}}));
  EXPECT_EQ(self.upper, (Matrix{{1.0, 1.0}}));
  const IntervalMatrix s = Add(a, b);
  EXPECT_EQ(s.lower, (Matrix{{1.5, -4.0}}));
  EXPECT_EQ(s.upper, (Matrix{{5.0, -2.0}}));
}

TEST(IntervalElementwise, ScaleByANegativeFactorSwapsTheEnds) {
  const IntervalMatrix a{Matrix{{1.0, -2.0}}, Matrix{{2.0, 4.0}}};
  IntervalMatrix s = Scale(a, -3.0);
  EXPECT_TRUE(s.IsValid());
  EXPECT_EQ(s.lower, (Matrix{{-6.0, -12.0}}));
  EXPECT_EQ(s.upper, (Matrix{{-3.0, 6.0}}));
  s = Scale(a, 0.5);
  EXPECT_EQ(s.lower, (Matrix{{0.5, -1.0}}));
  EXPECT_EQ(s.upper, (Matrix{{1.0, 2.0}}));
  s = Scale(a, 0.0);
  EXPECT_TRUE(s.IsValid());
  EXPECT_TRUE(s.Contains(Matrix::Zero(1, 2)));
  Rng rng(10);
  const IntervalMatrix x = RandomInterval(3, 3, &rng);
  for (double f : {-7.5, -1.0, -1e-3, 0.0, 2.0}) {
    const IntervalMatrix sx = Scale(x, f);
    ASSERT_TRUE(sx.IsValid()) << f;
    for (int k = 0; k < 30; ++k) ASSERT_TRUE(Encloses(sx, SampleInside(x, &rng) * f, 0.0)) << f;
  }
}

TEST(IntervalMatrixBasics, BallPointMidRadAndContains) {
  const Matrix c{{1.0, -2.0}};
  const IntervalMatrix ball = IntervalMatrix::Ball(c, 0.5);
  EXPECT_EQ(ball.lower, (Matrix{{0.5, -2.5}}));
  EXPECT_EQ(ball.upper, (Matrix{{1.5, -1.5}}));
  EXPECT_EQ(ball.Mid(), c);
  EXPECT_EQ(ball.Rad(), (Matrix{{0.5, 0.5}}));
  EXPECT_TRUE(ball.Contains(Matrix{{1.5, -2.5}}));
  EXPECT_FALSE(ball.Contains(Matrix{{1.6, -2.0}}));
  EXPECT_TRUE(ball.Contains(Matrix{{1.6, -2.0}}, 0.2));
  EXPECT_FALSE(ball.Contains(Matrix{{1.0}}));
  EXPECT_TRUE(IntervalMatrix::Point(c).IsValid());
  EXPECT_FALSE(IntervalMatrix(Matrix{{1.0}}, Matrix{{0.0}}).IsValid());
}

// ---------------------------------------------------------------------------
// Loss gradients: the soundness of LossGradientBounds.

constexpr LossKind kLosses[] = {LossKind::kMse, LossKind::kBinaryCrossEntropy,
                                LossKind::kCrossEntropy, LossKind::kHinge};

int ClassesOf(LossKind kind) { return kind == LossKind::kCrossEntropy ? 4 : 1; }

// Every label a row's perturbation allows, for classification losses.
std::vector<double> AllowedLabels(LossKind kind, double y, const LabelPerturbation& p) {
  if (!p.enabled) return {y};
  const int classes = kind == LossKind::kCrossEntropy ? ClassesOf(kind) : 2;
  if (p.target_class >= 0) return {y, static_cast<double>(p.target_class)};
  std::vector<double> all;
  for (int c = 0; c < classes; ++c) all.push_back(c);
  return all;
}

// Logit rows of every kind: points, wide, narrow, straddling zero, huge.
IntervalMatrix RandomLogits(Index rows, Index cols, Rng* rng) {
  Matrix lo(rows, cols), hi(rows, cols);
  for (Index r = 0; r < rows; ++r) {
    const double scale = rng->UniformInt(6) == 0 ? 400.0 : 2.0;
    for (Index c = 0; c < cols; ++c) {
      const double a = rng->Normal(0.0, scale);
      const double w = rng->UniformInt(4) == 0 ? 0.0 : std::abs(rng->Normal(0.0, scale / 2));
      lo(r, c) = a;
      hi(r, c) = a + w;
    }
  }
  return {lo, hi};
}

Vector RandomLabels(LossKind kind, Index rows, Rng* rng) {
  Vector y(rows);
  for (Index r = 0; r < rows; ++r) {
    switch (kind) {
      case LossKind::kMse:
        y[r] = rng->Normal();
        break;
      case LossKind::kCrossEntropy:
        y[r] = static_cast<double>(rng->UniformInt(4));
        break;
      default:
        y[r] = static_cast<double>(rng->UniformInt(2));
        break;
    }
  }
  return y;
}

// Checks that the gradient at `z` (one row) for label `label` is inside row r.
::testing::AssertionResult RowInside(LossKind kind, const IntervalMatrix& g, Index r,
                                     const Matrix& z, double label) {
  const Matrix grad = LossGradient(kind, z, Vector::Constant(1, label));
  for (Index c = 0; c < grad.cols(); ++c) {
    const double v = grad(0, c), lo = g.lower(r, c), hi = g.upper(r, c);
    const double t = kTol * std::max({1.0, std::abs(lo), std::abs(hi)});
    if (std::isnan(v) || !(v >= lo - t && v <= hi + t)) {
      return ::testing::AssertionFailure() << "row " << r << " class " << c << " label " << label
                                           << ": " << v << " outside [" << lo << ", " << hi << "]";
    }
  }
  return ::testing::AssertionSuccess();
}

void CheckGradientBoundsContainSamples(LossKind kind, const LabelPerturbation& p, uint64_t seed) {
  Rng rng(seed);
  const Index rows = 30;
  const IntervalMatrix logits = RandomLogits(rows, ClassesOf(kind), &rng);
  const Vector labels = RandomLabels(kind, rows, &rng);
  const IntervalMatrix g = LossGradientBounds(kind, logits, labels, p);
  ASSERT_TRUE(g.IsValid()) << LossKindName(kind);
  ASSERT_FALSE(g.lower.hasNaN() || g.upper.hasNaN()) << LossKindName(kind);
  for (Index r = 0; r < rows; ++r) {
    const IntervalMatrix row{logits.lower.row(r), logits.upper.row(r)};
    for (int s = 0; s < 40; ++s) {
      const Matrix z = SampleInside(row, &rng);
      if (kind == LossKind::kMse) {
        const double nu = p.enabled ? p.nu : 0.0;
        for (double d : {-nu, nu, rng.Uniform(-nu, nu), 0.0}) {
          ASSERT_TRUE(RowInside(kind, g, r, z, labels[r] + d)) << "mse nu=" << nu;
        }
      } else {
        for (double y : AllowedLabels(kind, labels[r], p)) {
          ASSERT_TRUE(RowInside(kind, g, r, z, y))
              << LossKindName(kind) << " enabled=" << p.enabled << " target=" << p.target_class;
        }
      }
    }
  }
}

TEST(LossGradientBounds, ContainTheGradientAtSampledLogitsWithoutLabelPerturbation) {
  for (LossKind kind : kLosses) CheckGradientBoundsContainSamples(kind, LabelPerturbation{}, 11);
}

TEST(LossGradientBounds, ContainTheGradientForEveryFlippedLabel) {
  LabelPerturbation flip;
  flip.enabled = true;
  for (LossKind kind : kLosses) {
    if (kind != LossKind::kMse) CheckGradientBoundsContainSamples(kind, flip, 12);
  }
}

TEST(LossGradientBounds, ContainTheGradientForLabelsFlippedToTheTargetClass) {
  for (int target = 0; target < 4; ++target) {
    LabelPerturbation flip;
    flip.enabled = true;
    flip.target_class = target;
    CheckGradientBoundsContainSamples(LossKind::kCrossEntropy, flip, 13 + target);
  }
  for (int target = 0; target < 2; ++target) {
    LabelPerturbation flip;
    flip.enabled = true;
    flip.target_class = target;
    CheckGradientBoundsContainSamples(LossKind::kBinaryCrossEntropy, flip, 17 + target);
    CheckGradientBoundsContainSamples(LossKind::kHinge, flip, 19 + target);
  }
}

TEST(LossGradientBounds, MseContainsTheGradientForTargetsMovedByUpToNu) {
  for (double nu : {0.0, 0.1, 2.5}) {
    LabelPerturbation p;
    p.enabled = true;
    p.nu = nu;
    CheckGradientBoundsContainSamples(LossKind::kMse, p, 21);
  }
}

TEST(LossGradientBounds, MseIgnoresNuWhenLabelPerturbationIsDisabled) {
  const IntervalMatrix z{Matrix{{0.5}, {-1.0}}, Matrix{{1.0}, {2.0}}};
  const Vector y{{0.25, 1.0}};
  LabelPerturbation off;
  off.nu = 3.0;
  const IntervalMatrix g = LossGradientBounds(LossKind::kMse, z, y, off);
  EXPECT_EQ(g.lower, (Matrix{{0.5}, {-4.0}}));
  EXPECT_EQ(g.upper, (Matrix{{1.5}, {2.0}}));
  LabelPerturbation on = off;
  on.enabled = true;
  const IntervalMatrix gp = LossGradientBounds(LossKind::kMse, z, y, on);
  EXPECT_EQ(gp.lower, (Matrix{{-5.5}, {-10.0}}));
  EXPECT_EQ(gp.upper, (Matrix{{7.5}, {8.0}}));
}

// Targeted flips allow a subset of what untargeted flips allow.
TEST(LossGradientBounds, TargetedFlipBoundsLieInsideUntargetedFlipBounds) {
  Rng rng(22);
  const IntervalMatrix logits = RandomLogits(40, 4, &rng);
  const Vector labels = RandomLabels(LossKind::kCrossEntropy, 40, &rng);
  LabelPerturbation any;
  any.enabled = true;
  const IntervalMatrix wide = LossGradientBounds(LossKind::kCrossEntropy, logits, labels, any);
  const IntervalMatrix none =
      LossGradientBounds(LossKind::kCrossEntropy, logits, labels, LabelPerturbation{});
  for (int t = 0; t < 4; ++t) {
    LabelPerturbation to_t = any;
    to_t.target_class = t;
    const IntervalMatrix g = LossGradientBounds(LossKind::kCrossEntropy, logits, labels, to_t);
    EXPECT_TRUE((g.lower.array() >= wide.lower.array()).all()) << t;
    EXPECT_TRUE((g.upper.array() <= wide.upper.array()).all()) << t;
    EXPECT_TRUE((g.lower.array() <= none.lower.array()).all()) << t;
    EXPECT_TRUE((g.upper.array() >= none.upper.array()).all()) << t;
  }
}

// A zero-width logit interval must give exactly the point gradient: this is
// what makes a budget-0 box follow the nominal trajectory bit for bit.
TEST(LossGradientBounds, PointLogitsGiveExactlyTheLossGradient) {
  Rng rng(23);
  for (LossKind kind : kLosses) {
    Matrix z(25, ClassesOf(kind));
    for (Index r = 0; r < z.rows(); ++r) {
      for (Index c = 0; c < z.cols(); ++c) z(r, c) = rng.Normal(0.0, 3.0);
    }
    // Kinks and zero for the hinge.
    if (kind == LossKind::kHinge) {
      z(0, 0) = 1.0;
      z(1, 0) = -1.0;
      z(2, 0) = 0.0;
    }
    const Vector y = RandomLabels(kind, z.rows(), &rng);
    const IntervalMatrix g =
        LossGradientBounds(kind, IntervalMatrix::Point(z), y, LabelPerturbation{});
    const Matrix want = LossGradient(kind, z, y);
    EXPECT_EQ(g.lower, want) << LossKindName(kind);
    EXPECT_EQ(g.upper, want) << LossKindName(kind);
  }
}

TEST(LossGradientBounds, HugeLogitsGiveNoNanAndStillContainTheGradient) {
  for (LossKind kind : kLosses) {
    const Index c = ClassesOf(kind);
    Matrix lo(4, c), hi(4, c);
    for (Index j = 0; j < c; ++j) {
      lo.col(j) << -1e3, 1e3, -1e3, (j % 2 == 0 ? 1e3 : -1e3);
      hi.col(j) << -1e3, 1e3, 1e3, (j % 2 == 0 ? 1e3 : -1e3);
    }
    const IntervalMatrix logits{lo, hi};
    const Vector y = kind == LossKind::kCrossEntropy ? Vector{{0.0, 3.0, 1.0, 2.0}}
                                                     : Vector{{1.0, 0.0, 1.0, 0.0}};
    for (bool flips : {false, true}) {
      LabelPerturbation p;
      p.enabled = flips;
      const IntervalMatrix g = LossGradientBounds(kind, logits, y, p);
      EXPECT_FALSE(g.lower.hasNaN() || g.upper.hasNaN()) << LossKindName(kind);
      EXPECT_TRUE(g.IsValid()) << LossKindName(kind);
      for (Index r = 0; r < 4; ++r) {
        const Matrix ends[] = {lo.row(r), hi.row(r)};
        for (const Matrix& z : ends) {
          EXPECT_FALSE(LossGradient(kind, z, Vector::Constant(1, y[r])).hasNaN());
          EXPECT_FALSE(LossValues(kind, z, Vector::Constant(1, y[r])).hasNaN());
          if (kind == LossKind::kMse) {
            EXPECT_TRUE(RowInside(kind, g, r, z, y[r]));
            continue;
          }
          for (double label : AllowedLabels(kind, y[r], p)) {
            EXPECT_TRUE(RowInside(kind, g, r, z, label)) << LossKindName(kind);
          }
        }
      }
    }
  }
}

TEST(LossGradientBounds, HugeLogitsSaturateBinaryCrossEntropyAndSoftmax) {
  // BCE at z = -1e3, label 1: sigmoid is 0, gradient exactly -1; at +1e3 it is 1 - 1 = 0.
  const IntervalMatrix z{Matrix{{-1e3}, {1e3}}, Matrix{{-1e3}, {1e3}}};
  const IntervalMatrix g =
      LossGradientBounds(LossKind::kBinaryCrossEntropy, z, Vector{{1.0, 1.0}}, LabelPerturbation{});
  EXPECT_EQ(g.lower, (Matrix{{-1.0}, {0.0}}));
  EXPECT_EQ(g.upper, (Matrix{{-1.0}, {0.0}}));
  // Softmax bounds with one logit free over [-1e3, 1e3]: [0, 1] for it.
  const IntervalMatrix l{Matrix{{-1e3, 0.0}}, Matrix{{1e3, 0.0}}};
  const IntervalMatrix p = SoftmaxBounds(l);
  EXPECT_EQ(p.lower(0, 0), 0.0);
  EXPECT_EQ(p.upper(0, 0), 1.0);
  EXPECT_EQ(p.lower(0, 1), 0.0);
  EXPECT_EQ(p.upper(0, 1), 1.0);
}

// Hinge max(0, 1 - s z), s = 2y - 1: the gradient is -s where s z < 1 and 0
// where s z >= 1 (the nominal gradient takes 0 at the kink).
TEST(LossGradientBounds, HingeAtTheKinkFollowsTheStrictActiveSet) {
  struct Case {
    double lo, hi, y;
    double want_lo, want_hi;
  };
  const Case cases[] = {
      {1.0, 1.0, 1.0, 0.0, 0.0},    // at the kink, label 1: inactive
      {0.5, 1.0, 1.0, -1.0, 0.0},   // reaches the kink from the active side
      {1.0, 2.0, 1.0, 0.0, 0.0},    // starts at the kink: inactive throughout
      {0.0, 0.5, 1.0, -1.0, -1.0},  // active throughout
      {-1.0, -1.0, 0.0, 0.0, 0.0},  // label 0's kink is z = -1
      {-2.0, -1.0, 0.0, 0.0, 0.0}, {-1.0, 0.0, 0.0, 0.0, 1.0}, {-0.5, 3.0, 0.0, 1.0, 1.0},
  };
  for (const Case& c : cases) {
    const IntervalMatrix z{Matrix{{c.lo}}, Matrix{{c.hi}}};
    const IntervalMatrix g =
        LossGradientBounds(LossKind::kHinge, z, Vector::Constant(1, c.y), LabelPerturbation{});
    EXPECT_EQ(g.lower(0, 0), c.want_lo) << "[" << c.lo << ", " << c.hi << "] y=" << c.y;
    EXPECT_EQ(g.upper(0, 0), c.want_hi) << "[" << c.lo << ", " << c.hi << "] y=" << c.y;
    for (double zz : {c.lo, c.hi, 0.5 * (c.lo + c.hi)}) {
      EXPECT_TRUE(RowInside(LossKind::kHinge, g, 0, Matrix::Constant(1, 1, zz), c.y));
    }
  }
  // With flips at z = 1: label 1 gives 0, label 0 gives +1.
  LabelPerturbation flip;
  flip.enabled = true;
  const IntervalMatrix g = LossGradientBounds(
      LossKind::kHinge, IntervalMatrix::Point(Matrix{{1.0}}), Vector{{1.0}}, flip);
  EXPECT_EQ(g.lower(0, 0), 0.0);
  EXPECT_EQ(g.upper(0, 0), 1.0);
}

TEST(LossGradientBounds, CrossEntropyHandComputedBounds) {
  // Logits z0 in [0, ln 3], z1 = 0. p0 in [1/2, 3/4], p1 in [1/4, 1/2].
  const IntervalMatrix z{Matrix{{0.0, 0.0}}, Matrix{{std::log(3.0), 0.0}}};
  const IntervalMatrix g =
      LossGradientBounds(LossKind::kCrossEntropy, z, Vector{{1.0}}, LabelPerturbation{});
  EXPECT_NEAR(g.lower(0, 0), 0.5, 1e-15);
  EXPECT_NEAR(g.upper(0, 0), 0.75, 1e-15);
  EXPECT_NEAR(g.lower(0, 1), 0.25 - 1.0, 1e-15);
  EXPECT_NEAR(g.upper(0, 1), 0.5 - 1.0, 1e-15);
  LabelPerturbation flip;
  flip.enabled = true;
  const IntervalMatrix gf = LossGradientBounds(LossKind::kCrossEntropy, z, Vector{{1.0}}, flip);
  EXPECT_NEAR(gf.lower(0, 0), 0.5 - 1.0, 1e-15);
  EXPECT_NEAR(gf.upper(0, 0), 0.75, 1e-15);
  EXPECT_NEAR(gf.lower(0, 1), 0.25 - 1.0, 1e-15);
  EXPECT_NEAR(gf.upper(0, 1), 0.5, 1e-15);
}

TEST(SoftmaxBounds, ContainTheSoftmaxOfSampledLogits) {
  Rng rng(24);
  const IntervalMatrix logits = RandomLogits(30, 5, &rng);
  const IntervalMatrix p = SoftmaxBounds(logits);
  ASSERT_TRUE(p.IsValid());
  EXPECT_TRUE((p.lower.array() >= 0.0).all() && (p.upper.array() <= 1.0).all());
  for (int s = 0; s < 200; ++s) {
    ASSERT_TRUE(Encloses(p, Softmax(SampleInside(logits, &rng)), kTol));
  }
}

// ---------------------------------------------------------------------------
// Loss values and nominal gradients.

TEST(LossValues, BinaryCrossEntropyEqualsTheLogSigmoidForm) {
  Rng rng(25);
  for (int s = 0; s < 500; ++s) {
    const double z = rng.Uniform(-30.0, 30.0);
    const double y = static_cast<double>(rng.UniformInt(2));
    // -[y log sigma(z) + (1 - y) log sigma(-z)], each sigma without cancellation.
    const double log_sig = -std::log1p(std::exp(-z));
    const double log_sig_neg = -std::log1p(std::exp(z));
    const double want = -(y * log_sig + (1.0 - y) * log_sig_neg);
    const double got =
        LossValues(LossKind::kBinaryCrossEntropy, Matrix::Constant(1, 1, z), Vector{{y}})[0];
    EXPECT_NEAR(got, want, 1e-12 * std::max(1.0, std::abs(want))) << "z=" << z << " y=" << y;
  }
}

TEST(LossValues, HandComputedValuesOfEveryLoss) {
  EXPECT_DOUBLE_EQ(LossValues(LossKind::kMse, Matrix{{3.0, -1.0}}, Vector{{1.0}})[0], 4.0 + 4.0);
  EXPECT_NEAR(LossValues(LossKind::kBinaryCrossEntropy, Matrix{{0.0}}, Vector{{1.0}})[0],
              std::log(2.0), 1e-15);
  // Cross-entropy: -log softmax_y; z = (0, ln 3), y = 0: -log(1/4).
  EXPECT_NEAR(LossValues(LossKind::kCrossEntropy, Matrix{{0.0, std::log(3.0)}}, Vector{{0.0}})[0],
              std::log(4.0), 1e-15);
  // Cross-entropy does not overflow at huge logits: z = (1000, 0), y = 1.
  EXPECT_NEAR(LossValues(LossKind::kCrossEntropy, Matrix{{1000.0, 0.0}}, Vector{{1.0}})[0], 1000.0,
              1e-9);
  // Hinge: label 1 at z = 0.25 gives 0.75; label 0 at z = 0.25 gives 1.25; past the margin 0.
  const Vector h = LossValues(LossKind::kHinge, Matrix{{0.25}, {0.25}, {2.0}, {-1.0}},
                              Vector{{1.0, 0.0, 1.0, 0.0}});
  EXPECT_DOUBLE_EQ(h[0], 0.75);
  EXPECT_DOUBLE_EQ(h[1], 1.25);
  EXPECT_EQ(h[2], 0.0);
  EXPECT_EQ(h[3], 0.0);
}

// LossGradient is the derivative of LossValues (central differences, away
// from the hinge's kink).
TEST(LossGradient, MatchesCentralDifferencesOfLossValues) {
  Rng rng(26);
  const double h = 1e-6;
  for (LossKind kind : kLosses) {
    for (int s = 0; s < 40; ++s) {
      Matrix z(1, ClassesOf(kind));
      for (Index c = 0; c < z.cols(); ++c) z(0, c) = rng.Normal(0.0, 2.0);
      const Vector y = RandomLabels(kind, 1, &rng);
      if (kind == LossKind::kHinge && std::abs(1.0 - (2.0 * y[0] - 1.0) * z(0, 0)) < 1e-3) {
        continue;
      }
      const Matrix grad = LossGradient(kind, z, y);
      for (Index c = 0; c < z.cols(); ++c) {
        Matrix zp = z, zm = z;
        zp(0, c) += h;
        zm(0, c) -= h;
        const double fd = (LossValues(kind, zp, y)[0] - LossValues(kind, zm, y)[0]) / (2.0 * h);
        EXPECT_NEAR(grad(0, c), fd, 1e-6) << LossKindName(kind) << " class " << c;
      }
    }
  }
}

TEST(LossKindNames, ParseAcceptsEveryNameAndAliasAndRoundTrips) {
  for (LossKind kind : kLosses) {
    const absl::StatusOr<LossKind> parsed = ParseLossKind(LossKindName(kind));
    ASSERT_TRUE(parsed.ok()) << LossKindName(kind);
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(*ParseLossKind("bce"), LossKind::kBinaryCrossEntropy);
  EXPECT_EQ(*ParseLossKind("ce"), LossKind::kCrossEntropy);
  const absl::StatusOr<LossKind> bad = ParseLossKind("l1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("l1"), std::string::npos);
  EXPECT_FALSE(IsClassification(LossKind::kMse));
  EXPECT_TRUE(IsClassification(LossKind::kHinge));
}

}  // namespace
}  // namespace agt
