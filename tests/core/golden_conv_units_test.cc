// Golden comparison of the convolutional operators (conv2d, relu, flatten,
// dense, and a frozen conv prefix) against the reference implementation's
// unit vectors in tests/data/goldens/units/conv_passes.json (see
// goldens/README.md, "Convolutions and frozen feature extractors" and
// "Units"), plus a sampling check that the bounds enclose sampled networks.
//
// The file has two cases: `cnn` (2x6x6 -> conv 3@3x3 pad 1 -> relu -> conv
// 2@2x2 stride 2 -> relu -> flatten -> dense 18->3) and `frozen` (a frozen
// conv 2@3x3 + relu prefix on 1x5x5, then conv 2@2x2 -> relu -> flatten ->
// dense 8->3). Each has, per interval product (ibp_rump, ibp_exact,
// ibp_nguyen), the IBP intermediates (the features entering the trained
// layers, then the value after every trained layer, in torch's shapes), the
// logits, the cross-entropy loss-gradient bounds and the per-sample gradient
// bounds [W1, b1, W2, b2, ...]; and the nominal logits and gradients at
// `init`. The input box of every ibp_* entry is [x - eps, x + eps] (checked
// through the first intermediate of the `cnn` case, which is the raw input
// box); the labels are the case's `labels`, unperturbed.
//
// Tolerance: 1e-9 relative (README "Tolerances"), as in golden_units_test.
//
// What matches: ibp_rump in full; the nominal pass; the frozen feature
// bounds; the loss-gradient bounds. ibp_exact / ibp_nguyen: the reference
// binds its conv layers by Rump's product whatever interval_matmul says
// (forward, transposed-conv backward and weight gradient; only dense layers
// use the named product), and this, computed here by MixedIbp from the
// core's own layers, matches to ~1e-16 (ReferenceSemanticsMatchWithConvByRump).
// core/layers/conv2d.cc binds conv layers by the named product instead
// (tighter, and sound by the sampling test), so the public-API comparisons of
// those entries are skipped with a KNOWN MISMATCH message while exactly that
// divergence explains them; they compare (and fail on any other mismatch)
// once conv2d binds by Rump in the golden-compatible setting.

#include <cstdio>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/bounds/ibp.h"
#include "core/common/rng.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/layers/layer.h"
#include "core/layers/layer_spec.h"
#include "core/layers/registry.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "tests/core/golden_json.h"

