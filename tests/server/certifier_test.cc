// The certifier against direct core computations on models trained for real,
// its request validation, the model cache over a real SQLite store, and the
// proto conversions (round trips and error paths).
#include "server/domain/certifier.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/certify/certify.h"
#include "core/data/dataset.h"
#include "core/train/train.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/job_spec.h"
#include "server/domain/model_convert.h"
#include "server/store/store.h"

namespace agt::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

bool SameBits(const agt::Vector& a, const agt::Vector& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

// A stored-looking model trained with the core exactly as the runner does.
struct Trained {
  ModelRecord model;
  agt::Dataset raw;  // features before expansion
};

Trained TrainModel(agt::v1::TrainingJobSpec spec, const agt::Dataset& raw) {
  DatasetRecord ds;
  ds.id = spec.dataset_id();
  ds.num_rows = raw.size();
  ds.num_features = static_cast<int>(raw.dim());
  ds.num_classes = raw.num_classes;
  absl::StatusOr<ResolvedJob> r = ResolveJobSpec(spec, ds);
  EXPECT_TRUE(r.ok()) << r.status();
  agt::Dataset data = raw;
  if (r->polynomial_degree > 1) data.x = agt::PolynomialFeatures(data.x, r->polynomial_degree);
  absl::StatusOr<agt::TrainResult> result =
      agt::Train(r->config, data, agt::InitParameters(r->config.model, spec.seed()));
  EXPECT_TRUE(result.ok()) << result.status();
  Trained t;
  t.raw = raw;
  ModelRecord& m = t.model;
  m.id = "mdl-test";
  m.tenant = "t1";
  m.job_id = "job-test";
  m.dataset_id = ds.id;
  m.name = spec.name();
  m.spec = spec.SerializeAsString();
  m.architecture = r->config.model;
  m.polynomial_degree = r->polynomial_degree;
  m.input_features = r->input_features;
  m.num_classes = r->num_classes;
  m.nominal = result->state.nominal;
  for (size_t j = 0; j < r->config.budgets.size(); ++j) {
    BoxRecord b;
    b.budget = r->config.budgets[j];
    b.box = result->state.boxes[j];
    b.total_width = b.box.TotalWidth();
    b.max_width = b.box.MaxWidth();
    m.boxes.push_back(b);
  }
  return t;
}

agt::v1::TrainingJobSpec BaseSpec(const std::string& dataset_id) {
  agt::v1::TrainingJobSpec s;
  s.set_name("test");
  s.set_dataset_id(dataset_id);
  s.add_hidden_widths(16);
  s.set_batch_size(100);
  s.set_epochs(2);
  s.mutable_optimizer()->set_learning_rate(0.1);
  s.mutable_perturbation()->set_kind(agt::v1::PERTURBATION_KIND_REMOVAL);
  s.set_seed(11);
  return s;
}

// Binary moons, degree 2, budgets deliberately not sorted by size.
Trained BinaryModel() {
  agt::v1::TrainingJobSpec s = BaseSpec("ds-moons");
  s.set_polynomial_degree(2);
  s.set_loss(agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  for (int n : {2, 1, 10, 0}) s.add_budgets()->set_n(n);
  return TrainModel(s, agt::MakeMoons(400, 0.1, 3));
}

Trained MultiClassModel(int rows = 300) {
  agt::v1::TrainingJobSpec s = BaseSpec("ds-blobs");
  s.set_loss(agt::v1::LOSS_CROSS_ENTROPY);
  for (int n : {1, 5}) s.add_budgets()->set_n(n);
  return TrainModel(s, agt::MakeBlobs(rows, 4, 3, 1.5, 4.0, 5));
}

agt::Dataset RegressionData(int n) {
  agt::Dataset d;
  d.x.resize(n, 3);
  d.y.resize(n);
  for (int i = 0; i < n; ++i) {
    const double a = std::sin(0.37 * i), b = std::cos(0.11 * i), c = (i % 7) / 7.0;
    d.x.row(i) << a, b, c;
    d.y[i] = 0.5 * a - 0.25 * b + c + 0.01 * std::sin(3.1 * i);
  }
  d.num_classes = 0;
  return d;
}

Trained RegressionModel() {
  agt::v1::TrainingJobSpec s = BaseSpec("ds-reg");
  s.set_loss(agt::v1::LOSS_MSE);
  s.mutable_optimizer()->set_learning_rate(0.05);
  s.mutable_optimizer()->set_momentum(0.5);
  s.add_budgets()->set_n(1);
  s.add_budgets()->set_n(4);
  return TrainModel(s, RegressionData(200));
}

agt::v1::CertifyPredictionsRequest RequestFor(const agt::Matrix& x, int rows) {
  agt::v1::CertifyPredictionsRequest req;
  req.set_model_id("mdl-test");
  req.mutable_inputs()->set_rows(rows);
  req.mutable_inputs()->set_cols(x.cols());
  for (int i = 0; i < rows; ++i) {
    for (agt::Index k = 0; k < x.cols(); ++k) req.mutable_inputs()->add_values(x(i, k));
  }
  return req;
}

agt::Matrix Expand(const ModelRecord& m, const agt::Matrix& raw) {
  return m.polynomial_degree > 1 ? agt::PolynomialFeatures(raw, m.polynomial_degree) : raw;
}

TEST(CertifyPredictions, EqualsTheCoreComputationPerPointAndBudget) {
  const Trained t = BinaryModel();
  const ModelRecord& m = t.model;
  const int rows = 120;
  agt::v1::CertifyPredictionsRequest req = RequestFor(t.raw.x, rows);
  for (int i = 0; i < rows; ++i) req.add_labels(t.raw.y[i]);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> resp = CertifyPredictions(m, req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->points_size(), rows);

  const agt::Matrix x = Expand(m, t.raw.x.topRows(rows));
  std::vector<agt::LogitBounds> direct;
  std::vector<std::vector<bool>> stable;
  for (const BoxRecord& b : m.boxes) {
    direct.push_back(agt::ComputeLogitBounds(m.architecture, m.nominal, b.box, x));
    stable.push_back(agt::Stable(direct.back(), agt::StabilityRule::kMargin));
  }
  const std::vector<int> predicted = agt::PredictClasses(direct[0].nominal);
  std::vector<int> seen_largest;
  for (int i = 0; i < rows; ++i) {
    const agt::v1::PointCertificate& p = resp->points(i);
    EXPECT_EQ(p.predicted_class(), predicted[i]);
    ASSERT_EQ(p.nominal_logits_size(), 1);
    EXPECT_EQ(p.nominal_logits(0), direct[0].nominal(i, 0));
    ASSERT_EQ(p.bounds_size(), 4);
    ASSERT_EQ(p.stable_size(), 4);
    ASSERT_EQ(p.correct_size(), 4);
    int largest = -1;
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(p.bounds(j).lower(0), direct[j].bounds.lower(i, 0));
      EXPECT_EQ(p.bounds(j).upper(0), direct[j].bounds.upper(i, 0));
      EXPECT_EQ(p.stable(j), stable[j][i]);
      EXPECT_EQ(p.correct(j), stable[j][i] && predicted[i] == static_cast<int>(t.raw.y[i]));
      // Brute force: the stable budget with the largest n.
      if (stable[j][i] && (largest < 0 || m.boxes[j].budget.n > m.boxes[largest].budget.n)) {
        largest = j;
      }
    }
    EXPECT_EQ(p.largest_stable_budget(), largest) << "point " << i;
    seen_largest.push_back(largest);
  }
  // The data exercise more than one answer (else the ordering is untested).
  std::sort(seen_largest.begin(), seen_largest.end());
  seen_largest.erase(std::unique(seen_largest.begin(), seen_largest.end()), seen_largest.end());
  EXPECT_GE(seen_largest.size(), 2u);
  EXPECT_THAT(resp->guarantee(), HasSubstr("per batch"));
}

TEST(CertifyPredictions, MultiClassMarginAndSoftmaxRulesMatchTheCore) {
  const Trained t = MultiClassModel();
  const ModelRecord& m = t.model;
  const int rows = 100;
  const agt::Matrix x = t.raw.x.topRows(rows);
  int margin_stable = 0, softmax_stable = 0;
  for (auto rule : {agt::v1::STABILITY_RULE_MARGIN, agt::v1::STABILITY_RULE_SOFTMAX,
                    agt::v1::STABILITY_RULE_UNSPECIFIED}) {
    agt::v1::CertifyPredictionsRequest req = RequestFor(x, rows);
    req.set_stability_rule(rule);
    absl::StatusOr<agt::v1::CertifyPredictionsResponse> resp = CertifyPredictions(m, req);
    ASSERT_TRUE(resp.ok()) << resp.status();
    const agt::StabilityRule core_rule = rule == agt::v1::STABILITY_RULE_SOFTMAX
                                             ? agt::StabilityRule::kSoftmax
                                             : agt::StabilityRule::kMargin;
    for (size_t j = 0; j < m.boxes.size(); ++j) {
      const agt::LogitBounds lb = agt::ComputeLogitBounds(m.architecture, m.nominal, m.boxes[j].box,
                                                          x, 0.0, agt::MatMulMethod::kRump,
                                                          core_rule == agt::StabilityRule::kMargin);
      const std::vector<bool> st = agt::Stable(lb, core_rule);
      const std::vector<int> pred = agt::PredictClasses(lb.nominal);
      for (int i = 0; i < rows; ++i) {
        const agt::v1::PointCertificate& p = resp->points(i);
        ASSERT_EQ(p.nominal_logits_size(), 3);
        EXPECT_EQ(p.predicted_class(), pred[i]);
        EXPECT_EQ(p.stable(static_cast<int>(j)), st[i]);
        EXPECT_EQ(p.correct_size(), 0);  // no labels given
        for (int k = 0; k < 3; ++k) {
          EXPECT_EQ(p.bounds(static_cast<int>(j)).lower(k), lb.bounds.lower(i, k));
          EXPECT_EQ(p.bounds(static_cast<int>(j)).upper(k), lb.bounds.upper(i, k));
        }
        if (rule == agt::v1::STABILITY_RULE_MARGIN) margin_stable += st[i];
        if (rule == agt::v1::STABILITY_RULE_SOFTMAX) softmax_stable += st[i];
      }
    }
  }
  // The margin rule is never looser than the softmax rule.
  EXPECT_GE(margin_stable, softmax_stable);
  EXPECT_GT(margin_stable, 0);
}

TEST(CertifyPredictions, TestEpsilonWidensTheBoundsAroundTheUnperturbedOnes) {
  const Trained t = BinaryModel();
  agt::v1::CertifyPredictionsRequest req = RequestFor(t.raw.x, 50);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> plain = CertifyPredictions(t.model, req);
  req.set_test_epsilon(0.05);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> wide = CertifyPredictions(t.model, req);
  ASSERT_TRUE(plain.ok() && wide.ok());
  int stable_plain = 0, stable_wide = 0, strictly_wider = 0;
  for (int i = 0; i < 50; ++i) {
    for (int j = 0; j < 4; ++j) {
      const auto& a = plain->points(i).bounds(j);
      const auto& b = wide->points(i).bounds(j);
      EXPECT_LE(b.lower(0), a.lower(0));
      EXPECT_GE(b.upper(0), a.upper(0));
      strictly_wider += b.upper(0) - b.lower(0) > a.upper(0) - a.lower(0);
      stable_plain += plain->points(i).stable(j);
      stable_wide += wide->points(i).stable(j);
    }
  }
  EXPECT_GT(strictly_wider, 0);
  EXPECT_LE(stable_wide, stable_plain);
  EXPECT_THAT(wide->guarantee(), HasSubstr("0.05 in l-infinity norm"));
  EXPECT_THAT(plain->guarantee(), Not(HasSubstr("l-infinity norm")));
}

TEST(CertifyPredictions, RegressionModelsGetBoundsOnlyAndRefuseLabels) {
  const Trained t = RegressionModel();
  agt::v1::CertifyPredictionsRequest req = RequestFor(t.raw.x, 10);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> resp = CertifyPredictions(t.model, req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  const agt::LogitBounds lb = agt::ComputeLogitBounds(t.model.architecture, t.model.nominal,
                                                      t.model.boxes[1].box, t.raw.x.topRows(10));
  for (int i = 0; i < 10; ++i) {
    const agt::v1::PointCertificate& p = resp->points(i);
    EXPECT_EQ(p.stable_size(), 0);
    EXPECT_EQ(p.correct_size(), 0);
    EXPECT_EQ(p.largest_stable_budget(), -1);
    EXPECT_EQ(p.predicted_class(), 0);
    EXPECT_EQ(p.nominal_logits(0), lb.nominal(i, 0));
    EXPECT_EQ(p.bounds(1).lower(0), lb.bounds.lower(i, 0));
    EXPECT_EQ(p.bounds(1).upper(0), lb.bounds.upper(i, 0));
  }
  EXPECT_THAT(resp->guarantee(), HasSubstr("Regression model"));
  EXPECT_THAT(resp->guarantee(), HasSubstr("momentum"));
  for (int i = 0; i < 10; ++i) req.add_labels(0.0);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> bad = CertifyPredictions(t.model, req);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("labels: the model is a regression"));
}

TEST(CertifyPredictions, MalformedRequestsAreRefusedWithTheField) {
  const Trained t = BinaryModel();
  struct Case {
    std::string name;
    std::function<void(agt::v1::CertifyPredictionsRequest*)> mutate;
    std::string message;
  };
  std::vector<Case> cases = {
      {"no rows",
       [](auto* r) {
         r->mutable_inputs()->set_rows(0);
         r->mutable_inputs()->clear_values();
       },
       "inputs.rows: 0 must be in [1, 100000]"},
      {"too many rows", [](auto* r) { r->mutable_inputs()->set_rows(100001); },
       "inputs.rows: 100001 must be in [1, 100000]"},
      {"wrong cols", [](auto* r) { r->mutable_inputs()->set_cols(3); },
       "inputs.cols: 3 must equal the model's 2 input features"},
      {"short values", [](auto* r) { r->mutable_inputs()->mutable_values()->RemoveLast(); },
       "inputs.values: 7 values, expected rows 4 x cols 2 = 8"},
      {"nan value", [](auto* r) { r->mutable_inputs()->set_values(5, std::nan("")); },
       "inputs.values[5]: (row 2, column 1) must be finite, got nan"},
      {"inf value", [](auto* r) { r->mutable_inputs()->set_values(0, -INFINITY); },
       "inputs.values[0]: (row 0, column 0) must be finite, got -inf"},
      {"negative epsilon", [](auto* r) { r->set_test_epsilon(-0.1); },
       "test_epsilon: must be a finite number in [0, 1e+06], got -0.1"},
      {"nan epsilon", [](auto* r) { r->set_test_epsilon(std::nan("")); },
       "test_epsilon: must be a finite number in [0, 1e+06], got nan"},
      {"unknown rule",
       [](auto* r) { r->set_stability_rule(static_cast<agt::v1::StabilityRule>(5)); },
       "stability_rule: unknown value 5"},
      {"label count", [](auto* r) { r->add_labels(1); },
       "labels: 1 labels for 4 input rows (give none or one per row)"},
      {"label not a class",
       [](auto* r) {
         for (double y : {0.0, 1.0, 2.0, 1.0}) r->add_labels(y);
       },
       "labels[2]: 2 is not a class of the model (integers 0..1)"},
      {"fractional label",
       [](auto* r) {
         for (double y : {0.5, 1.0, 0.0, 1.0}) r->add_labels(y);
       },
       "labels[0]: 0.5 is not a class"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    agt::v1::CertifyPredictionsRequest req = RequestFor(t.raw.x, 4);
    c.mutate(&req);
    absl::StatusOr<agt::v1::CertifyPredictionsResponse> r = CertifyPredictions(t.model, req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
  }
  // A model whose stored spec is garbage is DataLoss, not a crash.
  ModelRecord broken = t.model;
  broken.spec = "\xff\xff\xff";
  EXPECT_EQ(CertifyPredictions(broken, RequestFor(t.raw.x, 1)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(CertifyPredictions, ResponsesAboveTheBoundValueLimitAreRefused) {
  Trained t = MultiClassModel();
  // 64 budgets x 3 logits x 2 x 100000 rows is far above the limit.
  while (t.model.boxes.size() < 64) t.model.boxes.push_back(t.model.boxes[0]);
  agt::v1::CertifyPredictionsRequest req;
  req.mutable_inputs()->set_rows(100000);
  req.mutable_inputs()->set_cols(4);
  req.mutable_inputs()->mutable_values()->Resize(400000, 0.0);
  absl::StatusOr<agt::v1::CertifyPredictionsResponse> r = CertifyPredictions(t.model, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("send fewer rows per call"));
}

TEST(CertifyDataset, ClassificationEqualsTheCoreAcrossChunks) {
  // 5000 rows: more than one chunk, counts must still be exact.
  const Trained t = MultiClassModel(5000);
  for (auto rule : {agt::v1::STABILITY_RULE_MARGIN, agt::v1::STABILITY_RULE_SOFTMAX}) {
    absl::StatusOr<agt::v1::CertifyDatasetResponse> r = CertifyDataset(t.model, t.raw, 0.0, rule);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->num_rows(), 5000);
    const agt::StabilityRule core_rule = rule == agt::v1::STABILITY_RULE_SOFTMAX
                                             ? agt::StabilityRule::kSoftmax
                                             : agt::StabilityRule::kMargin;
    ASSERT_EQ(r->budgets_size(), 2);
    for (int j = 0; j < 2; ++j) {
      const agt::LogitBounds lb = agt::ComputeLogitBounds(
          t.model.architecture, t.model.nominal, t.model.boxes[j].box, t.raw.x, 0.0,
          agt::MatMulMethod::kRump, core_rule == agt::StabilityRule::kMargin);
      const agt::ClassificationCertificate c = agt::CertifyClassification(lb, t.raw.y, core_rule);
      const agt::v1::DatasetCertificate& got = r->budgets(j);
      EXPECT_EQ(got.budget().n(), t.model.boxes[j].budget.n);
      EXPECT_EQ(got.accuracy_nominal(), c.accuracy_nominal);
      EXPECT_EQ(got.accuracy_worst(), c.accuracy_worst);
      EXPECT_EQ(got.accuracy_best(), c.accuracy_best);
      EXPECT_EQ(got.stable_fraction(), c.stable_fraction);
      EXPECT_LE(got.accuracy_worst(), got.accuracy_nominal());
      EXPECT_GE(got.accuracy_best(), got.accuracy_nominal());
    }
  }
}

TEST(CertifyDataset, RegressionEqualsTheCore) {
  const Trained t = RegressionModel();
  absl::StatusOr<agt::v1::CertifyDatasetResponse> r =
      CertifyDataset(t.model, t.raw, 0.01, agt::v1::STABILITY_RULE_UNSPECIFIED);
  ASSERT_TRUE(r.ok()) << r.status();
  for (int j = 0; j < 2; ++j) {
    const agt::LogitBounds lb = agt::ComputeLogitBounds(t.model.architecture, t.model.nominal,
                                                        t.model.boxes[j].box, t.raw.x, 0.01);
    const agt::RegressionCertificate c = agt::CertifyRegression(lb, t.raw.y);
    const agt::v1::DatasetCertificate& got = r->budgets(j);
    EXPECT_DOUBLE_EQ(got.mse_nominal(), c.mse_nominal);
    EXPECT_DOUBLE_EQ(got.mse_worst(), c.mse_worst);
    EXPECT_DOUBLE_EQ(got.mse_best(), c.mse_best);
    EXPECT_LE(got.mse_best(), got.mse_nominal());
    EXPECT_GE(got.mse_worst(), got.mse_nominal());
    EXPECT_EQ(got.accuracy_worst(), 0.0);
  }
}

TEST(CertifyDataset, RefusesMismatchedData) {
  const Trained t = BinaryModel();
  agt::Dataset wrong_dim = agt::MakeBlobs(50, 3, 2, 1.0, 3.0, 1);
  EXPECT_THAT(std::string(CertifyDataset(t.model, wrong_dim, 0, {}).status().message()),
              HasSubstr("dataset: 3 features, the model needs 2"));
  agt::Dataset three = agt::MakeBlobs(50, 2, 3, 1.0, 3.0, 1);
  EXPECT_THAT(std::string(CertifyDataset(t.model, three, 0, {}).status().message()),
              HasSubstr("dataset: num_classes 3 does not match the model's 2 classes"));
  agt::Dataset empty = t.raw.Slice(0, 0);
  EXPECT_THAT(std::string(CertifyDataset(t.model, empty, 0, {}).status().message()),
              HasSubstr("dataset: has no rows"));
  EXPECT_THAT(std::string(CertifyDataset(t.model, t.raw, -1, {}).status().message()),
              HasSubstr("test_epsilon"));
  agt::Dataset bad_label = t.raw.Slice(0, 10);
  bad_label.y[3] = 7;
  EXPECT_THAT(std::string(CertifyDataset(t.model, bad_label, 0, {}).status().message()),
              HasSubstr("dataset row 3 label: 7 is not a class of the model"));
}

TEST(GuaranteeText, StatesTheAssumptions) {
  const Trained t = BinaryModel();
  const std::string g = GuaranteeText(t.model, 0.0);
  EXPECT_THAT(g, HasSubstr("data order"));
  EXPECT_THAT(g, HasSubstr("initialisation (seed 11)"));
  EXPECT_THAT(g, HasSubstr("hyper-parameters"));
  EXPECT_THAT(g, HasSubstr("per batch"));
  EXPECT_THAT(g, HasSubstr("removed"));
  EXPECT_THAT(g, HasSubstr("last place"));
  EXPECT_THAT(g, Not(HasSubstr("momentum")));
}

// ---- conversions

TEST(ModelConvert, ArchitectureAndParametersRoundTripBitExactly) {
  const Trained t = MultiClassModel();
  const ModelRecord& m = t.model;
  absl::StatusOr<agt::ModelSpec> spec = ArchitectureFromProto(*ArchitectureToProto(m.architecture));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->Describe(), m.architecture.Describe());
  EXPECT_EQ(spec->NumParameters(), m.architecture.NumParameters());
  const agt::v1::Parameters p = ParametersToProto(m.architecture, m.nominal);
  ASSERT_EQ(p.layers_size(), 2);
  // Layout: weight out x in row-major, then bias.
  EXPECT_EQ(p.layers(0).weight().rows(), 16);
  EXPECT_EQ(p.layers(0).weight().cols(), 4);
  EXPECT_EQ(p.layers(0).weight().values(4 * 2 + 3), m.nominal[2 * 4 + 3]);
  EXPECT_EQ(p.layers(0).bias(5), m.nominal[64 + 5]);
  absl::StatusOr<agt::Vector> back = ParametersFromProto(m.architecture, p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(SameBits(*back, m.nominal));
}

TEST(ModelConvert, ParametersFromProtoRefusesMismatches) {
  const agt::ModelSpec spec = agt::ModelSpec::Mlp({2, 3, 1});
  const agt::Vector theta = agt::InitParameters(spec, 1);
  agt::v1::Parameters p = ParametersToProto(spec, theta);
  agt::v1::Parameters q = p;
  q.mutable_layers()->RemoveLast();
  EXPECT_THAT(std::string(ParametersFromProto(spec, q).status().message()),
              HasSubstr("parameters.layers: 1 entries, the model has 2 dense and conv2d layers"));
  q = p;
  q.mutable_layers(1)->mutable_weight()->set_rows(2);
  EXPECT_THAT(std::string(ParametersFromProto(spec, q).status().message()),
              HasSubstr("parameters.layers[1].weight: shape 2x3 must be 1x3"));
  q = p;
  q.mutable_layers(0)->mutable_weight()->add_values(1);
  EXPECT_THAT(std::string(ParametersFromProto(spec, q).status().message()),
              HasSubstr("parameters.layers[0].weight.values: 7 values, expected 6"));
  q = p;
  q.mutable_layers(0)->add_bias(1);
  EXPECT_THAT(std::string(ParametersFromProto(spec, q, "box.lower").status().message()),
              HasSubstr("box.lower.layers[0].bias: 4 values, expected 3"));
  q = p;
  q.mutable_layers(0)->set_bias(1, INFINITY);
  EXPECT_THAT(std::string(ParametersFromProto(spec, q).status().message()),
              HasSubstr("parameters.layers[0].bias[1]: must be finite"));
  agt::v1::ModelArchitecture arch;
  arch.add_layers();
  EXPECT_THAT(std::string(ArchitectureFromProto(arch).status().message()),
              HasSubstr("architecture.layers[0]: set dense, conv2d, relu or flatten"));
  arch.Clear();
  arch.add_layers()->mutable_relu();
  EXPECT_THAT(std::string(ArchitectureFromProto(arch).status().message()),
              HasSubstr("architecture: model must start with a dense"));
}

TEST(ModelConvert, EnumsRoundTripAndUnknownValuesAreErrors) {
  for (auto l : {agt::LossKind::kMse, agt::LossKind::kBinaryCrossEntropy,
                 agt::LossKind::kCrossEntropy, agt::LossKind::kHinge}) {
    EXPECT_EQ(*LossFromProto(LossToProto(l), "loss"), l);
  }
  for (auto k : {agt::PerturbationKind::kRemoval, agt::PerturbationKind::kSubstitution,
                 agt::PerturbationKind::kBoundedPoisoning}) {
    EXPECT_EQ(*PerturbationKindFromProto(PerturbationKindToProto(k), "kind"), k);
  }
  for (auto m : {agt::MatMulMethod::kRump, agt::MatMulMethod::kExact, agt::MatMulMethod::kNguyen}) {
    EXPECT_EQ(*IntervalProductFromProto(IntervalProductToProto(m), "m"), m);
  }
  EXPECT_EQ(BoundMethodToProto(agt::BoundMethod::kIbp), agt::v1::BOUND_METHOD_IBP);
  EXPECT_EQ(*RoundingModeFromProto(RoundingModeToProto(agt::RoundingMode::kNearest), "r"),
            agt::RoundingMode::kNearest);
  for (auto r : {agt::StabilityRule::kMargin, agt::StabilityRule::kSoftmax}) {
    EXPECT_EQ(*StabilityRuleFromProto(StabilityRuleToProto(r), "r"), r);
  }
  for (auto s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                 JobState::kCancelled}) {
    EXPECT_EQ(*JobStateFromProto(JobStateToProto(s), "state"), s);
    EXPECT_EQ(static_cast<int>(JobStateToProto(s)), static_cast<int>(s));
  }
  EXPECT_EQ(*IntervalProductFromProto(agt::v1::INTERVAL_PRODUCT_UNSPECIFIED, "m"),
            agt::MatMulMethod::kRump);
  EXPECT_EQ(*RoundingModeFromProto(agt::v1::ROUNDING_MODE_UNSPECIFIED, "r"),
            agt::RoundingMode::kNearest);
  EXPECT_EQ(*StabilityRuleFromProto(agt::v1::STABILITY_RULE_UNSPECIFIED, "r"),
            agt::StabilityRule::kMargin);
  EXPECT_THAT(std::string(LossFromProto(agt::v1::LOSS_UNSPECIFIED, "x.loss").status().message()),
              HasSubstr("x.loss: must be set"));
  EXPECT_THAT(
      std::string(JobStateFromProto(agt::v1::JOB_STATE_UNSPECIFIED, "state").status().message()),
      HasSubstr("state: must be set"));
  EXPECT_THAT(
      std::string(
          JobStateFromProto(static_cast<agt::v1::JobState>(12), "state").status().message()),
      HasSubstr("state: unknown value 12"));
}

TEST(ModelConvert, RecordsBecomeApiMessages) {
  JobRecord job;
  job.id = "job-1";
  job.tenant = "t1";
  agt::v1::TrainingJobSpec spec = BaseSpec("ds-1");
  spec.add_budgets()->set_n(3);
  job.spec = spec.SerializeAsString();
  job.state = JobState::kFailed;
  job.error = "bounds diverged";
  job.progress.iteration = 7;
  job.progress.total_iterations = 10;
  job.progress.epoch = 1;
  job.progress.nominal_loss = 0.25;
  job.progress.total_width = {1.5, 2.5};
  job.progress.eta_seconds = 3;
  job.dropped_rows_per_epoch = 4;
  job.created_ms = 1'700'000'000'123;
  job.started_ms = 0;
  job.finished_ms = -1;  // before the epoch: floor division
  absl::StatusOr<agt::v1::Job> j = JobToProto(job);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->id(), "job-1");
  EXPECT_EQ(j->spec().budgets(0).n(), 3);
  EXPECT_EQ(j->state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_EQ(j->error(), "bounds diverged");
  EXPECT_EQ(j->progress().iteration(), 7);
  EXPECT_EQ(j->progress().total_width_size(), 2);
  EXPECT_EQ(j->progress().total_width(1), 2.5);
  EXPECT_EQ(j->dropped_rows_per_epoch(), 4);
  EXPECT_EQ(j->created().seconds(), 1'700'000'000);
  EXPECT_EQ(j->created().nanos(), 123'000'000);
  EXPECT_FALSE(j->has_started());
  EXPECT_EQ(j->finished().seconds(), -1);
  EXPECT_EQ(j->finished().nanos(), 999'000'000);
  const agt::v1::JobEvent ev = JobEventFromRecord(job);
  EXPECT_EQ(ev.state(), agt::v1::JOB_STATE_FAILED);
  EXPECT_EQ(ev.progress().epoch(), 1);
  EXPECT_EQ(ev.error(), "bounds diverged");
  job.spec = "\xff";
  EXPECT_EQ(JobToProto(job).status().code(), absl::StatusCode::kDataLoss);

  DatasetRecord ds;
  ds.id = "ds-1";
  ds.name = "n";
  ds.num_rows = 10;
  ds.num_features = 2;
  ds.num_classes = 2;
  ds.checksum = "abc";
  ds.size_bytes = 240;
  ds.created_ms = 5000;
  const agt::v1::Dataset d = DatasetToProto(ds);
  EXPECT_EQ(d.id(), "ds-1");
  EXPECT_EQ(d.num_rows(), 10);
  EXPECT_EQ(d.checksum(), "abc");
  EXPECT_EQ(d.created().seconds(), 5);
}

TEST(ModelConvert, ModelSummaryAndExportCarryEveryBox) {
  const Trained t = BinaryModel();
  absl::StatusOr<agt::v1::Model> m = ModelToProto(t.model);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->loss(), agt::v1::LOSS_BINARY_CROSS_ENTROPY);
  EXPECT_EQ(m->perturbation().kind(), agt::v1::PERTURBATION_KIND_REMOVAL);
  EXPECT_EQ(m->polynomial_degree(), 2);
  EXPECT_EQ(m->input_features(), 2);
  EXPECT_EQ(m->num_classes(), 2);
  EXPECT_FALSE(m->momentum_caveat());
  ASSERT_EQ(m->budgets_size(), 4);
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(m->budgets(j).budget().n(), t.model.boxes[j].budget.n);
    EXPECT_EQ(m->budgets(j).total_width(), t.model.boxes[j].total_width);
    EXPECT_EQ(m->budgets(j).max_width(), t.model.boxes[j].max_width);
  }
  absl::StatusOr<agt::Vector> nominal = ParametersFromProto(t.model.architecture, m->nominal());
  ASSERT_TRUE(nominal.ok());
  EXPECT_TRUE(SameBits(*nominal, t.model.nominal));

  absl::StatusOr<agt::v1::ExportModelResponse> e = ExportModelToProto(t.model);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->boxes_size(), 4);
  for (int j = 0; j < 4; ++j) {
    absl::StatusOr<agt::Vector> lo = ParametersFromProto(t.model.architecture, e->boxes(j).lower());
    absl::StatusOr<agt::Vector> hi = ParametersFromProto(t.model.architecture, e->boxes(j).upper());
    ASSERT_TRUE(lo.ok() && hi.ok());
    EXPECT_TRUE(SameBits(*lo, t.model.boxes[j].box.lower));
    EXPECT_TRUE(SameBits(*hi, t.model.boxes[j].box.upper));
  }
  EXPECT_TRUE(RegressionModel().model.spec.size() > 0);
  EXPECT_TRUE(ModelToProto(RegressionModel().model)->momentum_caveat());
}

TEST(ModelConvert, ConvolutionalModelsWithAFrozenPrefixRoundTrip) {
  agt::Conv2dParams conv;
  conv.in_channels = 1;
  conv.out_channels = 2;
  conv.kernel_h = 3;
  conv.kernel_w = 2;
  conv.stride_w = 2;
  conv.pad_h = 1;
  agt::ModelSpec spec;
  spec.input_shape = agt::Shape::Image(1, 4, 4);
  spec.frozen.layers = {agt::LayerSpec::Conv2d(conv), agt::LayerSpec::Relu()};
  spec.frozen.parameters = agt::Vector::LinSpaced(2 * 6 + 2, -0.5, 0.5);
  // [1, 4, 4] -> frozen [2, 4, 2] -> conv 1@1x1 [1, 4, 2] -> flatten 8 -> 3.
  spec.layers = {agt::LayerSpec::Conv2d([] {
                   agt::Conv2dParams c;
                   c.in_channels = 2;
                   c.out_channels = 1;
                   c.kernel_h = c.kernel_w = 1;
                   return c;
                 }()),
                 agt::LayerSpec::Flatten(), agt::LayerSpec::Dense(8, 3)};
  ASSERT_TRUE(spec.Validate().ok()) << spec.Validate();
  absl::StatusOr<agt::v1::ModelArchitecture> arch = ArchitectureToProto(spec);
  ASSERT_TRUE(arch.ok()) << arch.status();
  ASSERT_EQ(arch->input_shape_size(), 3);
  EXPECT_EQ(arch->frozen().layers(0).conv2d().stride_w(), 2);
  EXPECT_EQ(arch->frozen().layers(0).conv2d().pad_h(), 1);
  EXPECT_EQ(arch->frozen().parameters_size(), 14);
  EXPECT_TRUE(arch->layers(1).has_flatten());
  absl::StatusOr<agt::ModelSpec> back = ArchitectureFromProto(*arch);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Describe(), spec.Describe());
  EXPECT_EQ(back->layers, spec.layers);
  EXPECT_EQ(back->frozen.layers, spec.frozen.layers);
  EXPECT_TRUE(SameBits(back->frozen.parameters, spec.frozen.parameters));
  // Conv weights travel as out x (in_channels*kh*kw), as torch's reshape(O, -1).
  const agt::Vector theta = agt::InitParameters(spec, 3);
  const agt::v1::Parameters p = ParametersToProto(spec, theta);
  EXPECT_EQ(p.layers(0).weight().rows(), 1);
  EXPECT_EQ(p.layers(0).weight().cols(), 2);
  EXPECT_TRUE(SameBits(*ParametersFromProto(spec, p), theta));
  Trained t = BinaryModel();
  t.model.architecture = spec;
  t.model.nominal = theta;
  t.model.boxes.clear();
  absl::StatusOr<agt::v1::Model> model = ModelToProto(t.model);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->architecture().frozen().parameters_size(), 14);
}

