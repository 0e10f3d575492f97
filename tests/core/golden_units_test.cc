// Golden comparison of single operations against the reference implementation
// (tests/data/goldens/units/*.json; see goldens/README.md for what each file
// holds), plus sampling checks that the bounds enclose every point they claim
// to. Tolerances follow the README: 1e-9 relative for float64 quantities,
// 1e-7 for accuracies (the reference rounds them to float32).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/aggregate/aggregate.h"
#include "core/bounds/ibp.h"
#include "core/certify/certify.h"
#include "core/common/rng.h"
#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "tests/core/golden_json.h"

namespace agt {
namespace {

using namespace golden_json;  // NOLINT(build/namespaces): the shared loaders and comparisons

// The reference rounds accuracies to float32.
constexpr double kAccuracyTol = 1e-7;

// ---------------------------------------------------------------------------
// Every unit file is checked below (conv_passes.json in
// golden_conv_units_test.cc); a new file must get its checks too.

TEST(GoldenUnits, EveryUnitFileHasChecksAndADescription) {
  const std::set<std::string> checked = {
      "aggregation.json", "certificates.json", "clipping.json", "interval_arithmetic.json",
      "losses.json",      "optimizers.json",   "passes.json", "conv_passes.json"};
  ASSERT_TRUE(std::filesystem::is_directory(UnitsDir()))
      << UnitsDir() << " is not a directory (is AGT_TEST_DATA_DIR right?)";
  std::set<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(UnitsDir())) {
    if (entry.path().extension() != ".json") continue;
    const std::string name = entry.path().filename().string();
    found.insert(name);
    json d;
    ASSERT_TRUE(LoadUnit(name, &d));
    EXPECT_TRUE(d.contains("description")) << name;
    EXPECT_TRUE(checked.count(name)) << name << " has no checks in this test";
  }
  EXPECT_EQ(found, checked);
}

// ---------------------------------------------------------------------------
// interval_arithmetic.json

constexpr NamedMethod kMatMulMethods[] = {{"rump", MatMulMethod::kRump},
                                          {"exact", MatMulMethod::kExact},
                                          {"nguyen", MatMulMethod::kNguyen}};

// Checks MatMul(.., method) on every case that has an entry for `key`;
// returns how many batch slices were compared.
int CheckMatMulAgainstReference(const char* key, MatMulMethod method) {
  json d;
  EXPECT_TRUE(LoadUnit("interval_arithmetic.json", &d));
  int compared = 0;
  for (const json& c : d.value("matmul", json::array())) {
    if (!c.contains(key)) continue;
    const std::string name = c.at("name").get<std::string>();
    const std::vector<Matrix> al = ToMatrixBatch(c.at("A_l")), au = ToMatrixBatch(c.at("A_u"));
    const std::vector<Matrix> bl = ToMatrixBatch(c.at("B_l")), bu = ToMatrixBatch(c.at("B_u"));
    const std::vector<Matrix> hl = ToMatrixBatch(c.at(key).at("H_l"));
    const std::vector<Matrix> hu = ToMatrixBatch(c.at(key).at("H_u"));
    EXPECT_EQ(al.size(), bl.size()) << name;
    EXPECT_EQ(al.size(), hl.size()) << name;
    for (size_t s = 0; s < al.size() && s < bl.size() && s < hl.size(); ++s) {
      const IntervalMatrix h = MatMul({al[s], au[s]}, {bl[s], bu[s]}, method);
      const std::string what = absl::StrCat(name, "[", s, "] ", key);
      ExpectNear(h.lower, hl[s], what + " lower");
      ExpectNear(h.upper, hu[s], what + " upper");
      ++compared;
    }
  }
  return compared;
}

TEST(IntervalArithmeticGolden, RumpMatMulMatchesReference) {
  EXPECT_GT(CheckMatMulAgainstReference("rump", MatMulMethod::kRump), 0);
}

TEST(IntervalArithmeticGolden, ExactMatMulMatchesReference) {
  EXPECT_GT(CheckMatMulAgainstReference("exact", MatMulMethod::kExact), 0);
}

TEST(IntervalArithmeticGolden, NguyenMatMulMatchesReference) {
  EXPECT_GT(CheckMatMulAgainstReference("nguyen", MatMulMethod::kNguyen), 0);
}

TEST(IntervalArithmeticGolden, NguyenEntryPointEqualsMatMulDispatch) {
  json d;
  ASSERT_TRUE(LoadUnit("interval_arithmetic.json", &d));
  const json& c = d.at("matmul").at(0);
  const IntervalMatrix a(ToMatrix(c.at("A_l")), ToMatrix(c.at("A_u")));
  const IntervalMatrix b(ToMatrix(c.at("B_l")), ToMatrix(c.at("B_u")));
  const IntervalMatrix direct = MatMulNguyen(a, b);
  const IntervalMatrix dispatched = MatMul(a, b, MatMulMethod::kNguyen);
  EXPECT_EQ(direct.lower, dispatched.lower);
  EXPECT_EQ(direct.upper, dispatched.upper);
}

TEST(IntervalArithmeticGolden, ElementwiseProductMatchesReference) {
  json d;
  ASSERT_TRUE(LoadUnit("interval_arithmetic.json", &d));
  const json& e = d.at("elementwise");
  const IntervalMatrix h = ElementwiseProduct({ToMatrix(e.at("A_l")), ToMatrix(e.at("A_u"))},
                                              {ToMatrix(e.at("B_l")), ToMatrix(e.at("B_u"))});
  ExpectNear(h.lower, ToMatrix(e.at("H_l")), "elementwise lower");
  ExpectNear(h.upper, ToMatrix(e.at("H_u")), "elementwise upper");
}

// ---------------------------------------------------------------------------
// losses.json

struct LossCase {
  std::string description;
  LossKind kind = LossKind::kMse;
  LabelPerturbation perturbation;
  IntervalMatrix logits;
  Matrix nominal;
  Vector targets;
};

// The reference's kwargs: label_k_poison > 0 turns the label perturbation on;
// poison_target_idx (>= 0) makes it targeted; label_epsilon is the regression
// radius, used only when label_k_poison > 0.
LabelPerturbation PerturbationFromKwargs(const json& kwargs) {
  LabelPerturbation p;
  p.enabled = kwargs.value("label_k_poison", 0) > 0;
  if (p.enabled) {
    p.target_class = kwargs.value("poison_target_idx", -1);
    p.nu = kwargs.value("label_epsilon", 0.0);
  }
  return p;
}

std::vector<LossCase> LoadLossCases() {
  json d;
  EXPECT_TRUE(LoadUnit("losses.json", &d));
  std::vector<LossCase> cases;
  for (const json& c : d.value("cases", json::array())) {
    LossCase lc;
    const std::string loss = c.at("loss").get<std::string>();
    const absl::StatusOr<LossKind> kind = ParseLossKind(loss);
    EXPECT_TRUE(kind.ok()) << loss << ": " << kind.status();
    if (!kind.ok()) continue;
    lc.kind = *kind;
    lc.perturbation = PerturbationFromKwargs(c.at("kwargs"));
    lc.description = absl::StrCat("case ", cases.size(), " ", loss, " ", c.at("kwargs").dump());
    lc.logits = IntervalMatrix(ToMatrix(c.at("logits_l")), ToMatrix(c.at("logits_u")));
    lc.nominal = ToMatrix(c.at("logits_n"));
    lc.targets = ToVector(c.at("targets"));
    cases.push_back(std::move(lc));
  }
  EXPECT_FALSE(cases.empty());
  return cases;
}

TEST(LossesGolden, LossGradientBoundsMatchReference) {
  json d;
  ASSERT_TRUE(LoadUnit("losses.json", &d));
  const std::vector<LossCase> cases = LoadLossCases();
  ASSERT_EQ(cases.size(), d.at("cases").size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const LossCase& lc = cases[i];
    const json& c = d.at("cases").at(i);
    const IntervalMatrix g = LossGradientBounds(lc.kind, lc.logits, lc.targets, lc.perturbation);
    ExpectNear(g.lower, ToMatrix(c.at("grad_l")), lc.description + " grad lower");
    ExpectNear(g.upper, ToMatrix(c.at("grad_u")), lc.description + " grad upper");
  }
}

TEST(LossesGolden, NominalLossGradientMatchesReference) {
  json d;
  ASSERT_TRUE(LoadUnit("losses.json", &d));
  const std::vector<LossCase> cases = LoadLossCases();
  ASSERT_EQ(cases.size(), d.at("cases").size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const LossCase& lc = cases[i];
    ExpectNear(LossGradient(lc.kind, lc.nominal, lc.targets),
               ToMatrix(d.at("cases").at(i).at("grad_n")), lc.description + " grad nominal");
  }
}

TEST(LossesGolden, SoftmaxBoundsMatchReference) {
  json d;
  ASSERT_TRUE(LoadUnit("losses.json", &d));
  int compared = 0;
  for (const json& c : d.at("cases")) {
    if (!c.contains("softmax_l")) continue;
    const IntervalMatrix p =
        SoftmaxBounds({ToMatrix(c.at("logits_l")), ToMatrix(c.at("logits_u"))});
    const std::string what =
        absl::StrCat(c.at("loss").get<std::string>(), " ", c.at("kwargs").dump(), " softmax");
    ExpectNear(p.lower, ToMatrix(c.at("softmax_l")), what + " lower");
    ExpectNear(p.upper, ToMatrix(c.at("softmax_u")), what + " upper");
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// The MSE value bounds (value_l / value_u: the smallest and largest squared
// error over [l, u]) have no public per-row function; without label
// perturbation their means are exactly CertifyRegression's mse_best /
// mse_worst, which is how they are checked. The cases with an active label
// radius have no public counterpart (certificates take no label perturbation).
TEST(LossesGolden, MseValueBoundsMatchRegressionCertificate) {
  json d;
  ASSERT_TRUE(LoadUnit("losses.json", &d));
  int compared = 0;
  for (const json& c : d.at("cases")) {
    if (!c.contains("value_l") || PerturbationFromKwargs(c.at("kwargs")).enabled) continue;
    LogitBounds logits;
    logits.nominal = ToMatrix(c.at("logits_n"));
    logits.bounds = IntervalMatrix(ToMatrix(c.at("logits_l")), ToMatrix(c.at("logits_u")));
    const Vector targets = ToVector(c.at("targets"));
    const RegressionCertificate cert = CertifyRegression(logits, targets);
    const std::string what = absl::StrCat("mse ", c.at("kwargs").dump());
    ExpectNear(cert.mse_best, ToVector(c.at("value_l")).mean(), what + " mean value_l");
    ExpectNear(cert.mse_worst, ToVector(c.at("value_u")).mean(), what + " mean value_u");
    const Vector residual = logits.nominal.col(0) - targets;
    ExpectNear(cert.mse_nominal, residual.squaredNorm() / residual.size(), what + " nominal");
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// ---------------------------------------------------------------------------
// passes.json

ModelSpec SpecFromJson(const json& layers) {
  ModelSpec spec;
  for (const json& l : layers) {
    if (l.at("type").get<std::string>() == "dense") {
      spec.layers.push_back(LayerSpec::Dense(l.at("in").get<int>(), l.at("out").get<int>()));
    } else {
      EXPECT_EQ(l.at("type").get<std::string>(), "relu");
      spec.layers.push_back(LayerSpec::Relu());
    }
  }
  return spec;
}

// {"layers": [{"weight": [[..]], "bias": [..]}, ..]} in the flat layout.
Vector ParametersFromJson(const json& p) { return ParametersFromList(p.at("layers")); }

::testing::AssertionResult LoadPasses(json* d, PassesCase* pc) {
  ::testing::AssertionResult loaded = LoadUnit("passes.json", d);
  if (!loaded) return loaded;
  pc->spec = SpecFromJson(d->at("model"));
  const absl::Status valid = pc->spec.Validate();
  if (!valid.ok()) return ::testing::AssertionFailure() << valid;
  pc->init = ParametersFromJson(d->at("init"));
  pc->box = {ParametersFromJson(d->at("lower")), ParametersFromJson(d->at("upper"))};
  if (pc->init.size() != pc->spec.NumParameters() || pc->box.size() != pc->spec.NumParameters()) {
    return ::testing::AssertionFailure()
           << "parameter count " << pc->init.size() << " vs model " << pc->spec.NumParameters();
  }
  pc->x = ToMatrix(d->at("x"));
  pc->eps = d->at("eps").get<double>();
  pc->labels = ToVector(d->at("labels"));
  return ::testing::AssertionSuccess();
}

// The ibp_* entries (kIbpEntries): their intermediates start at
// [x - eps, x + eps], so the reference used the eps-ball input (checked below
// through inter_l[0]).
//
// The crown_* and alpha_crown_* entries are not compared: CROWN is not
// implemented in the core yet. When it is, compare against crown_*_fixed (the
// corrected computation), never crown_* (the reference's unsound ReLU offset).

TEST(PassesGolden, ForwardBoundsAndIntermediatesMatchReference) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  const IntervalMatrix input = IntervalMatrix::Ball(pc.x, pc.eps);
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(m.key);
    std::vector<IntervalMatrix> acts;
    const IntervalMatrix logits = ForwardBounds(pc.spec, pc.box, input, m.method, &acts);
    ExpectNear(logits.lower, ToMatrix(e.at("logits_l")), std::string(m.key) + " logits lower");
    ExpectNear(logits.upper, ToMatrix(e.at("logits_u")), std::string(m.key) + " logits upper");
    ASSERT_EQ(acts.size(), e.at("inter_l").size()) << m.key << " intermediates";
    for (size_t i = 0; i < acts.size(); ++i) {
      const std::string what = absl::StrCat(m.key, " intermediate ", i);
      ExpectNear(acts[i].lower, ToMatrix(e.at("inter_l").at(i)), what + " lower");
      ExpectNear(acts[i].upper, ToMatrix(e.at("inter_u").at(i)), what + " upper");
    }
  }
}

TEST(PassesGolden, LossGradientBoundsOnReferenceLogitsMatchReference) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(m.key);
    const IntervalMatrix g = LossGradientBounds(
        LossKind::kCrossEntropy, {ToMatrix(e.at("logits_l")), ToMatrix(e.at("logits_u"))},
        pc.labels, LabelPerturbation{});
    ExpectNear(g.lower, ToMatrix(e.at("loss_grad_l")), std::string(m.key) + " loss grad lower");
    ExpectNear(g.upper, ToMatrix(e.at("loss_grad_u")), std::string(m.key) + " loss grad upper");
  }
}

TEST(PassesGolden, PerSampleGradientBoundsMatchReference) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  const IntervalMatrix input = IntervalMatrix::Ball(pc.x, pc.eps);
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(m.key);
    Matrix lower, upper;
    PerSampleGradientBounds(pc.spec, pc.box, input, pc.labels, LossKind::kCrossEntropy,
                            LabelPerturbation{}, m.method, &lower, &upper);
    ExpectNear(lower, PerSampleRows(e.at("grads_l")), std::string(m.key) + " grads lower");
    ExpectNear(upper, PerSampleRows(e.at("grads_u")), std::string(m.key) + " grads upper");
  }
}

