// ModelSpec validation, the flat parameter layout, deterministic
// initialisation and parameter boxes (core/model/model.h).

#include "core/model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/layers/relu.h"

namespace agt {
namespace {

ModelSpec Spec(std::vector<LayerSpec> layers) {
  ModelSpec spec;
  spec.layers = std::move(layers);
  return spec;
}

// Validate fails with InvalidArgument and a message holding every fragment.
void ExpectInvalid(const ModelSpec& spec, const std::vector<std::string>& fragments) {
  const absl::Status status = spec.Validate();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& f : fragments) {
    EXPECT_TRUE(absl::StrContains(status.message(), f))
        << "message \"" << status.message() << "\" lacks \"" << f << "\"";
  }
}

// ---------------------------------------------------------------------------
// Validate.

TEST(ModelSpecValidate, AcceptsMlpsLinearModelsAndStackedDenseLayers) {
  EXPECT_TRUE(ModelSpec::Mlp({784, 128, 10}).Validate().ok());
  EXPECT_TRUE(ModelSpec::Mlp({2, 1}).Validate().ok());
  EXPECT_TRUE(ModelSpec::Mlp({3, 8, 8, 8, 2}).Validate().ok());
  EXPECT_TRUE(Spec({LayerSpec::Dense(4, 3), LayerSpec::Dense(3, 2)}).Validate().ok());
}

TEST(ModelSpecValidate, EmptyModelIsRejected) {
  ExpectInvalid(ModelSpec{}, {"no layers"});
  // An MLP needs at least two widths.
  ExpectInvalid(ModelSpec::Mlp({5}), {"no layers"});
}

TEST(ModelSpecValidate, ReluFirstIsRejected) {
  ExpectInvalid(Spec({LayerSpec::Relu(), LayerSpec::Dense(2, 1)}), {"start", "dense"});
}

TEST(ModelSpecValidate, ReluLastIsRejected) {
  ExpectInvalid(Spec({LayerSpec::Dense(2, 3), LayerSpec::Relu()}), {"end", "dense"});
  ExpectInvalid(Spec({LayerSpec::Relu()}), {"dense"});
}

TEST(ModelSpecValidate, WidthMismatchNamesTheLayerAndBothWidths) {
  ExpectInvalid(Spec({LayerSpec::Dense(2, 4), LayerSpec::Relu(), LayerSpec::Dense(5, 1)}),
                {"layer 2", "in=5", "out=4"});
  ExpectInvalid(Spec({LayerSpec::Dense(2, 4), LayerSpec::Relu(), LayerSpec::Dense(4, 3),
                      LayerSpec::Relu(), LayerSpec::Dense(4, 1)}),
                {"layer 4", "in=4", "out=3"});
}

TEST(ModelSpecValidate, TwoRelusInARowAreRejectedNamingTheSecond) {
  ExpectInvalid(
      Spec({LayerSpec::Dense(2, 3), LayerSpec::Relu(), LayerSpec::Relu(), LayerSpec::Dense(3, 1)}),
      {"layer 2", "relu"});
}

TEST(ModelSpecValidate, NonPositiveWidthsAreRejectedNamingTheLayer) {
  ExpectInvalid(Spec({LayerSpec::Dense(0, 1)}), {"layer 0", "positive", "in=0"});
  ExpectInvalid(Spec({LayerSpec::Dense(3, 2), LayerSpec::Dense(2, -1)}),
                {"layer 1", "positive", "out=-1"});
}

// ---------------------------------------------------------------------------
// Dimensions, layout, description.

TEST(ModelSpecLayout, MlpAlternatesDenseAndReluLayers) {
  const ModelSpec spec = ModelSpec::Mlp({5, 4, 3, 2});
  ASSERT_EQ(spec.layers.size(), 5u);
  const LayerKind kinds[] = {LayerKind::kDense, LayerKind::kRelu, LayerKind::kDense,
                             LayerKind::kRelu, LayerKind::kDense};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(spec.layers[i].kind, kinds[i]) << "layer " << i;
  EXPECT_EQ(spec.layers[0].in, 5);
  EXPECT_EQ(spec.layers[0].out, 4);
  EXPECT_EQ(spec.layers[2].in, 4);
  EXPECT_EQ(spec.layers[2].out, 3);
  EXPECT_EQ(spec.layers[4].in, 3);
  EXPECT_EQ(spec.layers[4].out, 2);
  EXPECT_EQ(spec.InputDim(), 5);
  EXPECT_EQ(spec.OutputDim(), 2);
}

TEST(ModelSpecLayout, EachDenseLayerHoldsItsWeightThenItsBiasInOrder) {
  const std::vector<DenseSlice> layout = ModelSpec::Mlp({3, 4, 2}).Layout();
  ASSERT_EQ(layout.size(), 2u);
  // Layer 0: W 4x3 at [0, 12), b at [12, 16).
  EXPECT_EQ(layout[0].layer, 0);
  EXPECT_EQ(layout[0].in, 3);
  EXPECT_EQ(layout[0].out, 4);
  EXPECT_EQ(layout[0].weight_offset, 0);
  EXPECT_EQ(layout[0].bias_offset, 12);
  EXPECT_EQ(layout[0].size(), 16);
  // Layer 2 (after the ReLU): W 2x4 at [16, 24), b at [24, 26).
  EXPECT_EQ(layout[1].layer, 2);
  EXPECT_EQ(layout[1].in, 4);
  EXPECT_EQ(layout[1].out, 2);
  EXPECT_EQ(layout[1].weight_offset, 16);
  EXPECT_EQ(layout[1].bias_offset, 24);
  EXPECT_EQ(layout[1].size(), 10);
}

TEST(ModelSpecLayout, SlicesTileTheParameterVectorWithoutGaps) {
  const ModelSpec spec = ModelSpec::Mlp({7, 5, 5, 3, 1});
  Index next = 0;
  for (const DenseSlice& s : spec.Layout()) {
    EXPECT_EQ(s.weight_offset, next);
    EXPECT_EQ(s.bias_offset, s.weight_offset + static_cast<Index>(s.in) * s.out);
    next = s.bias_offset + s.out;
  }
  EXPECT_EQ(next, spec.NumParameters());
}

TEST(ModelSpecLayout, NumParametersCountsWeightsAndBiases) {
  EXPECT_EQ(ModelSpec::Mlp({784, 128, 10}).NumParameters(), 784 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(ModelSpec::Mlp({2, 1}).NumParameters(), 3);
  EXPECT_EQ(Spec({LayerSpec::Dense(4, 3), LayerSpec::Dense(3, 2)}).NumParameters(), 15 + 8);
  EXPECT_EQ(ModelSpec{}.NumParameters(), 0);
}

TEST(ModelSpecDescribe, ListsTheWidthsAndWhetherThereIsAReluAnywhere) {
  EXPECT_EQ(ModelSpec::Mlp({784, 128, 10}).Describe(), "784-128-10 (ReLU)");
  EXPECT_EQ(ModelSpec::Mlp({2, 1}).Describe(), "2-1 (linear)");
  EXPECT_EQ(Spec({LayerSpec::Dense(4, 3), LayerSpec::Dense(3, 2)}).Describe(), "4-3-2 (linear)");
}

// ---------------------------------------------------------------------------
// InitParameters.

TEST(InitParameters, SameSeedGivesTheSameParametersAndOtherSeedsDiffer) {
  const ModelSpec spec = ModelSpec::Mlp({6, 5, 3});
  const Vector a = InitParameters(spec, 42);
  const Vector b = InitParameters(spec, 42);
  ASSERT_EQ(a.size(), spec.NumParameters());
  EXPECT_EQ(a, b);
  const Vector c = InitParameters(spec, 43);
  ASSERT_EQ(c.size(), a.size());
  // Different seeds must differ almost everywhere, not in one entry.
  int same = 0;
  for (Index i = 0; i < a.size(); ++i) same += a[i] == c[i];
  EXPECT_LE(same, 1);
}

TEST(InitParameters, EveryLayerStaysWithinOneOverSqrtOfItsFanIn) {
  const ModelSpec spec = ModelSpec::Mlp({400, 30, 10});
  const Vector theta = InitParameters(spec, 7);
  for (const DenseSlice& s : spec.Layout()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.in));
    const auto weights = theta.segment(s.weight_offset, static_cast<Index>(s.in) * s.out);
    const auto bias = theta.segment(s.bias_offset, s.out);
    EXPECT_LE(weights.cwiseAbs().maxCoeff(), bound) << "layer " << s.layer;
    EXPECT_LE(bias.cwiseAbs().maxCoeff(), bound) << "layer " << s.layer;
    // The whole range is used, on both sides: the largest draw is near the
    // bound (so a layer does not borrow another layer's narrower range).
    EXPECT_GT(weights.maxCoeff(), 0.8 * bound) << "layer " << s.layer;
    EXPECT_LT(weights.minCoeff(), -0.8 * bound) << "layer " << s.layer;
    // Uniform with mean 0: the sample mean is well inside the range.
    EXPECT_LT(std::abs(weights.mean()), 0.2 * bound) << "layer " << s.layer;
  }
}

