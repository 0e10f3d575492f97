// The importer on files made by torch.onnx.export during the test run
// (make_torch_models.py): dense, conv and mixed networks (nn.Flatten,
// x.view(x.size(0), -1) with a dynamic or a static batch, Linear without
// bias, x @ W + b) give the core a model whose nominal forward pass equals
// PyTorch's to 1e-12 (float64 models) with any frozen prefix, and networks
// with Sigmoid, MaxPool, BatchNormalization or a residual Add are refused
// naming the node torch wrote and its op type.
#include <gtest/gtest.h>

#include "core/bounds/ibp.h"
#include "core/onnx/import.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

using test::GetTorchCases;
using test::ReadBytes;
using test::ToMatrix;

#define SKIP_WITHOUT_TORCH()              \
  if (!GetTorchCases().skip.empty()) {    \
    GTEST_SKIP() << GetTorchCases().skip; \
  }

TEST(TorchImport, NominalForwardPassEqualsPyTorchForEveryNetworkAndFrozenPrefix) {
  SKIP_WITHOUT_TORCH();
  const auto& t = GetTorchCases();
  ASSERT_GE(t.cases["models"].size(), 5u);
  for (const auto& c : t.cases["models"]) {
    const std::string name = c["name"];
    const std::string bytes = ReadBytes(t.dir / c["file"].get<std::string>());
    const Matrix x = ToMatrix(c["input"]);
    const Matrix want = ToMatrix(c["output"]);
    const double tol = c["tol"];
    const int layers = c["layers"];
    int checked = 0;
    for (int frozen = 0; frozen < layers; ++frozen) {
      ImportOptions o;
      o.frozen_layers = frozen;
      absl::StatusOr<ImportedModel> m = ImportOnnx(bytes, o);
      if (!m.ok()) {
        // Only prefixes after which the trained part cannot start are refused.
        EXPECT_NE(m.status().message().find("must start with"), std::string::npos)
            << name << " frozen " << frozen << ": " << m.status();
        continue;
      }
      ASSERT_EQ(static_cast<int>(m->layers.size()), layers) << name;
      EXPECT_EQ(m->spec.frozen.layers.size(), static_cast<size_t>(frozen));
      EXPECT_EQ(m->producer.rfind("pytorch", 0), 0u) << m->producer;
      const Matrix got = Forward(m->spec, m->trained_parameters, x);
      ASSERT_EQ(got.rows(), want.rows()) << name;
      ASSERT_EQ(got.cols(), want.cols()) << name;
      const double error = (got - want).cwiseAbs().maxCoeff();
      if (frozen == 0) {
        std::cout << name << ": max |core - torch| = " << error << " (tolerance " << tol << ")\n";
      }
      EXPECT_LE(error, tol)
          << name << " frozen " << frozen << "\ngot\n"
          << got << "\nwant\n"
          << want;
      ++checked;
    }
    EXPECT_GE(checked, 2) << name;
  }
}

TEST(TorchImport, MixedNetworkHasTheExpectedLayersAndFrozenUntilANodeName) {
  SKIP_WITHOUT_TORCH();
  const auto& t = GetTorchCases();
  const std::string bytes = ReadBytes(t.dir / "mixed.onnx");
  ImportOptions o;
  o.frozen_until = "/Reshape";
  absl::StatusOr<ImportedModel> m = ImportOnnx(bytes, o);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<std::string> ops;
  for (const ImportedLayer& l : m->layers) ops.push_back(l.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Conv", "Relu", "Reshape", "Gemm", "Relu", "MatMul+Add",
                                           "Relu", "MatMul"}));
  // torch's Shape/Gather/Unsqueeze/Concat compute the Reshape's target:
  // no layers. Frozen: conv, relu, flatten; trained: three dense layers.
  EXPECT_EQ(m->spec.frozen.layers.size(), 3u);
  EXPECT_EQ(m->spec.layers.size(), 5u);
  EXPECT_EQ(m->spec.input_shape, Shape::Image(1, 8, 8));
  EXPECT_EQ(m->spec.FeatureShape(), Shape::Flat(48));
  EXPECT_EQ(m->spec.frozen.parameters.size(), 3 * 9 + 3);
  EXPECT_EQ(m->trained_parameters.size(), 48 * 10 + 10 + 10 * 7 + 7 + 7 * 2 + 2);
}

TEST(TorchImport, UnsupportedOpsFromTorchNameTheNodeAndTheOp) {
  SKIP_WITHOUT_TORCH();
  const auto& t = GetTorchCases();
  ASSERT_EQ(t.cases["unsupported"].size(), 4u);
  for (const auto& c : t.cases["unsupported"]) {
    const std::string bytes = ReadBytes(t.dir / c["file"].get<std::string>());
    absl::StatusOr<ImportedModel> m = ImportOnnx(bytes, {});
    ASSERT_FALSE(m.ok()) << c["name"];
    EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented) << m.status();
    const std::string label = "node " + std::to_string(c["node_index"].get<int>()) + " \"" +
                              c["node_name"].get<std::string>() + "\": op " +
                              c["op"].get<std::string>() + " is not supported";
    EXPECT_NE(m.status().message().find(label), std::string::npos)
        << "expected \"" << label << "\" in: " << m.status().message();
  }
}

}  // namespace
}  // namespace agt::onnx