// The prepared model used by training: same numbers, and rows of the output
// buffers beyond the fragment are left alone.
TEST(PassesGolden, BoxedModelMatchesReference) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  const IntervalMatrix input = IntervalMatrix::Ball(pc.x, pc.eps);
  const Index n = pc.x.rows();
  const Index p = pc.spec.NumParameters();
  constexpr double kSentinel = 12345.0;
  for (const NamedMethod& m : kIbpEntries) {
    const json& e = d.at(m.key);
    const BoxedModel model(pc.spec, pc.box, m.method);
    ASSERT_EQ(model.num_params(), p);
    const IntervalMatrix logits = model.ForwardBounds(input);
    ExpectNear(logits.lower, ToMatrix(e.at("logits_l")), std::string(m.key) + " logits lower");
    ExpectNear(logits.upper, ToMatrix(e.at("logits_u")), std::string(m.key) + " logits upper");
    Matrix lower = Matrix::Constant(n + 2, p, kSentinel);
    Matrix upper = Matrix::Constant(n + 2, p, kSentinel);
    model.PerSampleGradientBounds(input, pc.labels, LossKind::kCrossEntropy, LabelPerturbation{},
                                  &lower, &upper);
    ExpectNear(lower.topRows(n), PerSampleRows(e.at("grads_l")),
               std::string(m.key) + " grads lower");
    ExpectNear(upper.topRows(n), PerSampleRows(e.at("grads_u")),
               std::string(m.key) + " grads upper");
    EXPECT_TRUE((lower.bottomRows(2).array() == kSentinel).all()) << m.key;
    EXPECT_TRUE((upper.bottomRows(2).array() == kSentinel).all()) << m.key;
  }
}

