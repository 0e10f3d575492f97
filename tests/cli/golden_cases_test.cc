// Every golden case under tests/data/goldens (except units/) is run with the
// core and must match the reference's expected.json within the README's
// tolerances; where the case has trace.json, the traced runs must agree step
// by step. Also checks that the comparison itself catches disagreements.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/cli/config.h"
#include "core/cli/golden.h"

namespace agt::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kGoldens = std::string(AGT_TEST_DATA_DIR) + "/goldens";

std::vector<std::string> CaseDirs() {
  std::vector<std::string> out;
  if (!fs::is_directory(kGoldens)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(kGoldens)) {
    if (e.is_directory() && e.path().filename() != "units" && fs::exists(e.path() / "case.json")) {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

json ReadOrDie(const fs::path& path) {
  absl::StatusOr<json> j = ReadJsonFile(path.string());
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : json();
}

class GoldenCaseTest : public testing::TestWithParam<std::string> {};

TEST_P(GoldenCaseTest, EveryRunMatchesTheReferenceWithinTolerances) {
  const fs::path dir = fs::path(kGoldens) / GetParam();
  const bool has_trace = fs::exists(dir / "trace.json");
  GoldenOptions options;
  options.trace = has_trace;
  options.threads = 2;
  absl::StatusOr<json> result = RunGoldenCase(dir.string(), options);
  ASSERT_TRUE(result.ok()) << result.status();

  // Every run of case.json produced a result.
  const json case_json = ReadOrDie(dir / "case.json");
  for (const json& run : case_json["runs"]) {
    EXPECT_TRUE((*result)["runs"].contains(run["name"].get<std::string>())) << run["name"];
  }
  ASSERT_TRUE(fs::exists(dir / "expected.json")) << "no expected.json in " << dir;
  const json expected = ReadOrDie(dir / "expected.json");
  const json trace = has_trace ? ReadOrDie(dir / "trace.json") : json();
  const GoldenReport report = CompareGolden(*result, expected, has_trace ? &trace : nullptr);
  EXPECT_TRUE(report.pass) << report.Format();
  EXPECT_EQ(report.runs.size(), expected["runs"].size());

  if (has_trace) {
    // Each traced run was compared, and agreed at every step.
    for (auto it = trace["runs"].begin(); it != trace["runs"].end(); ++it) {
      const auto rc = std::find_if(report.runs.begin(), report.runs.end(),
                                   [&](const RunComparison& r) { return r.name == it.key(); });
      ASSERT_NE(rc, report.runs.end()) << it.key();
      EXPECT_EQ(rc->first_trace_divergence, 0) << it.key() << "\n" << report.Format();
      EXPECT_EQ(rc->trace_steps, static_cast<int>(it.value().size()));
    }
  }
}

// The device backend's code (core/cuda/) on every golden case: the host
// engine always (the per-parameter arithmetic the GPU runs), the CUDA engine
// where a GPU is visible; each gives the CPU backend's parameters and bounds
// bit for bit, so it matches the reference wherever the CPU backend does.
TEST_P(GoldenCaseTest, TheDeviceBackendGivesTheCpuBackendsResultBitForBit) {
  const fs::path dir = fs::path(kGoldens) / GetParam();
  GoldenOptions cpu_options;
  cpu_options.threads = 2;
  cpu_options.backend = BackendChoice::kCpu;
  absl::StatusOr<json> cpu = RunGoldenCase(dir.string(), cpu_options);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  std::vector<BackendChoice> device = {BackendChoice::kHostEngine};
  if (ProbeCuda().devices > 0) device.push_back(BackendChoice::kCuda);
  for (BackendChoice choice : device) {
    GoldenOptions options = cpu_options;
    options.backend = choice;
    absl::StatusOr<json> result = RunGoldenCase(dir.string(), options);
    ASSERT_TRUE(result.ok()) << result.status();
    for (auto it = (*cpu)["runs"].begin(); it != (*cpu)["runs"].end(); ++it) {
      for (const char* field : {"nominal", "lower", "upper"}) {
        EXPECT_EQ((*result)["runs"][it.key()][field], it.value()[field])
            << BackendChoiceName(choice) << ", run " << it.key() << ": " << field;
      }
    }
  }
}

std::string CaseName(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenCaseTest, testing::ValuesIn(CaseDirs()), CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenCaseTest);

TEST(GoldenCasesTest, TheShippedCasesAreFound) {
  EXPECT_GE(CaseDirs().size(), 7u) << "golden cases missing under " << kGoldens;
}

// --- The comparison must catch what it claims to catch. ---

class GoldenCompareTest : public testing::Test {
 protected:
  void SetUp() override {
    const fs::path dir = fs::path(kGoldens) / "moons_linear";
    GoldenOptions options;
    options.run = "unlearn_k5";
    options.trace = true;
    options.threads = 1;
    absl::StatusOr<json> r = RunGoldenCase(dir.string(), options);
    ASSERT_TRUE(r.ok()) << r.status();
    result_ = *r;
    json e = ReadOrDie(dir / "expected.json");
    expected_["runs"]["unlearn_k5"] = e["runs"]["unlearn_k5"];
    trace_ = ReadOrDie(dir / "trace.json");
  }

  json result_;
  json expected_;
  json trace_;
};

TEST_F(GoldenCompareTest, UnchangedResultPasses) {
  const GoldenReport report = CompareGolden(result_, expected_, &trace_);
  EXPECT_TRUE(report.pass) << report.Format();
  ASSERT_EQ(report.runs.size(), 1u);
  EXPECT_EQ(report.runs[0].first_trace_divergence, 0);
}

TEST_F(GoldenCompareTest, BoundOffByMoreThanTheToleranceFails) {
  json& w = result_["runs"]["unlearn_k5"]["upper"][0]["weight"][0][2];
  w = w.get<double>() * (1 + 1e-7);
  const GoldenReport report = CompareGolden(result_, expected_);
  EXPECT_FALSE(report.pass);
  EXPECT_GT(report.runs[0].max_rel_parameters, 5e-8);
}

TEST_F(GoldenCompareTest, RoundingLevelDifferencesPass) {
  json& w = result_["runs"]["unlearn_k5"]["lower"][0]["bias"][0];
  w = w.get<double>() * (1 + 1e-13);
  EXPECT_TRUE(CompareGolden(result_, expected_).pass);
}

TEST_F(GoldenCompareTest, AFlippedStableFlagFails) {
  json& test = result_["runs"]["unlearn_k5"]["test"];
  // Pick a row far from ambiguity: both logit bounds well away from zero.
  size_t row = 0;
  for (; row < test["stable"].size(); ++row) {
    const double l = test["logits_lower"][row][0].get<double>();
    const double u = test["logits_upper"][row][0].get<double>();
    if (std::min(std::abs(l), std::abs(u)) > 1e-3) break;
  }
  ASSERT_LT(row, test["stable"].size());
  test["stable"][row] = !test["stable"][row].get<bool>();
  const GoldenReport report = CompareGolden(result_, expected_);
  EXPECT_FALSE(report.pass);
  EXPECT_EQ(report.runs[0].stable_mismatches, 1);
}

TEST_F(GoldenCompareTest, AccuracyOffByOneRowFails) {
  json& acc = result_["runs"]["unlearn_k5"]["test"]["accuracy_worst"];
  acc = acc.get<double>() + 1.0 / 500;
  EXPECT_FALSE(CompareGolden(result_, expected_).pass);
}

TEST_F(GoldenCompareTest, TraceDivergenceReportsTheFirstStep) {
  json& step = result_["runs"]["unlearn_k5"]["trace"][6]["nominal"][0]["bias"][0];
  step = step.get<double>() + 1e-6;
  const GoldenReport report = CompareGolden(result_, expected_, &trace_);
  EXPECT_FALSE(report.pass);
  EXPECT_EQ(report.runs[0].first_trace_divergence, 7);
}

TEST_F(GoldenCompareTest, AMissingRunFails) {
  expected_["runs"]["no_such_run"] = expected_["runs"]["unlearn_k5"];
  EXPECT_FALSE(CompareGolden(result_, expected_).pass);
}

// --- Mapping of case.json runs onto the core. ---

TEST(ResolveGoldenRunTest, RunKeysOverrideCaseKeysAndDefaultsApply) {
  const json case_json = json::parse(R"({
    "model": [{"type": "dense", "in": 3, "out": 4}, {"type": "relu"},
              {"type": "dense", "in": 4, "out": 5}],
    "loss": "cross_entropy", "batch_size": 50, "n_epochs": 2, "learning_rate": 0.1,
    "clip_gamma": 0.5,
    "runs": [
      {"name": "p", "mode": "poisoning", "k_poison": 2, "label_k_poison": 3, "epsilon": 0.01,
       "poison_target_idx": 4, "paired_poison": true, "learning_rate": 0.2,
       "optimizer": "SGDM", "optimizer_kwargs": {"momentum": 0.9, "nesterov": true},
       "bound_model": {"type": "interval", "interval_matmul": "exact"}, "fragsize": 7},
      {"name": "u", "mode": "unlearning", "k_unlearn": 5, "clip_gamma": null},
      {"name": "q", "mode": "privacy", "k_private": 1},
      {"name": "t", "mode": "poisoning", "label_k_poison": 1, "poison_target_idx": -1}
    ]})");
  std::vector<std::string> warnings;
  absl::StatusOr<GoldenRun> p = ResolveGoldenRun(case_json, 0, &warnings);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "p");
  EXPECT_EQ(p->num_classes, 5);
  const TrainConfig& c = p->config;
  EXPECT_EQ(c.loss, LossKind::kCrossEntropy);
  EXPECT_EQ(c.batch_size, 50);
  EXPECT_EQ(c.epochs, 2);
  EXPECT_DOUBLE_EQ(c.optimizer.learning_rate, 0.2);
  EXPECT_TRUE(c.optimizer.momentum_enabled);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_EQ(c.bounds.interval.product, MatMulMethod::kExact);
  EXPECT_EQ(c.fragment_size, 7);
  ASSERT_TRUE(c.clip_gamma.has_value());
  EXPECT_DOUBLE_EQ(*c.clip_gamma, 0.5);
  EXPECT_EQ(c.perturbation.kind, PerturbationKind::kBoundedPoisoning);
  EXPECT_DOUBLE_EQ(c.perturbation.epsilon, 0.01);
  EXPECT_TRUE(c.perturbation.paired);
  EXPECT_TRUE(c.perturbation.label.enabled);
  EXPECT_EQ(c.perturbation.label.target_class, 4);
  ASSERT_EQ(c.budgets.size(), 1u);
  EXPECT_EQ(c.budgets[0].n, 2);
  EXPECT_EQ(c.budgets[0].label_n, 3);

  absl::StatusOr<GoldenRun> u = ResolveGoldenRun(case_json, 1, &warnings);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->config.perturbation.kind, PerturbationKind::kRemoval);
  EXPECT_EQ(u->config.budgets[0].n, 5);
  EXPECT_FALSE(u->config.clip_gamma.has_value());  // null in the run overrides the case
  EXPECT_EQ(u->config.bounds.interval.product, MatMulMethod::kRump);
  EXPECT_FALSE(u->config.optimizer.momentum_enabled);

  absl::StatusOr<GoldenRun> q = ResolveGoldenRun(case_json, 2, &warnings);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->config.perturbation.kind, PerturbationKind::kSubstitution);
  EXPECT_EQ(q->config.budgets[0].n, 1);

  absl::StatusOr<GoldenRun> t = ResolveGoldenRun(case_json, 3, &warnings);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->config.perturbation.label.target_class, -1);
  EXPECT_EQ(t->config.budgets[0].n, 0);
  EXPECT_DOUBLE_EQ(t->config.perturbation.epsilon, 0.0);
  EXPECT_TRUE(warnings.empty());
}

TEST(ResolveGoldenRunTest, RegressionLabelEpsilonAndUnsupportedSettings) {
  json case_json = json::parse(R"({
    "model": [{"type": "dense", "in": 2, "out": 1}], "loss": "mse", "batch_size": 10,
    "n_epochs": 1, "learning_rate": 0.1, "label_epsilon": 0.05, "extra_info": 1,
    "runs": [{"name": "r", "mode": "poisoning", "label_k_poison": 2},
             {"name": "a", "mode": "poisoning", "optimizer": "Adam"},
             {"name": "c", "mode": "privacy", "k_private": 1}]})");
  std::vector<std::string> warnings;
  absl::StatusOr<GoldenRun> r = ResolveGoldenRun(case_json, 0, &warnings);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_classes, 0);
  EXPECT_TRUE(r->config.perturbation.label.enabled);
  EXPECT_DOUBLE_EQ(r->config.perturbation.label.nu, 0.05);
  absl::StatusOr<GoldenRun> a = ResolveGoldenRun(case_json, 1, &warnings);
  EXPECT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("Adam"), std::string::npos) << a.status();
  absl::StatusOr<GoldenRun> c = ResolveGoldenRun(case_json, 2, &warnings);
  EXPECT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("clip_gamma"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace agt::cli