TEST(ModelConvert, ShapedArchitecturesAreCheckedFieldByField) {
  agt::v1::ModelArchitecture arch;
  agt::v1::Conv2dLayer* conv = arch.add_layers()->mutable_conv2d();
  conv->set_in_channels(1);
  conv->set_out_channels(2);
  conv->set_kernel_h(3);
  conv->set_kernel_w(3);
  arch.add_layers()->mutable_flatten();
  arch.add_layers()->mutable_dense()->set_in(8);
  arch.mutable_layers(2)->mutable_dense()->set_out(2);
  arch.add_input_shape(1);
  arch.add_input_shape(4);
  arch.add_input_shape(4);
  ASSERT_TRUE(ArchitectureFromProto(arch).ok()) << ArchitectureFromProto(arch).status();
  agt::v1::ModelArchitecture bad = arch;
  bad.mutable_layers(0)->mutable_conv2d()->set_kernel_h(0);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.layers[0].conv2d.kernel_h: 0 must be in [1, 4096]"));
  bad = arch;
  bad.mutable_layers(0)->mutable_conv2d()->set_pad_w(-2);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.layers[0].conv2d.pad_w: -2 must be in [0, 4096]"));
  bad = arch;
  bad.add_input_shape(2);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.input_shape: 4 dimensions; give [D] or [C, H, W]"));
  bad = arch;
  bad.set_input_shape(2, 0);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.input_shape[2]: 0 must be in [1, 65535]"));
  bad = arch;
  bad.set_input_shape(0, 2);  // in_channels 1 does not match
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("in_channels=1"));
  bad = arch;
  bad.mutable_frozen();
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.frozen.layers: a frozen prefix needs at least one layer"));
  bad = arch;
  bad.mutable_frozen()->add_layers()->mutable_relu();
  bad.mutable_frozen()->add_parameters(NAN);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.frozen.parameters[0]: must be finite"));
  bad = arch;
  bad.mutable_frozen()->add_layers();
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("architecture.frozen.layers[0]: set dense, conv2d, relu or flatten"));
  bad = arch;
  *bad.mutable_frozen()->add_layers()->mutable_conv2d() = arch.layers(0).conv2d();
  bad.mutable_frozen()->mutable_layers(0)->mutable_conv2d()->set_kernel_h(1);
  bad.mutable_frozen()->mutable_layers(0)->mutable_conv2d()->set_kernel_w(1);
  bad.mutable_frozen()->add_parameters(1.0);
  EXPECT_THAT(std::string(ArchitectureFromProto(bad).status().message()),
              HasSubstr("frozen layers have 4 parameters, got 1"));
}

