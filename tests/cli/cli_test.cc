// Runs the real `agt` executable on temporary files: help texts, exit codes
// and messages for malformed input, and a small train -> certify round trip.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/data/dataset.h"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct AgtRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `agt ARGS` through the shell, capturing both streams.
AgtRun Agt(const std::string& args) {
  const std::string cmd = std::string("'") + AGT_BINARY + "' " + args + " 2>&1";
  AgtRun r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Single-quotes a path for the shell (test paths never contain quotes).
std::string Quote(const fs::path& p) {
  std::string q(1, '\'');
  q.append(p.string());
  q.push_back('\'');
  return q;
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

class AgtCliTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) / (std::string("agt_cli_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A small valid config on generated half-moons; tests modify it.
  static json BaseConfig() {
    return json::parse(R"({
      "dataset": {"generator": {"type": "moons", "n": 400, "noise": 0.1, "seed": 3},
                  "test_fraction": 0.25},
      "polynomial_degree": 3,
      "model": {"hidden": []},
      "loss": "binary_cross_entropy",
      "batch_size": 100,
      "epochs": 2,
      "optimizer": {"learning_rate": 0.5},
      "perturbation": {"kind": "removal"},
      "budgets": [1, 2]
    })");
  }

  fs::path WriteConfig(const json& config, const std::string& name = "config.json") {
    const fs::path p = dir_ / name;
    WriteFile(p, config.dump(1));
    return p;
  }

  // Runs `agt train` on a config and expects a usage error mentioning every needle.
  void ExpectConfigError(const json& config, const std::vector<std::string>& needles) {
    const fs::path p = WriteConfig(config);
    const AgtRun r = Agt("train " + Quote(p) + " --quiet --out " + Quote(dir_ / "out.json"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    for (const std::string& needle : needles) {
      EXPECT_NE(r.output.find(needle), std::string::npos) << "expected \"" << needle << "\" in:\n"
                                                          << r.output;
    }
    EXPECT_FALSE(fs::exists(dir_ / "out.json"));
  }

  fs::path dir_;
};

TEST_F(AgtCliTest, HelpOfEveryCommandExitsZeroAndNamesItsOptions) {
  const AgtRun top = Agt("--help");
  EXPECT_EQ(top.exit_code, 0) << top.output;
  for (const char* s : {"train", "certify", "golden", "exit codes"}) {
    EXPECT_NE(top.output.find(s), std::string::npos) << s;
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"train", {"CONFIG.json", "--out", "--threads", "--quiet", "CONFIG.md"}},
      {"certify", {"RESULTS.json", "DATA.csv", "--epsilon", "--json", "--points"}},
      {"golden", {"CASE_DIR", "--out", "--run", "--trace", "expected.json"}}};
  for (const auto& [command, options] : commands) {
    for (const std::string& form : {command + " --help", command + " -h", "help " + command}) {
      const AgtRun r = Agt(form);
      EXPECT_EQ(r.exit_code, 0) << form << "\n" << r.output;
      for (const std::string& o : options) {
        EXPECT_NE(r.output.find(o), std::string::npos) << form << " lacks " << o;
      }
    }
  }
}

TEST_F(AgtCliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Agt("").exit_code, 2);
  const AgtRun unknown = Agt("trian x.json");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("unknown command"), std::string::npos) << unknown.output;
  const AgtRun option = Agt("train x.json --fast");
  EXPECT_EQ(option.exit_code, 2);
  EXPECT_NE(option.output.find("--fast"), std::string::npos) << option.output;
  EXPECT_EQ(Agt("train").exit_code, 2);
  EXPECT_EQ(Agt("train x.json --threads -3").exit_code, 2);
  EXPECT_EQ(Agt("certify only_one.json").exit_code, 2);
  EXPECT_EQ(Agt("golden " + Quote(dir_ / "no_such_case")).exit_code, 2);
}

