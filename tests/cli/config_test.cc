// The `agt train` config reader: field mapping onto the core's TrainConfig,
// strictness (unknown keys, types, ranges, with the field path in the
// message), data preparation, and the init.json parameter layout.
#include "core/cli/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/match.h"
#include "core/cli/results.h"

namespace agt::cli {
namespace {

using nlohmann::json;

json Base() {
  return json::parse(R"({
    "dataset": {"generator": {"type": "moons", "n": 120, "seed": 1}},
    "model": {"hidden": [4]},
    "loss": "binary_cross_entropy",
    "batch_size": 20,
    "optimizer": {"learning_rate": 0.1},
    "perturbation": {"kind": "removal"},
    "budgets": [1, 3]
  })");
}

// The error message of parsing `config`, or "" if it parses.
std::string ErrorOf(const json& config) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(config, "");
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ParseRunConfigTest, MapsFieldsAndDefaults) {
  json j = Base();
  j["optimizer"] = {{"learning_rate", 0.3},
                    {"lr_decay", 0.1},
                    {"lr_min", 0.01},
                    {"momentum", 0.9},
                    {"nesterov", true}};
  j["clip_gamma"] = 0.5;
  j["bound"] = {{"matmul", "exact"}};
  j["fragment_size"] = 16;
  j["seed"] = 7;
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "/base");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.loss, LossKind::kBinaryCrossEntropy);
  EXPECT_EQ(c->train.batch_size, 20);
  EXPECT_EQ(c->train.epochs, 1);
  EXPECT_DOUBLE_EQ(c->train.optimizer.learning_rate, 0.3);
  EXPECT_DOUBLE_EQ(c->train.optimizer.lr_decay, 0.1);
  EXPECT_TRUE(c->train.optimizer.momentum_enabled);
  EXPECT_TRUE(c->train.optimizer.nesterov);
  EXPECT_EQ(c->train.bounds.interval.product, MatMulMethod::kExact);
  EXPECT_EQ(c->train.fragment_size, 16);
  EXPECT_EQ(c->seed, 7u);
  ASSERT_EQ(c->train.budgets.size(), 2u);
  EXPECT_EQ(c->train.budgets[1].n, 3);
  EXPECT_EQ(c->polynomial_degree, 1);
  EXPECT_EQ(c->model.hidden, std::vector<int>{4});
}

TEST(ParseRunConfigTest, RemovedRowsAreRowsRemovedInPlace) {
  json j = Base();
  j["removed_rows"] = {7, 0, 45};
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.removed_rows, (std::vector<int64_t>{7, 0, 45}));
  j["removed_rows"] = {7, -1};
  EXPECT_EQ(ErrorOf(j), "removed_rows[1]: must be >= 0, got -1");
  j["removed_rows"] = "7";
  EXPECT_TRUE(absl::StrContains(ErrorOf(j), "removed_rows: expected an array")) << ErrorOf(j);
  // Against the data: the trainer's rule, with its message.
  j["removed_rows"] = {3, 120};
  c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  c->source = "cfg.json";
  absl::StatusOr<PreparedRun> run = PrepareRun(*c);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().message(),
            "cfg.json: removed_rows[1]: 120 is outside the dataset's 120 rows (0..119)");
}

TEST(ParseRunConfigTest, PoisoningBudgetsCountFeatureAndLabelRows) {
  json j = Base();
  j["perturbation"] = {{"kind", "poisoning"}, {"epsilon", 0.1}, {"labels", {{"flip", true}}}};
  j["budgets"] = json::parse(R"([2, {"features": 3}, {"labels": 1}])");
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<Budget>& b = c->train.budgets;
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].n, 2);
  EXPECT_EQ(b[0].label_n, 2);
  EXPECT_EQ(b[1].n, 3);
  EXPECT_EQ(b[1].label_n, 0);
  EXPECT_EQ(b[2].n, 0);
  EXPECT_EQ(b[2].label_n, 1);
  EXPECT_TRUE(c->train.perturbation.label.enabled);
  EXPECT_EQ(c->train.perturbation.label.target_class, -1);

  // Labels only: a number budget poisons labels, not features.
  j["perturbation"] = {{"kind", "poisoning"}, {"labels", {{"target_class", 1}}}};
  j["budgets"] = {4};
  c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.budgets[0].n, 0);
  EXPECT_EQ(c->train.budgets[0].label_n, 4);
  EXPECT_EQ(c->train.perturbation.label.target_class, 1);
}