TEST(ModelConvert, ModelsNameTheirBoundOptionsExplicitly) {
  Trained t = BinaryModel();
  agt::v1::TrainingJobSpec spec;
  ASSERT_TRUE(spec.ParseFromString(t.model.spec));
  // Defaults read as their values; a legacy bound method as IBP + product.
  for (auto [method, product, want] :
       {std::tuple{agt::v1::BOUND_METHOD_UNSPECIFIED, agt::v1::INTERVAL_PRODUCT_UNSPECIFIED,
                   agt::v1::INTERVAL_PRODUCT_RUMP},
        std::tuple{agt::v1::BOUND_METHOD_IBP, agt::v1::INTERVAL_PRODUCT_NGUYEN,
                   agt::v1::INTERVAL_PRODUCT_NGUYEN},
        std::tuple{agt::v1::BOUND_METHOD_INTERVAL_EXACT, agt::v1::INTERVAL_PRODUCT_UNSPECIFIED,
                   agt::v1::INTERVAL_PRODUCT_EXACT}}) {
    spec.set_bound_method(method);
    spec.set_interval_product(product);
    t.model.spec = spec.SerializeAsString();
    absl::StatusOr<agt::v1::Model> m = ModelToProto(t.model);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->bound_method(), agt::v1::BOUND_METHOD_IBP);
    EXPECT_EQ(m->interval_product(), want);
    EXPECT_EQ(m->rounding(), agt::v1::ROUNDING_MODE_NEAREST);
  }
}

