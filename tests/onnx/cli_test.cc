// `agt train` with "model": {"onnx": ...} and `agt export-onnx`, through the
// real executable: an ONNX network (written by the exporter, and a
// torch-made one when torch is there) trains on its frozen prefix from a
// CSV, certifies, and exports back to ONNX with the trained nominal
// parameters; config mistakes and bad files are usage errors (exit 2)
// naming the field, the file and the node.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/cli/config.h"
#include "core/common/rng.h"
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

namespace fs = std::filesystem;
using test::json;

struct AgtRun {
  int exit_code = -1;
  std::string output;
};

AgtRun Agt(const std::string& args) {
  const std::string cmd = std::string("'") + AGT_BINARY + "' " + args + " 2>&1";
  AgtRun r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Single-quotes a path for the shell (appending, not operator+: GCC 12's
// -Wrestrict false positive on "'" + string).
std::string Q(const fs::path& p) {
  std::string q(1, '\'');
  q.append(p.string());
  q.push_back('\'');
  return q;
}

class OnnxCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::ScratchDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    // A frozen conv extractor with a dense head, from the exporter.
    spec_.input_shape = Shape::Image(1, 5, 5);
    Conv2dParams c;
    c.in_channels = 1;
    c.out_channels = 2;
    c.kernel_h = c.kernel_w = 3;
    spec_.frozen.layers = {LayerSpec::Conv2d(c), LayerSpec::Relu(), LayerSpec::Flatten()};
    spec_.frozen.parameters = Vector::LinSpaced(20, -0.7, 0.9);
    spec_.layers = {LayerSpec::Dense(18, 6), LayerSpec::Relu(), LayerSpec::Dense(6, 3)};
    init_ = InitParameters(spec_, 3);
    absl::StatusOr<std::string> bytes = ExportOnnx(spec_, init_);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    test::WriteBytes(dir_ / "net.onnx", *bytes);
    WriteCsv(dir_ / "train.csv", 120, 25, 3, 1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // rows x (dim features + a class label in [0, classes)).
  static void WriteCsv(const fs::path& path, int rows, int dim, int classes, uint64_t seed) {
    Rng rng(seed);
    std::ofstream out(path);
    for (int r = 0; r < rows; ++r) {
      for (int k = 0; k < dim; ++k) out << rng.Uniform(-1, 1) << ",";
      out << rng.UniformInt(classes) << "\n";
    }
  }

  json Config(const json& model) const {
    return json{{"dataset", {{"csv", "train.csv"}, {"test_fraction", 0.25}}},
                {"model", model},
                {"loss", "cross_entropy"},
                {"batch_size", 30},
                {"epochs", 1},
                {"optimizer", {{"learning_rate", 0.1}}},
                {"perturbation", {{"kind", "removal"}}},
                {"budgets", {0, 2}}};
  }

  fs::path Write(const json& config) {
    const fs::path p = dir_ / "config.json";
    test::WriteBytes(p, config.dump(1));
    return p;
  }

  void ExpectUsageError(const json& config, const std::vector<std::string>& needles) {
    const AgtRun r = Agt("train " + Q(Write(config)) + " --quiet --out " + Q(dir_ / "bad.json"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    for (const std::string& n : needles) {
      EXPECT_NE(r.output.find(n), std::string::npos) << "expected \"" << n << "\" in:\n"
                                                     << r.output;
    }
  }

  fs::path dir_;
  ModelSpec spec_;
  Vector init_;
};

TEST_F(OnnxCliTest, TrainsAnOnnxModelOnItsFrozenPrefixCertifiesAndExportsIt) {
  const fs::path results = dir_ / "results.json";
  AgtRun r = Agt("train " + Q(Write(Config({{"onnx", "net.onnx"}, {"frozen_layers", 3}}))) +
                 " --quiet --out " + Q(results));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(results);
  const json res = json::parse(in);
  EXPECT_EQ(res["model"]["frozen"].size(), 3u);
  EXPECT_EQ(res["model"]["num_parameters"], 18 * 6 + 6 + 6 * 3 + 3);

  // Certify reads the model back from the results.
  test::WriteBytes(dir_ / "test.csv", "");
  WriteCsv(dir_ / "test.csv", 10, 25, 3, 9);
  r = Agt("certify " + Q(results) + " " + Q(dir_ / "test.csv"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("n=2"), std::string::npos) << r.output;

  // Export: the trained nominal parameters and the imported frozen ones.
  r = Agt("export-onnx " + Q(results) + " " + Q(dir_ / "trained.onnx"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 frozen layer(s)"), std::string::npos) << r.output;
  ImportOptions o;
  o.frozen_layers = 3;
  absl::StatusOr<ImportedModel> back = ImportOnnxFile((dir_ / "trained.onnx").string(), o);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec.frozen.parameters, spec_.frozen.parameters);
  absl::StatusOr<Vector> nominal = cli::ParametersFromJson(back->spec, res["nominal"], "nominal");
  ASSERT_TRUE(nominal.ok()) << nominal.status();
  EXPECT_EQ(back->trained_parameters, *nominal);
  EXPECT_NE(back->trained_parameters, init_) << "training moved nothing";

  // float32
  r = Agt("export-onnx " + Q(results) + " " + Q(dir_ / "trained32.onnx") + " --float32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("float32"), std::string::npos);
}

TEST_F(OnnxCliTest, FrozenUntilANodeNameAndTheTrainedInitIsTheFiles) {
  const fs::path results = dir_ / "results.json";
  json config = Config({{"onnx", "net.onnx"}, {"frozen_until", "frozen.2.flatten"}});
  config["epochs"] = 0 + 1;
  config["optimizer"]["learning_rate"] = 1e-300;  // (almost) no step: init survives
  AgtRun r = Agt("train " + Q(Write(config)) + " --quiet --out " + Q(results));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(results);
  const json res = json::parse(in);
  absl::StatusOr<ModelSpec> spec = cli::ModelFromJson(res["model"], "model");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<Vector> nominal = cli::ParametersFromJson(*spec, res["nominal"], "nominal");
  ASSERT_TRUE(nominal.ok());
  EXPECT_LE((*nominal - init_).cwiseAbs().maxCoeff(), 1e-200);
}

TEST_F(OnnxCliTest, ConfigMistakesAndBadFilesAreUsageErrorsNamingTheProblem) {
  ExpectUsageError(Config({{"onnx", "net.onnx"}, {"hidden", {4}}}),
                   {"model.hidden: not with model.onnx"});
  ExpectUsageError(Config({{"onnx", "net.onnx"}, {"frozen_layers", 3}, {"frozen_until", "x"}}),
                   {"at most one of \"frozen_layers\" and \"frozen_until\""});
  ExpectUsageError(Config({{"onnx", "net.onnx"}, {"frozen_layer", 3}}),
                   {"model.frozen_layer: unknown key"});
  json with_init = Config({{"onnx", "net.onnx"}});
  with_init["init"] = "init.json";
  ExpectUsageError(with_init, {"init: not with model.onnx"});
  ExpectUsageError(Config({{"onnx", "missing.onnx"}}), {"model.onnx", "missing.onnx: cannot open"});
  ExpectUsageError(Config({{"onnx", "net.onnx"}, {"frozen_layers", 1}}),
                   {"model.onnx", "net.onnx", "trained part starts at node 1 \"frozen.1.relu\""});
  test::WriteBytes(dir_ / "junk.onnx", "not an onnx file at all");
  ExpectUsageError(Config({{"onnx", "junk.onnx"}}), {"junk.onnx: not a valid ONNX model"});
  // The data must fit the network's input.
  WriteCsv(dir_ / "train.csv", 120, 24, 3, 1);
  ExpectUsageError(Config({{"onnx", "net.onnx"}}), {"25 does not match the 24 input features"});
  // export-onnx usage
  AgtRun r = Agt("export-onnx " + Q(dir_ / "nope.json"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST_F(OnnxCliTest, TorchMadeNetworkTrainsThroughTheConfig) {
  const test::TorchCases& t = test::GetTorchCases();
  if (!t.skip.empty()) GTEST_SKIP() << t.skip;
  fs::copy_file(t.dir / "conv.onnx", dir_ / "conv.onnx");
  WriteCsv(dir_ / "train.csv", 120, 2 * 7 * 6, 4, 2);
  const fs::path results = dir_ / "results.json";
  AgtRun r =
      Agt("train " + Q(Write(Config({{"onnx", "conv.onnx"}, {"frozen_until", "/flat/Flatten"}}))) +
          " --quiet --out " + Q(results));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Agt("export-onnx " + Q(results) + " " + Q(dir_ / "conv_trained.onnx"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("5 frozen layer(s)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace agt::onnx
