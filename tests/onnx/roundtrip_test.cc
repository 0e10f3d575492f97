// Export and round trips: a model imported from a torch-made file (or made by
// the core) exports to an ONNX file that re-imports to the same spec with
// bit-identical parameters (float64 initializers), that onnx.checker accepts,
// and whose evaluation by an independent NumPy evaluator (check_export.py)
// equals the core's forward pass; float32 export rounds each parameter to
// nearest; invalid models are refused.
#include <gtest/gtest.h>

#include <cmath>

#include "core/bounds/ibp.h"
#include "core/common/rng.h"
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

namespace fs = std::filesystem;
using test::json;

void ExpectSameModel(const ImportedModel& a, const ImportedModel& b, const std::string& what) {
  EXPECT_EQ(a.spec.input_shape, b.spec.input_shape) << what;
  EXPECT_EQ(a.spec.layers, b.spec.layers) << what;
  EXPECT_EQ(a.spec.frozen.layers, b.spec.frozen.layers) << what;
  // Bit for bit, not to a tolerance.
  EXPECT_EQ(a.spec.frozen.parameters, b.spec.frozen.parameters) << what;
  EXPECT_EQ(a.trained_parameters, b.trained_parameters) << what;
}

// A conv model made by the core: frozen conv + relu + flatten, trained
// dense + relu + dense, random parameters.
ModelSpec CoreConvModel(Vector* trained) {
  ModelSpec spec;
  spec.input_shape = Shape::Image(2, 6, 5);
  Conv2dParams c;
  c.in_channels = 2;
  c.out_channels = 3;
  c.kernel_h = 3;
  c.kernel_w = 2;
  c.stride_h = 2;
  c.pad_h = 1;
  c.pad_w = 1;
  spec.frozen.layers = {LayerSpec::Conv2d(c), LayerSpec::Relu(), LayerSpec::Flatten()};
  Network frozen = spec.FrozenNetwork();
  spec.frozen.parameters = Vector::Zero(frozen.num_params());
  Rng rng(5);
  for (size_t i = 0; i < frozen.size(); ++i) {
    frozen.layer(i).Initialize(&rng, spec.frozen.parameters.data() + frozen.param_offset(i));
  }
  const int features = static_cast<int>(spec.FeatureShape().size());
  spec.layers = {LayerSpec::Dense(features, 5), LayerSpec::Relu(), LayerSpec::Dense(5, 3)};
  *trained = InitParameters(spec, 11);
  return spec;
}

TEST(OnnxRoundTrip, CoreModelExportsAndReimportsBitIdentically) {
  Vector theta;
  const ModelSpec spec = CoreConvModel(&theta);
  ASSERT_TRUE(spec.Validate().ok()) << spec.Validate();
  absl::StatusOr<std::string> bytes = ExportOnnx(spec, theta);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ImportOptions o;
  o.frozen_layers = 3;
  absl::StatusOr<ImportedModel> back = ImportOnnx(*bytes, o);
  ASSERT_TRUE(back.ok()) << back.status();
  ImportedModel original;
  original.spec = spec;
  original.trained_parameters = theta;
  ExpectSameModel(original, *back, "core conv model");
  EXPECT_EQ(back->layers[0].node_name, "frozen.0.conv2d");
  EXPECT_EQ(back->layers[5].node_name, "trained.2.dense");
  EXPECT_EQ(back->producer, "agt");
  // By node name too.
  ImportOptions by_name;
  by_name.frozen_until = "frozen.2.flatten";
  absl::StatusOr<ImportedModel> named = ImportOnnx(*bytes, by_name);
  ASSERT_TRUE(named.ok()) << named.status();
  ExpectSameModel(original, *named, "by name");
}

TEST(OnnxRoundTrip, Float32ExportRoundsEveryParameterToNearest) {
  Vector theta;
  const ModelSpec spec = CoreConvModel(&theta);
  ExportOptions eo;
  eo.float32 = true;
  absl::StatusOr<std::string> bytes = ExportOnnx(spec, theta, eo);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ImportOptions o;
  o.frozen_layers = 3;
  absl::StatusOr<ImportedModel> back = ImportOnnx(*bytes, o);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->trained_parameters.size(), theta.size());
  bool any_rounded = false;
  for (Index k = 0; k < theta.size(); ++k) {
    EXPECT_EQ(back->trained_parameters[k], static_cast<double>(static_cast<float>(theta[k])));
    any_rounded = any_rounded || back->trained_parameters[k] != theta[k];
  }
  EXPECT_TRUE(any_rounded);
}