TEST(ParseRunConfigTest, ErrorsNameTheFieldAndTheProblem) {
  json j = Base();
  j["optimizer"]["learning_rate"] = 0;
  EXPECT_EQ(ErrorOf(j), "optimizer.learning_rate: must be > 0, got 0");
  j = Base();
  j["optimizer"]["momentum"] = 1.5;
  EXPECT_EQ(ErrorOf(j), "optimizer.momentum: must be in [0, 1), got 1.5");
  j = Base();
  j["budgets"] = {1, -2};
  EXPECT_EQ(ErrorOf(j), "budgets[1]: must be >= 0, got -2");
  j = Base();
  j["budgets"] = {1.5};
  EXPECT_NE(ErrorOf(j).find("budgets[0]: expected an integer"), std::string::npos) << ErrorOf(j);
  j = Base();
  j["budgets"] = json::array();
  EXPECT_NE(ErrorOf(j).find("budgets: expected a non-empty array"), std::string::npos);
  j = Base();
  j["perturbation"] = {{"kind", "poisoning"}, {"epsilon", 0.1}};
  j["budgets"] = {21};
  EXPECT_NE(ErrorOf(j).find("budgets[0]: poisons 21 rows per batch"), std::string::npos)
      << ErrorOf(j);
  j = Base();
  j["perturbation"] = {{"kind", "poisoning"}};
  EXPECT_NE(ErrorOf(j).find("needs epsilon > 0 or a label perturbation"), std::string::npos);
  j = Base();
  j["perturbation"] = {{"kind", "deletion"}};
  EXPECT_NE(ErrorOf(j).find("perturbation.kind: unknown kind \"deletion\""), std::string::npos);
  j = Base();
  j["loss"] = "mse";
  j["perturbation"] = {{"kind", "poisoning"}, {"labels", {{"flip", true}}}};
  EXPECT_NE(ErrorOf(j).find("perturbation.labels.flip: only for classification"), std::string::npos)
      << ErrorOf(j);
  j = Base();
  j["model"] = {{"hidden", {4}}, {"layers", json::array()}};
  EXPECT_NE(ErrorOf(j).find("exactly one of \"layers\", \"hidden\" or \"onnx\""), std::string::npos);
  j = Base();
  j["model"] = {{"layers", json::parse(R"([{"type": "dense", "in": 2, "out": 3},
                                           {"type": "relu"}])")}};
  EXPECT_NE(ErrorOf(j).find("model.layers"), std::string::npos) << ErrorOf(j);
  j = Base();
  j["model"] = {{"layers", json::parse(R"([{"type": "conv", "in": 2, "out": 1}])")}};
  EXPECT_NE(ErrorOf(j).find("model.layers[0].type: unknown layer type \"conv\""),
            std::string::npos);
  j = Base();
  j["dataset"]["csv"] = "x.csv";
  EXPECT_NE(ErrorOf(j).find("exactly one of \"csv\""), std::string::npos);
  j = Base();
  j["clip_gamma"] = -1;
  EXPECT_NE(ErrorOf(j).find("clip_gamma: must be > 0"), std::string::npos);
  j = Base();
  j["dataset"]["generator"]["dim"] = 3;  // a blobs key on moons
  EXPECT_NE(ErrorOf(j).find("dataset.generator.dim: unknown key"), std::string::npos);
  j = Base();
  j["optimizer"]["nesterov"] = "yes";
  EXPECT_NE(ErrorOf(j).find("optimizer.nesterov: expected true or false"), std::string::npos);
}

TEST(ParseRunConfigTest, NullMeansAbsent) {
  json j = Base();
  j["clip_gamma"] = nullptr;
  j["init"] = nullptr;
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->train.clip_gamma.has_value());
  EXPECT_TRUE(c->init_path.empty());
}

TEST(PrepareRunTest, ExpandsFeaturesAndBuildsTheModel) {
  json j = Base();
  j["polynomial_degree"] = 3;
  j["dataset"]["test_fraction"] = 0.25;
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<PreparedRun> run = PrepareRun(*c);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->raw_dim, 2);
  EXPECT_EQ(run->train_data.dim(), 9);
  EXPECT_EQ(run->train_data.size(), 90);
  ASSERT_TRUE(run->test_data.has_value());
  EXPECT_EQ(run->test_data->size(), 30);
  EXPECT_EQ(run->test_data->dim(), 9);
  EXPECT_EQ(run->train.model.Describe(), "9-4-1 (ReLU)");
  EXPECT_EQ(run->init.size(), run->train.model.NumParameters());
  // The same seed gives the same initial parameters.
  absl::StatusOr<PreparedRun> again = PrepareRun(*c);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(run->init, again->init);
}

TEST(PrepareRunTest, CrossEntropyTakesClassesFromTheData) {
  json j = Base();
  j["dataset"] = json::parse(
      R"({"generator": {"type": "blobs", "n": 90, "dim": 3, "classes": 4, "seed": 2}})");
  j["loss"] = "cross_entropy";
  j["perturbation"] = {{"kind", "poisoning"}, {"labels", {{"target_class", 4}}}};
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<PreparedRun> run = PrepareRun(*c);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("target_class"), std::string::npos) << run.status();
  j["perturbation"]["labels"]["target_class"] = 3;
  c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  run = PrepareRun(*c);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->train.model.Describe(), "3-4-4 (ReLU)");
  EXPECT_EQ(run->train_data.num_classes, 4);
}