TEST(InitParameters, IsFiniteAndNotConstant) {
  const Vector theta = InitParameters(ModelSpec::Mlp({2, 16, 16, 1}), 0);
  EXPECT_TRUE(theta.allFinite());
  EXPECT_GT(theta.maxCoeff() - theta.minCoeff(), 0.1);
}

// ---------------------------------------------------------------------------
// ParameterBox.

TEST(ParameterBox, PointBoxContainsItsPointAndHasZeroWidth) {
  const Vector theta{{1.0, -2.0, 0.5}};
  const ParameterBox box = ParameterBox::Point(theta);
  EXPECT_EQ(box.size(), 3);
  EXPECT_TRUE(box.Contains(theta));
  EXPECT_EQ(box.TotalWidth(), 0.0);
  EXPECT_EQ(box.MaxWidth(), 0.0);
  Vector moved = theta;
  moved[1] = std::nextafter(-2.0, 0.0);
  EXPECT_FALSE(box.Contains(moved));
}

TEST(ParameterBox, ContainsIsInclusiveAndChecksEveryCoordinate) {
  const ParameterBox box{Vector{{0.0, -1.0}}, Vector{{1.0, 1.0}}};
  EXPECT_TRUE(box.Contains(Vector{{0.0, -1.0}}));
  EXPECT_TRUE(box.Contains(Vector{{1.0, 1.0}}));
  EXPECT_TRUE(box.Contains(Vector{{0.5, 0.0}}));
  EXPECT_FALSE(box.Contains(Vector{{-0.01, 0.0}}));
  EXPECT_FALSE(box.Contains(Vector{{0.5, 1.01}}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(box.Contains(Vector{{nan, 0.0}}));
}

TEST(ParameterBox, ToleranceWidensBothSides) {
  const ParameterBox box{Vector{{0.0}}, Vector{{1.0}}};
  EXPECT_FALSE(box.Contains(Vector{{1.05}}));
  EXPECT_TRUE(box.Contains(Vector{{1.05}}, 0.1));
  EXPECT_TRUE(box.Contains(Vector{{-0.05}}, 0.1));
  EXPECT_FALSE(box.Contains(Vector{{-0.2}}, 0.1));
}

TEST(ParameterBox, VectorsOfAnotherSizeAreNotContained) {
  const ParameterBox box{Vector{{0.0, 0.0}}, Vector{{1.0, 1.0}}};
  EXPECT_FALSE(box.Contains(Vector{{0.5}}));
  EXPECT_FALSE(box.Contains(Vector{{0.5, 0.5, 0.5}}));
  EXPECT_FALSE(box.Contains(Vector(0)));
}

TEST(ParameterBox, TotalWidthSumsAndMaxWidthTakesTheLargestSide) {
  const ParameterBox box{Vector{{0.0, -1.0, 2.0, 5.0}}, Vector{{0.5, 2.0, 2.0, 5.25}}};
  EXPECT_DOUBLE_EQ(box.TotalWidth(), 0.5 + 3.0 + 0.0 + 0.25);
  EXPECT_DOUBLE_EQ(box.MaxWidth(), 3.0);
  const ParameterBox empty{Vector(0), Vector(0)};
  EXPECT_EQ(empty.size(), 0);
  EXPECT_EQ(empty.TotalWidth(), 0.0);
  EXPECT_EQ(empty.MaxWidth(), 0.0);
}

// The boxed ReLU's backward (vector code) against its rule, element by
// element: x > 0 keeps the bounds, !(upper > 0) (NaN included) zeroes them,
// otherwise lower = std::min(lower, 0) and upper = std::max(upper, 0); odd
// lengths reach the scalar tail; NaN and signed zeros in the gradients.
TEST(ReluBackward, BoxedBackwardFollowsTheRuleOnEveryElement) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double pool[] = {-1.5, -0.0, 0.0, 2.0, nan, 1e-300, -3.0};
  const ReluLayer relu(LayerSpec::Relu(), Shape::Flat(7));
  const auto boxed = relu.Bind(nullptr, nullptr, IntervalOptions{});
  for (int cols : {1, 2, 3, 7}) {
    const int rows = 49;
    IntervalMatrix x(Matrix(rows, cols), Matrix(rows, cols));
    IntervalMatrix d(Matrix(rows, cols), Matrix(rows, cols));
    for (int e = 0; e < rows * cols; ++e) {
      // Every pairing of the pool's values over the four operands.
      x.lower.data()[e] = pool[e % 7];
      x.upper.data()[e] = pool[(e / 7) % 7];
      d.lower.data()[e] = pool[(e * 3 + 1) % 7];
      d.upper.data()[e] = pool[(e * 5 + 2) % 7];
    }
    IntervalMatrix got = d;
    boxed->BackwardInPlace(x, &got);
    for (int e = 0; e < rows * cols; ++e) {
      const double xl = x.lower.data()[e], xu = x.upper.data()[e];
      double lo = d.lower.data()[e], hi = d.upper.data()[e];
      if (!(xl > 0.0)) {
        if (!(xu > 0.0)) {
          lo = 0.0;
          hi = 0.0;
        } else {
          lo = std::min(lo, 0.0);
          hi = std::max(hi, 0.0);
        }
      }
      const double gl = got.lower.data()[e], gh = got.upper.data()[e];
      EXPECT_EQ(std::memcmp(&gl, &lo, sizeof lo), 0) << "cols " << cols << " element " << e;
      EXPECT_EQ(std::memcmp(&gh, &hi, sizeof hi), 0) << "cols " << cols << " element " << e;
    }
  }
}

// The point ReLU's backward (vector code) against its rule: dy where x > 0,
// else +0 (x NaN, -0 or +0 included), every bit of dy kept (NaN and -0
// among them); odd lengths reach the scalar tail.
TEST(ReluBackward, PointBackwardKeepsDyExactlyWherePositiveAndZeroElsewhere) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const double pool[] = {-1.5, -0.0, 0.0, 2.0, nan, 1e-300, -inf, inf};
  const ReluLayer relu(LayerSpec::Relu(), Shape::Flat(8));
  for (int cols : {1, 2, 3, 8}) {
    const int rows = 65;
    Matrix x(rows, cols), dy(rows, cols);
    for (int e = 0; e < rows * cols; ++e) {
      x.data()[e] = pool[e % 8];
      dy.data()[e] = pool[(e / 8) % 8];
    }
    const Matrix got = relu.Backward(nullptr, x, dy);
    ASSERT_EQ(got.rows(), rows);
    ASSERT_EQ(got.cols(), cols);
    for (int e = 0; e < rows * cols; ++e) {
      const double want = x.data()[e] > 0.0 ? dy.data()[e] : 0.0;
      const double g = got.data()[e];
      EXPECT_EQ(std::memcmp(&g, &want, sizeof g), 0) << "cols " << cols << " element " << e;
    }
  }
}

}  // namespace
}  // namespace agt