TEST(PassesGolden, NominalLogitsAndGradientsMatchReference) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  const json& e = d.at("nominal");
  ExpectNear(Forward(pc.spec, pc.init, pc.x), ToMatrix(e.at("logits")), "nominal logits");
  Matrix grads;
  PerSampleGradients(pc.spec, pc.init, pc.x, pc.labels, LossKind::kCrossEntropy, &grads);
  ExpectNear(grads, PerSampleRows(e.at("grads")), "nominal grads");
}

// ---------------------------------------------------------------------------
// aggregation.json

struct AggregationData {
  int batch = 0;
  Matrix nominal, lower, upper, perturbed_lower, perturbed_upper;  // b x P each
};

::testing::AssertionResult LoadAggregation(json* d, AggregationData* a) {
  ::testing::AssertionResult loaded = LoadUnit("aggregation.json", d);
  if (!loaded) return loaded;
  a->batch = d->at("batchsize").get<int>();
  a->nominal = PerSampleRows(d->at("n"));
  a->lower = PerSampleRows(d->at("wp_l"));
  a->upper = PerSampleRows(d->at("wp_u"));
  a->perturbed_lower = PerSampleRows(d->at("iwp_l"));
  a->perturbed_upper = PerSampleRows(d->at("iwp_u"));
  if (a->nominal.rows() != a->batch) {
    return ::testing::AssertionFailure()
           << "n has " << a->nominal.rows() << " rows, batch " << a->batch;
  }
  return ::testing::AssertionSuccess();
}