TEST(PrepareRunTest, BatchLargerThanTheDataIsNamed) {
  json j = Base();
  j["batch_size"] = 500;
  j["budgets"] = {1};
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, "");
  ASSERT_TRUE(c.ok()) << c.status();
  c->source = "cfg.json";
  absl::StatusOr<PreparedRun> run = PrepareRun(*c);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().message(), "cfg.json: batch_size: 500 exceeds the 120 training rows");
}

TEST(PrepareRunTest, InitFileIsReadInTheGoldenLayout) {
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / "agt_config_test_init";
  std::filesystem::create_directories(dir);
  json j = Base();
  j["model"] = {{"hidden", json::array()}};
  j["init"] = "init.json";
  std::ofstream(dir / "init.json")
      << R"({"layers": [{"weight": [[0.5, -0.25]], "bias": [0.125]}]})";
  absl::StatusOr<RunConfig> c = ParseRunConfig(j, dir.string());
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<PreparedRun> run = PrepareRun(*c);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->init, (Vector(3) << 0.5, -0.25, 0.125).finished());

  std::ofstream(dir / "init.json") << R"({"layers": [{"weight": [[0.5]], "bias": [0.125]}]})";
  run = PrepareRun(*c);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("layers[0].weight[0]: expected 2 numbers, got 1"),
            std::string::npos)
      << run.status();
  std::filesystem::remove_all(dir);
}

TEST(ParametersJsonTest, RoundTripsTheFlatLayout) {
  const ModelSpec spec = ModelSpec::Mlp({3, 2, 2});
  Vector theta(spec.NumParameters());
  for (Index i = 0; i < theta.size(); ++i) theta[i] = 0.1 * static_cast<double>(i) - 0.7;
  const json j = ParametersToJson(spec, theta);
  // W of the first layer is out x in = 2 x 3, row-major in the flat vector.
  EXPECT_DOUBLE_EQ(j["layers"][0]["weight"][1][0].get<double>(), theta[3]);
  EXPECT_DOUBLE_EQ(j["layers"][0]["bias"][1].get<double>(), theta[7]);
  absl::StatusOr<Vector> back = ParametersFromJson(spec, j, "p");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, theta);
  json bad = j;
  bad["layers"][1]["bias"][0] = "x";
  back = ParametersFromJson(spec, bad, "p");
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().message(), "p.layers[1].bias[0]: expected a number, got a string");
}

TEST(ReadJsonFileTest, SyntaxErrorsNameFileAndLine) {
  const std::string path = testing::TempDir() + "/agt_config_test_bad.json";
  std::ofstream(path) << "{\n  \"a\": [1, 2,\n}\n";
  absl::StatusOr<json> j = ReadJsonFile(path);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find(path), std::string::npos);
  EXPECT_NE(j.status().message().find("line 3"), std::string::npos) << j.status();
  EXPECT_EQ(ReadJsonFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(path);
}

TEST(BudgetOrderTest, SortsByRowsAllowedFor) {
  PerturbationModel p;
  p.kind = PerturbationKind::kBoundedPoisoning;
  const std::vector<Budget> budgets = {{5, 0}, {1, 1}, {0, 1}, {2, 2}};
  EXPECT_EQ(BudgetOrder(budgets, p), (std::vector<int>{2, 1, 3, 0}));
  p.paired = true;  // k = max: {5}, {1}, {1}, {2}
  EXPECT_EQ(BudgetOrder(budgets, p), (std::vector<int>{2, 1, 3, 0}));
}

}  // namespace
}  // namespace agt::cli