// ---- model cache over a real store

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "agt-certifier-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Stores a model for `tenant` through the job path and returns its id.
std::string StoreModel(Store* store, const std::string& tenant, const Trained& t) {
  DatasetRecord ds;
  ds.tenant = tenant;
  ds.name = "moons";
  absl::StatusOr<DatasetRecord> d = store->InsertDataset(ds, t.raw);
  EXPECT_TRUE(d.ok()) << d.status();
  JobRecord job;
  job.tenant = tenant;
  job.dataset_id = d->id;
  job.name = "j";
  job.spec = t.model.spec;
  absl::StatusOr<JobRecord> j = store->InsertJob(job);
  EXPECT_TRUE(j.ok()) << j.status();
  absl::StatusOr<std::optional<JobRecord>> claimed = store->ClaimNextQueuedJob();
  EXPECT_TRUE(claimed.ok() && claimed->has_value());
  ModelRecord m = t.model;
  m.id.clear();
  m.tenant = tenant;
  m.job_id = j->id;
  m.dataset_id = d->id;
  absl::StatusOr<std::string> id = store->CompleteJob(j->id, m, JobProgressRecord{});
  EXPECT_TRUE(id.ok()) << id.status();
  return *id;
}

TEST(ModelCache, HitsEvictsAndNeverCachesErrors) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.File("agt.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  const Trained t = BinaryModel();
  const std::string a = StoreModel(store->get(), "t1", t);
  const std::string b = StoreModel(store->get(), "t1", t);

  ModelCache cache(1);
  absl::StatusOr<std::shared_ptr<const ModelRecord>> ma = cache.Get(store->get(), "t1", a);
  ASSERT_TRUE(ma.ok()) << ma.status();
  EXPECT_EQ((*ma)->id, a);
  EXPECT_TRUE(SameBits((*ma)->nominal, t.model.nominal));
  EXPECT_EQ(cache.misses(), 1);
  absl::StatusOr<std::shared_ptr<const ModelRecord>> again = cache.Get(store->get(), "t1", a);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(again->get(), ma->get());  // the same object, not a re-read
  absl::StatusOr<std::shared_ptr<const ModelRecord>> mb = cache.Get(store->get(), "t1", b);
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(cache.size(), 1u);
  // `a` was evicted; the old pointer stays valid.
  EXPECT_EQ((*ma)->id, a);
  absl::StatusOr<std::shared_ptr<const ModelRecord>> a2 = cache.Get(store->get(), "t1", a);
  EXPECT_EQ(cache.misses(), 3);
  EXPECT_NE(a2->get(), ma->get());

  // Another tenant's id is NotFound and is not cached.
  absl::StatusOr<std::shared_ptr<const ModelRecord>> foreign = cache.Get(store->get(), "t2", a);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.Get(store->get(), "t2", a).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get(store->get(), "t1", "mdl-nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelCache, ConcurrentReadersShareEntries) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.File("agt.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  const Trained t = BinaryModel();
  const std::vector<std::string> ids = {StoreModel(store->get(), "t1", t),
                                        StoreModel(store->get(), "t1", t),
                                        StoreModel(store->get(), "t1", t)};
  ModelCache cache(2);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 100; ++i) {
        const std::string& id = ids[(i + k) % 3];
        absl::StatusOr<std::shared_ptr<const ModelRecord>> m = cache.Get(store->get(), "t1", id);
        if (!m.ok() || (*m)->id != id || (*m)->boxes.size() != 4) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(cache.hits() + cache.misses(), 400);
  EXPECT_LE(cache.size(), 2u);
}

}  // namespace
}  // namespace agt::server