// A result key such as "privacy_k2_gamma0.4_fragments_4_4_1" or
// "unlearning_k0_one_fragment".
struct AggregationRun {
  std::string key;
  AggregationKind kind = AggregationKind::kRemoval;
  int k = 0;
  double gamma = 0.0;
  std::vector<int> fragment_sizes;
};

::testing::AssertionResult ParseAggregationKey(const std::string& key, int batch,
                                               AggregationRun* run) {
  const std::vector<std::string> parts = absl::StrSplit(key, '_');
  run->key = key;
  if (parts.size() < 3) return ::testing::AssertionFailure() << "unknown key " << key;
  if (parts[0] == "unlearning") {
    run->kind = AggregationKind::kRemoval;
  } else if (parts[0] == "privacy") {
    run->kind = AggregationKind::kSubstitution;
  } else if (parts[0] == "poisoning") {
    run->kind = AggregationKind::kBoundedPoisoning;
  } else {
    return ::testing::AssertionFailure() << "unknown aggregation kind in " << key;
  }
  if (!absl::StartsWith(parts[1], "k") || !absl::SimpleAtoi(parts[1].substr(1), &run->k)) {
    return ::testing::AssertionFailure() << "no k in " << key;
  }
  size_t next = 2;
  if (absl::StartsWith(parts[next], "gamma")) {
    if (!absl::SimpleAtod(parts[next].substr(5), &run->gamma)) {
      return ::testing::AssertionFailure() << "bad gamma in " << key;
    }
    ++next;
  }
  run->fragment_sizes.clear();
  if (parts.size() == next + 2 && parts[next] == "one" && parts[next + 1] == "fragment") {
    run->fragment_sizes.push_back(batch);
  } else if (parts[next] == "fragments") {
    for (size_t i = next + 1; i < parts.size(); ++i) {
      int size = 0;
      if (!absl::SimpleAtoi(parts[i], &size)) {
        return ::testing::AssertionFailure() << "bad fragment size in " << key;
      }
      run->fragment_sizes.push_back(size);
    }
  } else {
    return ::testing::AssertionFailure() << "no fragments in " << key;
  }
  int total = 0;
  for (int s : run->fragment_sizes) total += s;
  if (total != batch) {
    return ::testing::AssertionFailure() << key << ": fragments hold " << total << " rows";
  }
  return ::testing::AssertionSuccess();
}