namespace agt {
namespace {

using namespace golden_json;  // NOLINT(build/namespaces): the shared loaders and comparisons

// ---------------------------------------------------------------------------
// Sampling.

Matrix SampleInside(const Matrix& lower, const Matrix& upper, Rng* rng) {
  Matrix m(lower.rows(), lower.cols());
  for (Index i = 0; i < m.size(); ++i) m(i) = rng->Uniform(lower(i), upper(i));
  return m;
}

Vector SampleInside(const Vector& lower, const Vector& upper, Rng* rng) {
  Vector v(lower.size());
  for (Index i = 0; i < v.size(); ++i) v(i) = rng->Uniform(lower(i), upper(i));
  return v;
}

// ---------------------------------------------------------------------------
// The cases.

struct ConvCase : PassesCase {
  std::string name;
};

std::vector<int> Pair(const json& j) { return j.get<std::vector<int>>(); }

// Layers in the case.json vocabulary (dense, relu, conv2d, flatten).
::testing::AssertionResult LayersFromJson(const json& layers, std::vector<LayerSpec>* out) {
  for (const json& l : layers) {
    const std::string type = l.at("type").get<std::string>();
    if (type == "dense") {
      out->push_back(LayerSpec::Dense(l.at("in").get<int>(), l.at("out").get<int>()));
    } else if (type == "relu") {
      out->push_back(LayerSpec::Relu());
    } else if (type == "flatten") {
      out->push_back(LayerSpec::Flatten());
    } else if (type == "conv2d") {
      const std::vector<int> k = Pair(l.at("kernel_size")), s = Pair(l.at("stride")),
                             p = Pair(l.at("padding"));
      if (k.size() != 2 || s.size() != 2 || p.size() != 2) {
        return ::testing::AssertionFailure() << "conv2d: " << l.dump();
      }
      Conv2dParams c;
      c.in_channels = l.at("in_channels").get<int>();
      c.out_channels = l.at("out_channels").get<int>();
      c.kernel_h = k[0];
      c.kernel_w = k[1];
      c.stride_h = s[0];
      c.stride_w = s[1];
      c.pad_h = p[0];
      c.pad_w = p[1];
      out->push_back(LayerSpec::Conv2d(c));
    } else {
      return ::testing::AssertionFailure() << "unknown layer type " << type;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult LoadCase(const std::string& name, json* d, ConvCase* cc) {
  ::testing::AssertionResult loaded = LoadUnit("conv_passes.json", d);
  if (!loaded) return loaded;
  if (!d->contains(name)) return ::testing::AssertionFailure() << "no case " << name;
  const json& c = d->at(name);
  cc->name = name;
  ::testing::AssertionResult ok = LayersFromJson(c.at("model"), &cc->spec.layers);
  if (!ok) return ok;
  cc->spec.input_shape = Shape{c.at("input_shape").get<std::vector<int>>()};
  if (c.contains("frozen")) {
    ok = LayersFromJson(c.at("frozen"), &cc->spec.frozen.layers);
    if (!ok) return ok;
    cc->spec.frozen.parameters = ParametersFromList(c.at("frozen_params"));
  }
  const absl::Status valid = cc->spec.Validate();
  if (!valid.ok()) return ::testing::AssertionFailure() << name << ": " << valid;
  cc->init = ParametersFromList(c.at("init").at("layers"));
  cc->box = {ParametersFromList(c.at("lower").at("layers")),
             ParametersFromList(c.at("upper").at("layers"))};
  if (cc->init.size() != cc->spec.NumParameters() ||
      cc->box.size() != cc->spec.NumParameters()) {
    return ::testing::AssertionFailure() << name << ": parameter count " << cc->init.size()
                                         << " vs model " << cc->spec.NumParameters();
  }
  cc->x = Rows(c.at("x"));
  if (cc->x.cols() != cc->spec.InputDim()) {
    return ::testing::AssertionFailure()
           << name << ": x has " << cc->x.cols() << " columns, model input " << cc->spec.InputDim();
  }
  cc->eps = c.at("eps").get<double>();
  cc->labels = ToVector(c.at("labels"));
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// A mixed-product IBP: the same passes as BoxedModel (bounds/ibp.cc), with the
// conv layers bound by `conv_method` and all other layers by `method`. The
// reference binds its conv layers by Rump's product whatever its
// interval_matmul setting (its propagate_conv2d always calls the midpoint-
// radius propagate_linear_transform), so its ibp_exact / ibp_nguyen entries
// are this with conv_method = kRump.
struct MixedBounds {
  std::vector<IntervalMatrix> activations;  // features, then after every layer
  Matrix lower, upper;                      // per-sample gradient bounds, N x P
};

MixedBounds MixedIbp(const ModelSpec& spec, const ParameterBox& box, const IntervalMatrix& input,
                     const Vector& labels, MatMulMethod method, MatMulMethod conv_method) {
  auto options_for = [&](const Layer& layer) {
    return IntervalOptions{layer.spec().kind == LayerKind::kConv2d ? conv_method : method};
  };
  MixedBounds out;
  // The frozen prefix, with point parameters.
  IntervalMatrix z = input;
  if (!spec.frozen.empty()) {
    const Network frozen = spec.FrozenNetwork();
    for (size_t i = 0; i < frozen.size(); ++i) {
      const double* p = spec.frozen.parameters.data() + frozen.param_offset(i);
      z = frozen.layer(i).Bind(p, p, options_for(frozen.layer(i)))->Forward(z);
    }
  }
  const Network net = spec.TrainedNetwork();
  std::vector<std::unique_ptr<BoxedLayer>> layers;
  for (size_t i = 0; i < net.size(); ++i) {
    const Index off = net.param_offset(i);
    layers.push_back(net.layer(i).Bind(box.lower.data() + off, box.upper.data() + off,
                                       options_for(net.layer(i))));
  }
  out.activations.push_back(z);
  for (const std::unique_ptr<BoxedLayer>& layer : layers) {
    z = layer->Forward(z);
    out.activations.push_back(z);
  }
  IntervalMatrix delta =
      LossGradientBounds(LossKind::kCrossEntropy, z, labels, LabelPerturbation{});
  size_t with_params = 0;
  for (size_t i = 0; i < net.size(); ++i) with_params += net.layer(i).has_params();
  FactorList factors(with_params);
  for (size_t li = layers.size(); li-- > 0;) {
    if (net.layer(li).has_params()) {
      factors[--with_params] = layers[li]->Factors(out.activations[li], delta);
    }
    if (li == 0) break;
    delta = layers[li]->Backward(out.activations[li], delta);
  }
  const Index n = input.rows();
  out.lower.resize(n, net.num_params());
  out.upper.resize(n, net.num_params());
  ExpandFactors(spec, factors, n, &out.lower, &out.upper);
  return out;
}

const char* const kCases[] = {"cnn", "frozen"};

// The reference's intermediates, logits and per-sample gradient bounds of one
// ibp_* entry, as N x features / N x P matrices.
struct ReferenceBounds {
  std::vector<Matrix> inter_l, inter_u;
  Matrix logits_l, logits_u, grads_l, grads_u;
};

ReferenceBounds LoadReferenceBounds(const json& e) {
  ReferenceBounds r;
  for (const json& t : e.at("inter_l")) r.inter_l.push_back(Rows(t));
  for (const json& t : e.at("inter_u")) r.inter_u.push_back(Rows(t));
  r.logits_l = Rows(e.at("logits_l"));
  r.logits_u = Rows(e.at("logits_u"));
  r.grads_l = PerSampleRows(e.at("grads_l"));
  r.grads_u = PerSampleRows(e.at("grads_u"));
  return r;
}



// ---------------------------------------------------------------------------
// Per case.

class ConvPassesGolden : public ::testing::TestWithParam<const char*> {};

TEST(ConvPassesGoldenFile, HasADescriptionAndBothCases) {
  json d;
  ASSERT_TRUE(LoadUnit("conv_passes.json", &d));
  EXPECT_TRUE(d.contains("description"));
  for (const char* name : kCases) {
    ASSERT_TRUE(d.contains(name)) << name;
    for (const NamedMethod& m : kIbpEntries) EXPECT_TRUE(d.at(name).contains(m.key)) << name;
    EXPECT_TRUE(d.at(name).contains("nominal")) << name;
  }
  EXPECT_TRUE(d.at("frozen").contains("frozen"));
  EXPECT_FALSE(d.at("cnn").contains("frozen"));
}

// The input box of the ibp_* entries is [x - eps, x + eps]: without a frozen
// prefix the first intermediate is that box itself.
TEST(ConvPassesGoldenFile, InputBoxIsTheEpsBall) {
  json d;
  ConvCase cc;
  ASSERT_TRUE(LoadCase("cnn", &d, &cc));
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at("cnn").at(m.key);
    ExpectNear(Rows(e.at("inter_l").at(0)), (cc.x.array() - cc.eps).matrix(),
               std::string(m.key) + " input lower");
    ExpectNear(Rows(e.at("inter_u").at(0)), (cc.x.array() + cc.eps).matrix(),
               std::string(m.key) + " input upper");
  }
}

TEST_P(ConvPassesGolden, ModelMatchesTheFileShapes) {
  json d;
  ConvCase cc;
  ASSERT_TRUE(LoadCase(GetParam(), &d, &cc));
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(GetParam()).at(m.key);
    // The first intermediate is the features entering the trained layers;
    // then one entry per trained layer.
    EXPECT_EQ(Rows(e.at("inter_l").at(0)).cols(), cc.spec.FeatureShape().size()) << m.key;
    EXPECT_EQ(e.at("inter_l").size(), cc.spec.layers.size() + 1) << m.key;
    EXPECT_EQ(Rows(e.at("logits_l")).cols(), cc.spec.OutputDim()) << m.key;
    EXPECT_EQ(PerSampleRows(e.at("grads_l")).cols(), cc.spec.NumParameters()) << m.key;
  }
  EXPECT_EQ(cc.x.rows(), cc.labels.size());
}

// The frozen prefix has point parameters, so every product gives the same
// feature bounds (up to rounding), and they match the reference's.
TEST_P(ConvPassesGolden, FrozenFeatureBoundsMatchReference) {
  json d;
  ConvCase cc;
  ASSERT_TRUE(LoadCase(GetParam(), &d, &cc));
  const IntervalMatrix input = IntervalMatrix::Ball(cc.x, cc.eps);
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(GetParam()).at(m.key);
    const IntervalMatrix f = FrozenFeatureBounds(cc.spec, input, IntervalOptions{m.method});
    const std::string what = absl::StrCat(GetParam(), " ", m.key, " features");
    ExpectNear(f.lower, Rows(e.at("inter_l").at(0)), what + " lower");
    ExpectNear(f.upper, Rows(e.at("inter_u").at(0)), what + " upper");
  }
}

TEST_P(ConvPassesGolden, LossGradientBoundsOnReferenceLogitsMatchReference) {
  json d;
  ConvCase cc;
  ASSERT_TRUE(LoadCase(GetParam(), &d, &cc));
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(GetParam()).at(m.key);
    const std::string key = absl::StrCat(GetParam(), " ", m.key);
    const IntervalMatrix g =
        LossGradientBounds(LossKind::kCrossEntropy,
                           {Rows(e.at("logits_l")), Rows(e.at("logits_u"))}, cc.labels,
                           LabelPerturbation{});
    ExpectNear(g.lower, Rows(e.at("loss_grad_l")), key + " loss grad lower");
    ExpectNear(g.upper, Rows(e.at("loss_grad_u")), key + " loss grad upper");
  }
}

TEST_P(ConvPassesGolden, NominalLogitsAndGradientsMatchReference) {
  json d;
  ConvCase cc;
  ASSERT_TRUE(LoadCase(GetParam(), &d, &cc));
  const json& e = d.at(GetParam()).at("nominal");
  ExpectNear(Forward(cc.spec, cc.init, cc.x), Rows(e.at("logits")),
             absl::StrCat(GetParam(), " nominal logits"));
  Matrix grads;
  PerSampleGradients(cc.spec, cc.init, cc.x, cc.labels, LossKind::kCrossEntropy, &grads);
  ExpectNear(grads, PerSampleRows(e.at("grads")), absl::StrCat(GetParam(), " nominal grads"));
}

INSTANTIATE_TEST_SUITE_P(Cases, ConvPassesGolden, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// ---------------------------------------------------------------------------
// Per case and interval product.

class ConvPassesProductGolden
    : public ::testing::TestWithParam<std::tuple<const char*, NamedMethod>> {
 protected:
  void SetUp() override {
    name_ = std::get<0>(GetParam());
    m_ = std::get<1>(GetParam());
    ASSERT_TRUE(LoadCase(name_, &d_, &cc_));
    ref_ = LoadReferenceBounds(d_.at(name_).at(m_.key));
    input_ = IntervalMatrix::Ball(cc_.x, cc_.eps);
    key_ = absl::StrCat(name_, " ", m_.key);
  }

  std::string name_;
  NamedMethod m_{};
  json d_;
  ConvCase cc_;
  ReferenceBounds ref_;
  IntervalMatrix input_;
  std::string key_;
};

// The reference's semantics, pinned down: conv layers by Rump's product,
// everything else (dense layers) by the entry's product. Matches for every
// entry, intermediates, logits and per-sample gradients alike.
TEST_P(ConvPassesProductGolden, ReferenceSemanticsMatchWithConvByRump) {
  // The core's default (IntervalOptions::conv_product = kRump) is this
  // semantics; the tests below check the core itself against the reference.
  const MixedBounds b =
      MixedIbp(cc_.spec, cc_.box, input_, cc_.labels, m_.method, MatMulMethod::kRump);
  ASSERT_EQ(b.activations.size(), ref_.inter_l.size());
  ASSERT_EQ(b.activations.size(), ref_.inter_u.size());
  for (size_t i = 0; i < b.activations.size(); ++i) {
    const std::string what = absl::StrCat(key_, " (conv by rump) intermediate ", i);
    ExpectNear(b.activations[i].lower, ref_.inter_l[i], what + " lower");
    ExpectNear(b.activations[i].upper, ref_.inter_u[i], what + " upper");
  }
  ExpectNear(b.activations.back().lower, ref_.logits_l, key_ + " (conv by rump) logits lower");
  ExpectNear(b.activations.back().upper, ref_.logits_u, key_ + " (conv by rump) logits upper");
  ExpectNear(b.lower, ref_.grads_l, key_ + " (conv by rump) grads lower");
  ExpectNear(b.upper, ref_.grads_u, key_ + " (conv by rump) grads upper");
}

TEST_P(ConvPassesProductGolden, ForwardBoundsAndIntermediatesMatchReference) {
  std::vector<IntervalMatrix> acts;
  const IntervalMatrix logits = ForwardBounds(cc_.spec, cc_.box, input_, m_.method, &acts);
  ExpectNear(logits.lower, ref_.logits_l, key_ + " logits lower");
  ExpectNear(logits.upper, ref_.logits_u, key_ + " logits upper");
  ASSERT_EQ(acts.size(), ref_.inter_l.size()) << key_ << " intermediates";
  ASSERT_EQ(acts.size(), ref_.inter_u.size()) << key_ << " intermediates";
  for (size_t i = 0; i < acts.size(); ++i) {
    const std::string what = absl::StrCat(key_, " intermediate ", i);
    ExpectNear(acts[i].lower, ref_.inter_l[i], what + " lower");
    ExpectNear(acts[i].upper, ref_.inter_u[i], what + " upper");
  }
}

TEST_P(ConvPassesProductGolden, PerSampleGradientBoundsMatchReference) {
  Matrix lower, upper;
  PerSampleGradientBounds(cc_.spec, cc_.box, input_, cc_.labels, LossKind::kCrossEntropy,
                          LabelPerturbation{}, m_.method, &lower, &upper);
  ExpectNear(lower, ref_.grads_l, key_ + " grads lower");
  ExpectNear(upper, ref_.grads_u, key_ + " grads upper");
}

// The prepared model used by training, on the features, gives the same
// numbers; rows of the output buffers beyond the fragment are left alone.
TEST_P(ConvPassesProductGolden, BoxedModelMatchesReference) {
  const Index n = cc_.x.rows();
  const Index p = cc_.spec.NumParameters();
  constexpr double kSentinel = 12345.0;
  const IntervalMatrix features =
      FrozenFeatureBounds(cc_.spec, input_, IntervalOptions{m_.method});
  const BoxedModel model(cc_.spec, cc_.box, m_.method);
  ASSERT_EQ(model.num_params(), p);
  Matrix lower = Matrix::Constant(n + 2, p, kSentinel);
  Matrix upper = Matrix::Constant(n + 2, p, kSentinel);
  model.PerSampleGradientBounds(features, cc_.labels, LossKind::kCrossEntropy,
                                LabelPerturbation{}, &lower, &upper);
  EXPECT_TRUE((lower.bottomRows(2).array() == kSentinel).all()) << key_;
  EXPECT_TRUE((upper.bottomRows(2).array() == kSentinel).all()) << key_;
  const IntervalMatrix logits = model.ForwardBounds(features);
  ExpectNear(logits.lower, ref_.logits_l, key_ + " logits lower");
  ExpectNear(logits.upper, ref_.logits_u, key_ + " logits upper");
  ExpectNear(lower.topRows(n), ref_.grads_l, key_ + " grads lower");
  ExpectNear(upper.topRows(n), ref_.grads_u, key_ + " grads upper");
}

// The core's bounds (whatever product its conv layers use) enclose sampled
// networks and inputs.
TEST_P(ConvPassesProductGolden, IbpBoundsEncloseSampledNetworksAndInputs) {
  const IntervalMatrix logits = ForwardBounds(cc_.spec, cc_.box, input_, m_.method);
  Matrix lower, upper;
  PerSampleGradientBounds(cc_.spec, cc_.box, input_, cc_.labels, LossKind::kCrossEntropy,
                          LabelPerturbation{}, m_.method, &lower, &upper);
  Rng rng(17);
  for (int s = 0; s < 200; ++s) {
    // The nominal network on the nominal input first, then random draws.
    const Vector theta = s == 0 ? cc_.init : SampleInside(cc_.box.lower, cc_.box.upper, &rng);
    const Matrix x = s == 0 ? cc_.x : SampleInside(input_.lower, input_.upper, &rng);
    ExpectInside(Forward(cc_.spec, theta, x), logits.lower, logits.upper, key_ + " logits",
                 1e-12);
    Matrix grads;
    PerSampleGradients(cc_.spec, theta, x, cc_.labels, LossKind::kCrossEntropy, &grads);
    ExpectInside(grads, lower, upper, key_ + " gradients", 1e-12);
  }
}

// Beyond the reference: IntervalOptions::conv_product applies the named
// product to the conv layers too. Still sound (sampled networks and inputs
// stay inside), and tighter than the reference's conv-by-Rump: never wider
// elementwise for the exact product (the tightest interval product, and
// every later layer is inclusion-monotone), narrower in total for both.
TEST_P(ConvPassesProductGolden, ConvProductOptionIsSoundAndTighterThanTheReference) {
  if (m_.method == MatMulMethod::kRump) GTEST_SKIP() << "rump is the default conv product";
  BoundOptions options;
  options.interval.product = m_.method;
  options.interval.conv_product = m_.method;
  const IntervalMatrix logits = ForwardBounds(cc_.spec, cc_.box, input_, options);
  const double width = (logits.upper - logits.lower).sum();
  const double ref_width = (ref_.logits_u - ref_.logits_l).sum();
  EXPECT_LT(width, ref_width) << key_;
  if (m_.method == MatMulMethod::kExact) {
    EXPECT_TRUE((logits.lower.array() >= ref_.logits_l.array() - 1e-12).all()) << key_;
    EXPECT_TRUE((logits.upper.array() <= ref_.logits_u.array() + 1e-12).all()) << key_;
  }
  std::printf("[conv product] %s: logit width %.6g vs reference (conv by rump) %.6g: %.1f%% tighter\n",
              key_.c_str(), width, ref_width, 100.0 * (1.0 - width / ref_width));
  Rng rng(23);
  for (int s = 0; s < 200; ++s) {
    const Vector theta = SampleInside(cc_.box.lower, cc_.box.upper, &rng);
    const Matrix x = SampleInside(input_.lower, input_.upper, &rng);
    ExpectInside(Forward(cc_.spec, theta, x), logits.lower, logits.upper, key_ + " logits", 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConvPassesProductGolden,
    ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kIbpEntries)),
    [](const ::testing::TestParamInfo<std::tuple<const char*, NamedMethod>>& info) {
      return absl::StrCat(std::get<0>(info.param), "_", std::get<1>(info.param).key);
    });

}  // namespace
}  // namespace agt