namespace agt::cli {
namespace {

TEST(JsonNumberTest, NonFiniteValuesRoundTripAsStrings) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(JsonNumber(1.5), json(1.5));
  EXPECT_EQ(JsonNumber(inf), json("inf"));
  EXPECT_EQ(JsonNumber(-inf), json("-inf"));
  EXPECT_EQ(JsonNumber(std::nan("")), json("nan"));
  double v = 0;
  ASSERT_TRUE(NumberFromJson(json("-inf"), "x", &v).ok());
  EXPECT_EQ(v, -inf);
  ASSERT_TRUE(NumberFromJson(json("nan"), "x", &v).ok());
  EXPECT_TRUE(std::isnan(v));
  EXPECT_FALSE(NumberFromJson(json("infinity"), "x", &v).ok());
}

TEST(CertificateJsonTest, InfiniteBoundsCertifyNothing) {
  // A box that holds every parameter: no row may be reported stable.
  const ModelSpec spec = ModelSpec::Mlp({2, 3, 1});
  const Vector theta = Vector::Constant(spec.NumParameters(), 0.5);
  ParameterBox box = ParameterBox::Point(theta);
  box.lower.setConstant(-std::numeric_limits<double>::infinity());
  box.upper.setConstant(std::numeric_limits<double>::infinity());
  Dataset data;
  data.x = Matrix::Constant(4, 2, 1.0);
  data.y = Vector::Ones(4);
  data.num_classes = 2;
  const json cert = CertificateJson(spec, LossKind::kBinaryCrossEntropy, theta, box, data,
                                    MatMulMethod::kRump, 0.0, /*rows=*/true);
  EXPECT_EQ(cert["stable_fraction"].get<double>(), 0.0);
  EXPECT_EQ(cert["accuracy_worst"].get<double>(), 0.0);
  EXPECT_EQ(cert["accuracy_nominal"].get<double>(), 1.0);
  for (const json& s : cert["stable"]) EXPECT_FALSE(s.get<bool>());
}

}  // namespace
}  // namespace agt::cli

// ---- one validation: the core's cases (tests/core/train_config_cases.h) as
// `agt` configs get the core's verdict and, where JSON can say the value,
// its very message.

#include "tests/core/train_config_cases.h"

namespace agt::cli {
namespace {

json OptimizerJson(const OptimizerConfig& o) {
  return {{"learning_rate", o.learning_rate},
          {"lr_decay", o.lr_decay},
          {"lr_min", o.lr_min},
          {"l1", o.l1},
          {"l2", o.l2},
          {"momentum", o.momentum},
          {"dampening", o.dampening},
          {"nesterov", o.nesterov}};
}

// The perturbation, clipping and budgets of `c` in the config's form.
void SetTraining(const TrainConfig& c, json* j) {
  const PerturbationModel& p = c.perturbation;
  json perturbation = {{"kind", PerturbationKindName(p.kind)}};
  if (p.epsilon != 0.0) perturbation["epsilon"] = p.epsilon;
  if (p.paired) perturbation["paired"] = true;
  if (p.label.enabled) {
    perturbation["labels"] = p.label.target_class >= 0
                                 ? json{{"target_class", p.label.target_class}}
                                 : json{{"flip", true}};
  }
  (*j)["perturbation"] = perturbation;
  if (c.clip_gamma.has_value()) (*j)["clip_gamma"] = *c.clip_gamma;
  json budgets = json::array();
  for (const Budget& b : c.budgets) {
    if (p.kind == PerturbationKind::kBoundedPoisoning) {
      budgets.push_back({{"features", b.n}, {"labels", b.label_n}});
    } else {
      budgets.push_back(b.n);
    }
  }
  (*j)["budgets"] = budgets;
}

// Parsing and preparing (which runs TrainConfig::Validate on the data).
absl::Status Verdict(const json& config) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(config, "");
  if (!c.ok()) return c.status();
  return PrepareRun(*c).status();
}

TEST(OneValidationTest, OptimizerCasesGetTheCoresVerdictAndMessage) {
  for (const auto& c : train_config_cases::OptimizerCases()) {
    SCOPED_TRACE(c.name);
    json j = Base();
    j["optimizer"] = OptimizerJson(c.optimizer);
    const absl::Status core = c.optimizer.Validate();
    if (train_config_cases::AllFinite(c.optimizer)) {
      EXPECT_EQ(ErrorOf(j), core.ok() ? "" : std::string(core.message()));
    } else {
      // JSON has no nan or inf: the reader refuses them, naming the field.
      EXPECT_EQ(ErrorOf(j).rfind(c.rejected_field + ": ", 0), 0u) << ErrorOf(j);
    }
    EXPECT_EQ(Verdict(j).ok(), c.rejected_field.empty()) << Verdict(j);
  }
}

TEST(OneValidationTest, TrainingCasesGetTheCoresVerdict) {
  for (const auto& c : train_config_cases::TrainingCases()) {
    SCOPED_TRACE(c.name);
    TrainConfig config = train_config_cases::BaseConfig();
    c.change(&config);
    json j = Base();
    SetTraining(config, &j);
    const absl::Status verdict = Verdict(j);
    ASSERT_EQ(verdict.ok(), c.rejected_field.empty()) << verdict;
    if (verdict.ok()) continue;
    // The config's own words for budgets differ ("budgets[0].labels"); the
    // field it names is the same up to its last part.
    const size_t bracket = c.rejected_field.find(']');
    const std::string root = c.rejected_field.substr(
        0, c.rejected_field.find('.', bracket == std::string::npos ? 0 : bracket));
    EXPECT_NE(std::string(verdict.message()).find(root), std::string::npos) << verdict;
  }
}

}  // namespace
}  // namespace agt::cli