// One fragment's rows of every per-sample matrix (the aggregator keeps
// pointers, so these must outlive the Add calls).
struct Fragment {
  Matrix nominal, lower, upper, perturbed_lower, perturbed_upper;
};

std::vector<Fragment> SplitIntoFragments(const AggregationData& a, const std::vector<int>& sizes) {
  std::vector<Fragment> fragments;
  Index start = 0;
  for (int size : sizes) {
    fragments.push_back({a.nominal.middleRows(start, size), a.lower.middleRows(start, size),
                         a.upper.middleRows(start, size), a.perturbed_lower.middleRows(start, size),
                         a.perturbed_upper.middleRows(start, size)});
    start += size;
  }
  return fragments;
}

// How the fragments of a batch are handed to the aggregator: lane_of[f] is
// the lane of fragment f (non-decreasing: lanes are contiguous runs of rows).
struct LanePlan {
  std::vector<int> lane_of;
  int num_lanes() const { return lane_of.empty() ? 0 : lane_of.back() + 1; }
  std::string Describe() const {
    std::string out = "lanes of fragments {";
    for (size_t f = 0; f < lane_of.size(); ++f) absl::StrAppend(&out, f ? "," : "", lane_of[f]);
    return out + "}";
  }
};

// Every way to cut `num_fragments` fragments into contiguous lanes.
std::vector<LanePlan> AllLanePlans(int num_fragments) {
  std::vector<LanePlan> plans;
  // Bit i of `cuts` set: a new lane starts at fragment i + 1.
  for (int cuts = 0; cuts < (1 << (num_fragments - 1)); ++cuts) {
    LanePlan plan{{0}};
    for (int f = 1; f < num_fragments; ++f) {
      plan.lane_of.push_back(plan.lane_of.back() + ((cuts >> (f - 1)) & 1));
    }
    plans.push_back(plan);
  }
  return plans;
}

enum class LaneSchedule {
  kInOrder,       // one caller, lane 0 first
  kReverseOrder,  // one caller, last lane first (rows within a lane stay in order)
  kThreads,       // one thread per lane
};

// Aggregates the batch's fragments, lane by lane as `plan` and `schedule` say.
DescentBounds Aggregate(const AggregationRun& run, const AggregationData& a, const LanePlan& plan,
                        LaneSchedule schedule) {
  const std::vector<Fragment> fragments = SplitIntoFragments(a, run.fragment_sizes);
  EXPECT_EQ(fragments.size(), plan.lane_of.size());
  const int num_lanes = plan.num_lanes();
  Aggregator aggregator(run.kind, a.lower.cols(), a.batch, run.k, run.gamma, num_lanes);
  auto add_lane = [&](int lane) {
    for (size_t f = 0; f < fragments.size(); ++f) {
      if (plan.lane_of[f] != lane) continue;
      const Fragment& fr = fragments[f];
      aggregator.Add(lane, {&fr.lower, &fr.upper, &fr.perturbed_lower, &fr.perturbed_upper});
    }
  };
  switch (schedule) {
    case LaneSchedule::kInOrder:
      for (int lane = 0; lane < num_lanes; ++lane) add_lane(lane);
      break;
    case LaneSchedule::kReverseOrder:
      for (int lane = num_lanes - 1; lane >= 0; --lane) add_lane(lane);
      break;
    case LaneSchedule::kThreads: {
      std::vector<std::thread> threads;
      for (int lane = 0; lane < num_lanes; ++lane) threads.emplace_back(add_lane, lane);
      for (std::thread& t : threads) t.join();
      break;
    }
  }
  return aggregator.Finish();
}

std::vector<AggregationRun> AggregationRuns(const json& d, int batch) {
  std::vector<AggregationRun> runs;
  for (const auto& [key, value] : d.items()) {
    if (!value.is_object()) continue;
    AggregationRun run;
    EXPECT_TRUE(ParseAggregationKey(key, batch, &run));
    runs.push_back(run);
  }
  EXPECT_FALSE(runs.empty());
  return runs;
}

// Each key's fragments (the whole batch, or 4, 4, 1 rows), over every
// contiguous split into lanes (for 4, 4, 1 that includes one lane and two
// lanes, either way round, and three lanes), the lanes run in threads.
TEST(AggregationGolden, DescentBoundsMatchReference) {
  json d;
  AggregationData a;
  ASSERT_TRUE(LoadAggregation(&d, &a));
  for (const AggregationRun& run : AggregationRuns(d, a.batch)) {
    const Vector expected_l = ToVector(d.at(run.key).at("update_l"));
    const Vector expected_u = ToVector(d.at(run.key).at("update_u"));
    // The reference aggregates the given bounds as they are (they exceed
    // gamma: clipping happens before aggregation, goldens README 5-6).
    for (const LanePlan& plan : AllLanePlans(static_cast<int>(run.fragment_sizes.size()))) {
      const DescentBounds got = Aggregate(run, a, plan, LaneSchedule::kThreads);
      const std::string what = absl::StrCat(run.key, " ", plan.Describe());
      ExpectNear(got.lower, expected_l, what + " lower");
      ExpectNear(got.upper, expected_u, what + " upper");
    }
  }
}