TEST_F(AgtCliTest, MissingConfigFileIsAUsageError) {
  const AgtRun r = Agt("train " + Quote(dir_ / "absent.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("absent.json"), std::string::npos) << r.output;
}

TEST_F(AgtCliTest, BadJsonSyntaxNamesTheLine) {
  const fs::path p = dir_ / "config.json";
  WriteFile(p, "{\n  \"loss\": \"mse\",\n  \"batch_size\" 10\n}\n");
  const AgtRun r = Agt("train " + Quote(p));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("invalid JSON"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("line 3"), std::string::npos) << r.output;
}

TEST_F(AgtCliTest, UnknownKeysAreErrors) {
  json c = BaseConfig();
  c["optimizer"]["learnig_rate"] = 0.1;
  ExpectConfigError(c, {"config.json", "optimizer.learnig_rate", "unknown key"});
  c = BaseConfig();
  c["epoch"] = 3;
  ExpectConfigError(c, {"epoch", "unknown key"});
  c = BaseConfig();
  c["dataset"]["generator"]["noize"] = 0.2;
  ExpectConfigError(c, {"dataset.generator.noize", "unknown key"});
}

TEST_F(AgtCliTest, NegativeLearningRateIsNamed) {
  json c = BaseConfig();
  c["optimizer"]["learning_rate"] = -1;
  ExpectConfigError(c, {"config.json: optimizer.learning_rate: must be > 0, got -1"});
}

TEST_F(AgtCliTest, BudgetNotBelowTheBatchSizeIsRejected) {
  json c = BaseConfig();
  c["budgets"] = {1, 100};
  ExpectConfigError(c, {"budgets[1]", "batch_size 100"});
}

TEST_F(AgtCliTest, WrongTypesAndMissingFieldsAreNamed) {
  json c = BaseConfig();
  c["batch_size"] = "100";
  ExpectConfigError(c, {"batch_size", "expected an integer"});
  c = BaseConfig();
  c.erase("loss");
  ExpectConfigError(c, {"loss", "required"});
  c = BaseConfig();
  c["perturbation"] = {{"kind", "substitution"}};
  ExpectConfigError(c, {"clip_gamma", "substitution"});
  c = BaseConfig();
  c["perturbation"] = {{"kind", "removal"}, {"epsilon", 0.1}};
  ExpectConfigError(c, {"perturbation.epsilon", "poisoning"});
  c = BaseConfig();
  c["model"] = {{"layers", {{{"type", "dense"}, {"in", 2}, {"out", 1}}}}};
  ExpectConfigError(c, {"model.layers[0].in", "9"});
}

TEST_F(AgtCliTest, MissingDatasetFileIsNamed) {
  json c = BaseConfig();
  c["dataset"] = {{"csv", "no_such_train.csv"}};
  ExpectConfigError(c, {"dataset.csv", "no_such_train.csv"});
}

TEST_F(AgtCliTest, CsvWithNanIsRejectedWithItsLine) {
  WriteFile(dir_ / "train.csv", "x0,x1,y\n0.1,0.2,0\n0.3,nan,1\n0.5,0.6,0\n");
  json c = BaseConfig();
  c["dataset"] = {{"csv", "train.csv"}};
  c["batch_size"] = 2;
  c["budgets"] = {1};
  ExpectConfigError(c, {"dataset.csv", "train.csv", "line 3", "nan"});
}

TEST_F(AgtCliTest, TrainThenCertifyRoundTrip) {
  // A separable two-cluster set with deterministic jitter; one test CSV that
  // both train (as test_csv) and certify read, so their numbers must agree.
  std::string train = "x0,x1,y\n", test = "x0,x1,y\n";
  for (int i = 0; i < 240; ++i) {
    const int y = i % 2;
    const double jitter = ((i * 37) % 17) / 17.0 - 0.5;
    const double x0 = (y == 1 ? 1.5 : -1.5) + 0.3 * jitter;
    const double x1 = 0.5 * jitter - 0.2 * y;
    (i < 200 ? train : test) +=
        std::to_string(x0) + "," + std::to_string(x1) + "," + std::to_string(y) + "\n";
  }
  WriteFile(dir_ / "train.csv", train);
  WriteFile(dir_ / "test.csv", test);
  json c = BaseConfig();
  c["dataset"] = {{"csv", "train.csv"}, {"test_csv", "test.csv"}};
  c["polynomial_degree"] = 1;
  c["batch_size"] = 50;
  c["epochs"] = 3;
  c["budgets"] = {2, 1};
  const fs::path config = WriteConfig(c);
  const fs::path results = dir_ / "results.json";

  const AgtRun trained =
      Agt("train " + Quote(config) + " --out " + Quote(results) + " --threads 1");
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  EXPECT_NE(trained.output.find("step 12/12"), std::string::npos) << trained.output;
  ASSERT_TRUE(fs::exists(results));
  const json r = ReadJson(results);
  EXPECT_EQ(r["format"], "agt-results");
  EXPECT_EQ(r["training"]["steps"], 12);
  EXPECT_EQ(r["training"]["dropped_rows_per_epoch"], 0);
  ASSERT_EQ(r["budgets"].size(), 2u);
  EXPECT_EQ(r["nominal"]["layers"][0]["weight"][0].size(), 2u);
  // The budget of 2 removals gives a box at least as wide as the budget of 1.
  EXPECT_GE(r["budgets"][0]["total_width"].get<double>(),
            r["budgets"][1]["total_width"].get<double>());
  EXPECT_GT(r["budgets"][1]["total_width"].get<double>(), 0.0);
  ASSERT_TRUE(r["budgets"][0].contains("test"));

  const AgtRun table = Agt("certify " + Quote(results) + " " + Quote(dir_ / "test.csv"));
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("certified acc"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("n=2"), std::string::npos) << table.output;

  const AgtRun as_json =
      Agt("certify " + Quote(results) + " " + Quote(dir_ / "test.csv") + " --json --points");
  ASSERT_EQ(as_json.exit_code, 0) << as_json.output;
  const json cert = json::parse(as_json.output);
  EXPECT_EQ(cert["rows"], 40);
  ASSERT_EQ(cert["budgets"].size(), 2u);
  for (size_t j = 0; j < 2; ++j) {
    for (const char* key :
         {"accuracy_nominal", "accuracy_worst", "accuracy_best", "stable_fraction"}) {
      EXPECT_DOUBLE_EQ(cert["budgets"][j][key].get<double>(),
                       r["budgets"][j]["test"][key].get<double>())
          << key << " budget " << j;
    }
  }
  ASSERT_EQ(cert["points"].size(), 40u);
  // A point stable at the larger budget reports it as its largest stable budget.
  int stable_points = 0;
  for (const json& p : cert["points"]) {
    if (p["stable"][0].get<bool>()) {
      ++stable_points;
      EXPECT_EQ(p["largest_stable_budget"]["n"], 2);
    }
  }
  EXPECT_GT(stable_points, 0) << "expected some certified points on separable data";

  // A CSV of the wrong width and a bad epsilon are usage errors.
  WriteFile(dir_ / "wide.csv", "a,b,c,y\n1,2,3,0\n");
  EXPECT_EQ(Agt("certify " + Quote(results) + " " + Quote(dir_ / "wide.csv")).exit_code, 2);
  EXPECT_EQ(
      Agt("certify " + Quote(results) + " " + Quote(dir_ / "test.csv") + " --epsilon -1").exit_code,
      2);
  // Backdoor certificates never certify more than the plain ones.
  const AgtRun eps =
      Agt("certify " + Quote(results) + " " + Quote(dir_ / "test.csv") + " --json --epsilon 0.05");
  ASSERT_EQ(eps.exit_code, 0) << eps.output;
  const json cert_eps = json::parse(eps.output);
  EXPECT_LE(cert_eps["budgets"][0]["stable_fraction"].get<double>(),
            cert["budgets"][0]["stable_fraction"].get<double>());
}

TEST_F(AgtCliTest, CertifyRejectsAFileThatIsNotAResultsFile) {
  WriteFile(dir_ / "r.json", R"({"format": "something else"})");
  WriteFile(dir_ / "d.csv", "x0,y\n1,0\n");
  const AgtRun r = Agt("certify " + Quote(dir_ / "r.json") + " " + Quote(dir_ / "d.csv"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("format"), std::string::npos) << r.output;
}

TEST_F(AgtCliTest, GoldenRunsACaseAndFailsOnAWrongExpectation) {
  const fs::path source = fs::path(AGT_TEST_DATA_DIR) / "goldens" / "moons_unlearning";
  const fs::path out = dir_ / "result.json";
  const AgtRun ok = Agt("golden " + Quote(source) + " --out " + Quote(out) + " --run k5 --quiet");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("PASS"), std::string::npos) << ok.output;
  const json result = ReadJson(out);
  ASSERT_TRUE(result["runs"].contains("k5"));
  EXPECT_FALSE(result["runs"].contains("k1"));
  EXPECT_TRUE(result["runs"]["k5"]["test"].contains("stable"));

  // The same case with one expected bound moved: FAIL, exit code 1.
  const fs::path copy = dir_ / "case";
  fs::create_directories(copy);
  for (const char* f : {"case.json", "train.csv", "test.csv", "init.json"}) {
    fs::copy_file(source / f, copy / f);
  }
  json expected = ReadJson(source / "expected.json");
  json& w = expected["runs"]["k5"]["upper"][0]["bias"][0];
  w = w.get<double>() + 1e-4;
  WriteFile(copy / "expected.json", expected.dump());
  const AgtRun bad = Agt("golden " + Quote(copy) + " --run k5 --quiet");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("FAIL"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("upper"), std::string::npos) << bad.output;
  const AgtRun missing = Agt("golden " + Quote(copy) + " --run no_such_run --quiet");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
}

TEST_F(AgtCliTest, GoldenTimingsNameEveryPhaseAndThreadsDoNotChangeTheResult) {
  const fs::path source = fs::path(AGT_TEST_DATA_DIR) / "goldens" / "moons_unlearning";
  const fs::path one = dir_ / "one.json", all = dir_ / "all.json";
  const AgtRun timed =
      Agt("golden " + Quote(source) + " --out " + Quote(all) + " --timings --quiet");
  ASSERT_EQ(timed.exit_code, 0) << timed.output;
  for (const std::string& phase : std::vector<std::string>{
           "read case.json and init.json", "load train.csv and test.csv", "k5: setup",
           "k5: training", "k5: parameters and certificates", "write " + all.string()}) {
    EXPECT_NE(timed.output.find("timing: " + phase), std::string::npos) << phase << "\n"
                                                                        << timed.output;
  }
  const AgtRun serial =
      Agt("golden " + Quote(source) + " --out " + Quote(one) + " --threads 1 --quiet");
  ASSERT_EQ(serial.exit_code, 0) << serial.output;
  EXPECT_EQ(serial.output.find("timing:"), std::string::npos) << serial.output;
  // The same bytes but for the training seconds.
  json a = ReadJson(one), b = ReadJson(all);
  for (json* r : {&a, &b}) {
    for (auto& [name, run] : (*r)["runs"].items()) run.erase("seconds");
  }
  EXPECT_EQ(a.dump(), b.dump());
}

}  // namespace

namespace agt {
namespace {

class AgtGenerateTest : public AgtCliTest {};

TEST_F(AgtGenerateTest, WritesExactlyTheGeneratorsRows) {
  const fs::path csv = dir_ / "moons.csv";
  const AgtRun r = Agt("generate moons --n 301 --noise 0.2 --seed 9 --out " + Quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  absl::StatusOr<Dataset> read = ReadCsv(csv.string());
  ASSERT_TRUE(read.ok()) << read.status();
  const Dataset expected = MakeMoons(301, 0.2, 9);
  EXPECT_EQ(read->num_classes, 2);
  EXPECT_EQ(read->x, expected.x);
  EXPECT_EQ(read->y, expected.y);

  const fs::path blobs = dir_ / "blobs.csv";
  const AgtRun b = Agt("generate blobs --n 90 --dim 3 --classes 4 --seed 2 --out " + Quote(blobs));
  ASSERT_EQ(b.exit_code, 0) << b.output;
  absl::StatusOr<Dataset> read_blobs = ReadCsv(blobs.string());
  ASSERT_TRUE(read_blobs.ok()) << read_blobs.status();
  const Dataset expected_blobs = MakeBlobs(90, 3, 4, 1.0, 10.0, 2);
  EXPECT_EQ(read_blobs->x, expected_blobs.x);
  EXPECT_EQ(read_blobs->num_classes, 4);
}

TEST_F(AgtGenerateTest, BadArgumentsAreUsageErrorsNamingTheProblem) {
  const AgtRun no_out = Agt("generate moons --n 10");
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_NE(no_out.output.find("--out"), std::string::npos) << no_out.output;
  const AgtRun bad_kind = Agt("generate spirals --out " + Quote(dir_ / "x.csv"));
  EXPECT_EQ(bad_kind.exit_code, 2);
  EXPECT_NE(bad_kind.output.find("spirals"), std::string::npos) << bad_kind.output;
  const AgtRun bad_n = Agt("generate moons --n -5 --out " + Quote(dir_ / "x.csv"));
  EXPECT_EQ(bad_n.exit_code, 2);
  EXPECT_NE(bad_n.output.find("--n"), std::string::npos) << bad_n.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.csv"));
  const AgtRun help = Agt("generate --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--center-box"), std::string::npos);
}

}  // namespace
// A frozen conv feature extractor (its parameters from a file) under a trained
// dense head, on 1x5x5 images in CSV rows: agt train writes the frozen prefix
// into the results, and agt certify reads it back and reproduces the
// certificates train computed.
TEST_F(AgtCliTest, FrozenConvExtractorTrainsAndCertifies) {
  std::string train = "", test = "";
  for (int i = 0; i < 120; ++i) {
    const int y = i % 2;
    std::string row;
    for (int p = 0; p < 25; ++p) {
      // Class 1 is bright on the left half, class 0 on the right half.
      const int col = p % 5;
      const double jitter = ((i * 31 + p * 7) % 13) / 13.0 * 0.2;
      const double v = ((col < 2) == (y == 1) ? 0.8 : 0.1) + jitter;
      row += std::to_string(v) + ",";
    }
    (i < 100 ? train : test) += row + std::to_string(y) + "\n";
  }
  WriteFile(dir_ / "train.csv", train);
  WriteFile(dir_ / "test.csv", test);
  // A fixed 2-channel 3x3 extractor: a left-edge and a right-edge detector.
  json extractor = json::parse(R"({"frozen": [{"weight": [
      [[[1, 0, -1], [1, 0, -1], [1, 0, -1]]],
      [[[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]]], "bias": [0, 0]}]})");
  WriteFile(dir_ / "extractor.json", extractor.dump());
  json c = BaseConfig();
  c["dataset"] = {{"csv", "train.csv"}, {"test_csv", "test.csv"}};
  c["polynomial_degree"] = 1;
  c["model"] = json::parse(R"({
      "input_shape": [1, 5, 5],
      "frozen": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
                 {"type": "relu"}, {"type": "flatten"}],
      "frozen_parameters": "extractor.json",
      "hidden": [4]})");
  c["batch_size"] = 20;
  c["epochs"] = 2;
  c["optimizer"] = {{"learning_rate", 0.1}};
  c["perturbation"] = {{"kind", "poisoning"}, {"epsilon", 0.01}};
  c["budgets"] = {0, 1};
  const fs::path config = WriteConfig(c);
  const fs::path results = dir_ / "results.json";
  const AgtRun trained =
      Agt("train " + Quote(config) + " --out " + Quote(results) + " --threads 1 --quiet");
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const json r = ReadJson(results);
  ASSERT_TRUE(r["model"].contains("frozen")) << r["model"].dump();
  EXPECT_EQ(r["model"]["input_shape"], json::parse("[1, 5, 5]"));
  EXPECT_EQ(r["model"]["frozen_parameters"][0]["weight"][1][0][2][2], 1.0);
  // Trained layers: 18 -> 4 -> 1 (the extractor's 2 x 3 x 3 outputs).
  EXPECT_EQ(r["nominal"]["layers"][0]["weight"][0].size(), 18u);
  EXPECT_EQ(r["model"]["num_parameters"], 18 * 4 + 4 + 4 + 1);
  // Budget 0 with epsilon: the box is not a point (every row's features may
  // move), budget 1 is at least as wide.
  EXPECT_GE(r["budgets"][1]["total_width"].get<double>(),
            r["budgets"][0]["total_width"].get<double>());

  const AgtRun as_json =
      Agt("certify " + Quote(results) + " " + Quote(dir_ / "test.csv") + " --json");
  ASSERT_EQ(as_json.exit_code, 0) << as_json.output;
  const json cert = json::parse(as_json.output);
  for (size_t j = 0; j < 2; ++j) {
    EXPECT_DOUBLE_EQ(cert["budgets"][j]["accuracy_worst"].get<double>(),
                     r["budgets"][j]["test"]["accuracy_worst"].get<double>());
  }
  EXPECT_GT(r["budgets"][0]["test"]["accuracy_nominal"].get<double>(), 0.9) << r.dump();

  // Without the parameters of the frozen layers the config is refused.
  c["model"].erase("frozen_parameters");
  ExpectConfigError(c, {"model.frozen_parameters", "required"});
}

}  // namespace agt