TEST(OnnxRoundTrip, ExportRefusesInvalidModelsAndParameters) {
  Vector theta;
  const ModelSpec spec = CoreConvModel(&theta);
  absl::StatusOr<std::string> short_params = ExportOnnx(spec, theta.head(3));
  ASSERT_FALSE(short_params.ok());
  EXPECT_NE(short_params.status().message().find("got 3"), std::string::npos)
      << short_params.status();
  Vector nan = theta;
  nan[2] = std::nan("");
  EXPECT_FALSE(ExportOnnx(spec, nan).ok());
  ModelSpec bad = spec;
  bad.layers.pop_back();  // ends with a relu
  absl::StatusOr<std::string> invalid = ExportOnnx(bad, theta);
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.status().message().find("cannot export"), std::string::npos);
}

// Exports, runs check_export.py on it with inputs x, returns its outputs.
absl::StatusOr<Matrix> EvaluateWithNumpy(const std::string& bytes, const Matrix& x,
                                         const fs::path& dir, const std::string& name,
                                         std::string* dtype) {
  const fs::path model = dir / (name + ".exported.onnx");
  const fs::path in = dir / (name + ".in.json");
  const fs::path out = dir / (name + ".out.json");
  test::WriteBytes(model, bytes);
  test::WriteBytes(in, json{{"input", test::ToJson(x)}}.dump());
  const fs::path log = dir / (name + ".log");
  const int rc = test::RunCommand(std::string(AGT_TEST_PYTHON) + " " + AGT_ONNX_TEST_DIR +
                                  "/check_export.py '" + model.string() + "' '" + in.string() +
                                  "' '" + out.string() + "' > '" + log.string() + "' 2>&1");
  if (rc != 0) {
    return absl::InternalError("check_export.py failed (" + std::to_string(rc) + "):\n" +
                               test::ReadBytes(log));
  }
  std::ifstream f(out);
  const json result = json::parse(f);
  *dtype = result["input_dtype"];
  return test::ToMatrix(result["output"]);
}

TEST(OnnxRoundTrip, TorchModelsReexportToFilesOnnxCheckerAcceptsAndNumpyEvaluatesAlike) {
  if (!test::GetTorchCases().skip.empty()) GTEST_SKIP() << test::GetTorchCases().skip;
  const auto& t = test::GetTorchCases();
  const fs::path dir = t.dir;
  for (const auto& c : t.cases["models"]) {
    const std::string name = c["name"];
    const std::string bytes = test::ReadBytes(dir / c["file"].get<std::string>());
    ImportOptions o;
    o.frozen_layers = c["frozen"].get<int>();
    absl::StatusOr<ImportedModel> first = ImportOnnx(bytes, o);
    ASSERT_TRUE(first.ok()) << name << ": " << first.status();
    absl::StatusOr<std::string> exported = ExportOnnx(first->spec, first->trained_parameters);
    ASSERT_TRUE(exported.ok()) << name << ": " << exported.status();
    absl::StatusOr<ImportedModel> second = ImportOnnx(*exported, o);
    ASSERT_TRUE(second.ok()) << name << ": " << second.status();
    ExpectSameModel(*first, *second, name);

    const Matrix x = test::ToMatrix(c["input"]);
    std::string dtype;
    absl::StatusOr<Matrix> numpy = EvaluateWithNumpy(*exported, x, dir, name, &dtype);
    ASSERT_TRUE(numpy.ok()) << name << ": " << numpy.status();
    EXPECT_EQ(dtype, "double");
    const Matrix core = Forward(first->spec, first->trained_parameters, x);
    ASSERT_EQ(numpy->rows(), core.rows());
    ASSERT_EQ(numpy->cols(), core.cols());
    EXPECT_LE((*numpy - core).cwiseAbs().maxCoeff(), 1e-12) << name;
    // And PyTorch's own outputs (float64 models).
    if (c["tol"].get<double>() <= 1e-12) {
      EXPECT_LE((*numpy - test::ToMatrix(c["output"])).cwiseAbs().maxCoeff(), 1e-12) << name;
    }
  }
}

TEST(OnnxRoundTrip, CoreModelExportPassesTheCheckerInBothPrecisions) {
  if (!test::PythonOnnxAvailable()) GTEST_SKIP() << "python3-onnx / numpy are not installed";
  Vector theta;
  const ModelSpec spec = CoreConvModel(&theta);
  Rng rng(3);
  Matrix x(4, spec.InputDim());
  for (Index k = 0; k < x.size(); ++k) x.data()[k] = rng.Uniform(-1, 1);
  const fs::path dir = test::ScratchDir("roundtrip");
  for (bool f32 : {false, true}) {
    ExportOptions eo;
    eo.float32 = f32;
    absl::StatusOr<std::string> bytes = ExportOnnx(spec, theta, eo);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    std::string dtype;
    absl::StatusOr<Matrix> numpy =
        EvaluateWithNumpy(*bytes, x, dir, f32 ? "core32" : "core64", &dtype);
    ASSERT_TRUE(numpy.ok()) << numpy.status();
    EXPECT_EQ(dtype, f32 ? "float" : "double");
    const Matrix core = Forward(spec, theta, x);
    EXPECT_LE((*numpy - core).cwiseAbs().maxCoeff(), f32 ? 1e-4 : 1e-12);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agt::onnx