TEST(AggregationGolden, NominalDirectionMatchesReference) {
  json d;
  AggregationData a;
  ASSERT_TRUE(LoadAggregation(&d, &a));
  for (const AggregationRun& run : AggregationRuns(d, a.batch)) {
    const std::vector<Fragment> fragments = SplitIntoFragments(a, run.fragment_sizes);
    for (const LanePlan& plan : AllLanePlans(static_cast<int>(fragments.size()))) {
      NominalAggregator nominal(a.nominal.cols(), a.batch, plan.num_lanes());
      for (size_t f = 0; f < fragments.size(); ++f) {
        nominal.Add(plan.lane_of[f], fragments[f].nominal);
      }
      ExpectNear(nominal.Finish(), ToVector(d.at(run.key).at("update_n")),
                 absl::StrCat(run.key, " ", plan.Describe(), " nominal"));
    }
  }
}

// aggregate.h promises results that depend on the lane count only, never on
// which thread ran a lane or when: bit for bit.
TEST(AggregationGolden, DescentBoundsDoNotDependOnLaneScheduling) {
  json d;
  AggregationData a;
  ASSERT_TRUE(LoadAggregation(&d, &a));
  for (const AggregationRun& run : AggregationRuns(d, a.batch)) {
    for (const LanePlan& plan : AllLanePlans(static_cast<int>(run.fragment_sizes.size()))) {
      const DescentBounds base = Aggregate(run, a, plan, LaneSchedule::kInOrder);
      for (LaneSchedule schedule : {LaneSchedule::kReverseOrder, LaneSchedule::kThreads}) {
        const DescentBounds other = Aggregate(run, a, plan, schedule);
        const std::string what =
            absl::StrCat(run.key, " ", plan.Describe(), " schedule ", static_cast<int>(schedule));
        EXPECT_EQ(other.lower, base.lower) << what;
        EXPECT_EQ(other.upper, base.upper) << what;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// optimizers.json

OptimizerConfig OptimizerFromJson(const std::string& name, const json& kwargs) {
  OptimizerConfig opt;
  opt.learning_rate = kwargs.at("learning_rate").get<double>();
  opt.lr_decay = kwargs.value("lr_decay", 0.0);
  opt.lr_min = kwargs.value("lr_min", 0.0);
  opt.l1 = kwargs.value("l1_reg", 0.0);
  opt.l2 = kwargs.value("l2_reg", 0.0);
  EXPECT_TRUE(name == "SGD" || name == "SGDM") << name;
  if (name == "SGDM") {
    opt.momentum_enabled = true;
    opt.momentum = kwargs.value("momentum", 0.0);
    opt.dampening = kwargs.value("dampening", 0.0);
    opt.nesterov = kwargs.value("nesterov", false);
  }
  return opt;
}

TEST(OptimizersGolden, NominalAndBoxUpdatesMatchReference) {
  json d;
  ASSERT_TRUE(LoadUnit("optimizers.json", &d));
  for (const json& run : d.at("runs")) {
    const std::string name =
        absl::StrCat(run.at("optimizer").get<std::string>(), " ", run.at("kwargs").dump());
    const OptimizerConfig opt =
        OptimizerFromJson(run.at("optimizer").get<std::string>(), run.at("kwargs"));
    ASSERT_TRUE(opt.Validate().ok()) << name << ": " << opt.Validate();
    Vector theta = ToVector(d.at("param_n"));
    ParameterBox box{ToVector(d.at("param_l")), ToVector(d.at("param_u"))};
    Vector velocity, velocity_lower, velocity_upper;
    ASSERT_EQ(run.at("after").size(), d.at("steps").size()) << name;
    for (size_t t = 0; t < d.at("steps").size(); ++t) {
      const json& step = d.at("steps").at(t);
      ApplyNominalUpdate(opt, static_cast<int64_t>(t), ToVector(step.at("grad_n")), &theta,
                         &velocity);
      ApplyBoxUpdate(opt, static_cast<int64_t>(t), ToVector(step.at("grad_l")),
                     ToVector(step.at("grad_u")), &box, &velocity_lower, &velocity_upper);
      const json& after = run.at("after").at(t);
      const std::string what = absl::StrCat(name, " after step ", t);
      const bool nominal_ok = ExpectNear(theta, ToVector(after.at("param_n")), what + " nominal");
      const bool lower_ok = ExpectNear(box.lower, ToVector(after.at("param_l")), what + " lower");
      const bool upper_ok = ExpectNear(box.upper, ToVector(after.at("param_u")), what + " upper");
      // Later steps start from a wrong state; their differences say nothing new.
      if (!(nominal_ok && lower_ok && upper_ok)) break;
    }
  }
}

// ---------------------------------------------------------------------------
// clipping.json

TEST(ClippingGolden, ClampMatchesReference) {
  json d;
  ASSERT_TRUE(LoadUnit("clipping.json", &d));
  const double gamma = d.at("gamma").get<double>();
  for (const char* part : {"x_l", "x_n", "x_u"}) {
    Matrix m = PerSampleRows(d.at(part));
    ClampInPlace(&m, gamma);
    ExpectNear(m, PerSampleRows(d.at("clamp").at(part)), std::string("clamp ") + part);
  }
  // norm_weight_only (the reference's 'norm' clip method) is not compared:
  // the core offers element-wise clamping only.
}

// ---------------------------------------------------------------------------
// certificates.json

TEST(CertificatesGolden, ClassificationCertificatesMatchReference) {
  json d;
  ASSERT_TRUE(LoadUnit("certificates.json", &d));
  for (const json& c : d.at("cases")) {
    const std::string name = absl::StrCat(c.at("classes").get<int>(), " class(es)");
    LogitBounds logits;
    logits.nominal = ToMatrix(c.at("logits_n"));
    logits.bounds = IntervalMatrix(ToMatrix(c.at("logits_l")), ToMatrix(c.at("logits_u")));
    const Vector labels = ToVector(c.at("labels"));
    const ClassificationCertificate cert = CertifyClassification(logits, labels);
    ExpectNear(cert.accuracy_worst, c.at("accuracy_worst").get<double>(), name + " worst", 0.0,
               kAccuracyTol);
    ExpectNear(cert.accuracy_nominal, c.at("accuracy_nominal").get<double>(), name + " nominal",
               0.0, kAccuracyTol);
    ExpectNear(cert.accuracy_best, c.at("accuracy_best").get<double>(), name + " best", 0.0,
               kAccuracyTol);
    const std::vector<bool> expected = c.at("stable").get<std::vector<bool>>();
    EXPECT_EQ(cert.stable, expected) << name;
    EXPECT_EQ(Stable(logits.bounds), expected) << name;
    const double fraction =
        static_cast<double>(std::count(expected.begin(), expected.end(), true)) /
        static_cast<double>(expected.size());
    EXPECT_DOUBLE_EQ(cert.stable_fraction, fraction) << name;
  }
}

TEST(CertificatesGolden, RegressionCertificatesMatchReference) {
  json d;
  ASSERT_TRUE(LoadUnit("certificates.json", &d));
  int compared = 0;
  for (const json& c : d.at("cases")) {
    if (!c.contains("regression_targets")) continue;
    LogitBounds logits;
    logits.nominal = ToMatrix(c.at("logits_n"));
    logits.bounds = IntervalMatrix(ToMatrix(c.at("logits_l")), ToMatrix(c.at("logits_u")));
    const RegressionCertificate cert =
        CertifyRegression(logits, ToVector(c.at("regression_targets")));
    ExpectNear(cert.mse_worst, c.at("mse_worst").get<double>(), "mse_worst");
    ExpectNear(cert.mse_nominal, c.at("mse_nominal").get<double>(), "mse_nominal");
    ExpectNear(cert.mse_best, c.at("mse_best").get<double>(), "mse_best");
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// ---------------------------------------------------------------------------
// Soundness by sampling: the bounds must enclose every point they claim to.

// A point inside [lower, upper]: each entry is the lower end, the upper end or
// uniform in between, so vertices of the box are hit often.
Matrix SampleInside(const Matrix& lower, const Matrix& upper, Rng* rng) {
  Matrix m(lower.rows(), lower.cols());
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      switch (rng->UniformInt(3)) {
        case 0:
          m(r, c) = lower(r, c);
          break;
        case 1:
          m(r, c) = upper(r, c);
          break;
        default:
          m(r, c) = rng->Uniform(lower(r, c), upper(r, c));
      }
    }
  }
  return m;
}

Vector SampleInside(const Vector& lower, const Vector& upper, Rng* rng) {
  return SampleInside(Matrix(lower), Matrix(upper), rng).col(0);
}

// A random interval matrix mixing points, positive, negative and
// zero-straddling entries (both leaning positive and leaning negative).
IntervalMatrix RandomIntervalMatrix(Index rows, Index cols, Rng* rng) {
  Matrix lower(rows, cols), upper(rows, cols);
  for (Index r = 0; r < rows; ++r) {
    for (Index c = 0; c < cols; ++c) {
      const double centre = rng->Normal();
      const double radius = rng->UniformInt(4) == 0 ? 0.0 : std::abs(rng->Normal(0.0, 1.0));
      lower(r, c) = centre - radius;
      upper(r, c) = centre + radius;
    }
  }
  return {lower, upper};
}

TEST(IntervalSoundness, EveryMatMulMethodEnclosesSampledProducts) {
  Rng rng(20240611);
  for (int trial = 0; trial < 20; ++trial) {
    const IntervalMatrix a = RandomIntervalMatrix(4, 6, &rng);
    const IntervalMatrix b = RandomIntervalMatrix(6, 5, &rng);
    for (const NamedMethod& m : kMatMulMethods) {
      const IntervalMatrix h = MatMul(a, b, m.method);
      for (int s = 0; s < 100; ++s) {
        const Matrix pa = SampleInside(a.lower, a.upper, &rng);
        const Matrix pb = SampleInside(b.lower, b.upper, &rng);
        ExpectInside(pa * pb, h.lower, h.upper, absl::StrCat(m.key, " trial ", trial), 1e-12);
      }
    }
  }
}

TEST(IntervalSoundness, EveryMatMulMethodContainsTheExactProduct) {
  Rng rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const IntervalMatrix a = RandomIntervalMatrix(3, 7, &rng);
    const IntervalMatrix b = RandomIntervalMatrix(7, 4, &rng);
    const IntervalMatrix exact = MatMul(a, b, MatMulMethod::kExact);
    for (const NamedMethod& m : kMatMulMethods) {
      const IntervalMatrix h = MatMul(a, b, m.method);
      const std::string what = absl::StrCat(m.key, " trial ", trial);
      ExpectInside(exact.lower, h.lower, h.upper, what + " exact lower", 1e-12);
      ExpectInside(exact.upper, h.lower, h.upper, what + " exact upper", 1e-12);
    }
  }
}

// With a sign-definite left factor Nguyen's split has no zero-centred part,
// and the sign rules give every term's exact range.
TEST(IntervalSoundness, NguyenIsExactWhenTheLeftFactorIsSignDefinite) {
  Rng rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    IntervalMatrix a = RandomIntervalMatrix(5, 4, &rng);
    for (Index r = 0; r < a.rows(); ++r) {
      for (Index c = 0; c < a.cols(); ++c) {
        // Fold each entry onto one side of zero, the side chosen per entry.
        const double lo = std::abs(a.lower(r, c)), hi = std::abs(a.upper(r, c));
        const double small = std::min(lo, hi), large = std::max(lo, hi);
        if (rng.UniformInt(2) == 0) {
          a.lower(r, c) = small;
          a.upper(r, c) = large;
        } else {
          a.lower(r, c) = -large;
          a.upper(r, c) = -small;
        }
      }
    }
    const IntervalMatrix b = RandomIntervalMatrix(4, 3, &rng);
    const IntervalMatrix nguyen = MatMul(a, b, MatMulMethod::kNguyen);
    const IntervalMatrix exact = MatMul(a, b, MatMulMethod::kExact);
    ExpectNear(nguyen.lower, exact.lower, "lower", 1e-12, 1e-12);
    ExpectNear(nguyen.upper, exact.upper, "upper", 1e-12, 1e-12);
  }
}

TEST(LossSoundness, LossGradientBoundsEncloseSampledLogitsAndLabels) {
  Rng rng(3);
  for (const LossCase& lc : LoadLossCases()) {
    const IntervalMatrix g = LossGradientBounds(lc.kind, lc.logits, lc.targets, lc.perturbation);
    const Index classes = lc.logits.cols();
    const int label_values = lc.kind == LossKind::kCrossEntropy ? static_cast<int>(classes) : 2;
    for (int s = 0; s < 500; ++s) {
      const Matrix z = SampleInside(lc.logits.lower, lc.logits.upper, &rng);
      Vector labels = lc.targets;
      if (lc.perturbation.enabled) {
        for (Index i = 0; i < labels.size(); ++i) {
          if (!IsClassification(lc.kind)) {
            labels(i) += rng.Uniform(-lc.perturbation.nu, lc.perturbation.nu);
          } else if (rng.UniformInt(2) == 0) {
            // Keep the row's own label half of the time; otherwise flip it.
            labels(i) = lc.perturbation.target_class >= 0
                            ? lc.perturbation.target_class
                            : static_cast<double>(rng.UniformInt(label_values));
          }
        }
      }
      ExpectInside(LossGradient(lc.kind, z, labels), g.lower, g.upper, lc.description, 1e-12);
    }
  }
}

TEST(PassesSoundness, IbpBoundsEncloseSampledNetworksAndInputs) {
  json d;
  PassesCase pc;
  ASSERT_TRUE(LoadPasses(&d, &pc));
  const IntervalMatrix input = IntervalMatrix::Ball(pc.x, pc.eps);
  Rng rng(5);
  for (const NamedMethod& m : kIbpEntries) {
    const IntervalMatrix logits = ForwardBounds(pc.spec, pc.box, input, m.method);
    Matrix lower, upper;
    PerSampleGradientBounds(pc.spec, pc.box, input, pc.labels, LossKind::kCrossEntropy,
                            LabelPerturbation{}, m.method, &lower, &upper);
    for (int s = 0; s < 300; ++s) {
      // The nominal network on the nominal input first, then random draws.
      const Vector theta = s == 0 ? pc.init : SampleInside(pc.box.lower, pc.box.upper, &rng);
      const Matrix x = s == 0 ? pc.x : SampleInside(input.lower, input.upper, &rng);
      ExpectInside(Forward(pc.spec, theta, x), logits.lower, logits.upper,
                   std::string(m.key) + " logits", 1e-12);
      Matrix grads;
      PerSampleGradients(pc.spec, theta, x, pc.labels, LossKind::kCrossEntropy, &grads);
      ExpectInside(grads, lower, upper, std::string(m.key) + " gradients", 1e-12);
    }
  }
}

}  // namespace
}  // namespace agt
