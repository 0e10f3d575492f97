// The importer on hand-built ONNX graphs: the parameter layouts of every
// supported node (Gemm with either transB, MatMul with and without its Add,
// Conv with pads and strides), the frozen prefix by count and by name, and a
// precise error for every way a file can be unsupported, malformed,
// non-sequential, mismatched or too large.
#include "core/onnx/import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/bounds/ibp.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

using test::ModelBuilder;
using test::Ramp;

// x [N, 3] -> Gemm(transB) 3->2 -> Relu -> Gemm 2->2: the standard torch MLP.
ModelBuilder TwoLayerMlp() {
  ModelBuilder b({-1, 3});
  b.Init("w1", {2, 3}, Ramp(6));
  b.Init("b1", {2}, {0.5, -0.5});
  b.Init("w2", {2, 2}, Ramp(4, -0.2));
  b.Init("b2", {2}, {0.01, 0.02});
  ModelBuilder::SetInt(b.Node("Gemm", {"x", "w1", "b1"}, "h1", "/fc1/Gemm"), "transB", 1);
  b.Node("Relu", {"h1"}, "h2", "/Relu");
  ModelBuilder::SetInt(b.Node("Gemm", {"h2", "w2", "b2"}, "y", "/fc2/Gemm"), "transB", 1);
  b.Output("y");
  return b;
}

absl::StatusOr<ImportedModel> Import(const ModelBuilder& b, ImportOptions options = {}) {
  return ImportOnnx(b.Bytes(), options);
}

// Expects a failure with this code whose message contains every needle.
void ExpectError(const absl::StatusOr<ImportedModel>& m, absl::StatusCode code,
                 const std::vector<std::string>& needles) {
  ASSERT_FALSE(m.ok()) << "imported: " << m->spec.Describe();
  EXPECT_EQ(m.status().code(), code) << m.status();
  for (const std::string& n : needles) {
    EXPECT_NE(m.status().message().find(n), std::string::npos)
        << "expected \"" << n << "\" in: " << m.status().message();
  }
}

TEST(OnnxImport, GemmWithTransBIsTheCoreLayoutAndBiasFollows) {
  absl::StatusOr<ImportedModel> m = Import(TwoLayerMlp());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->spec.input_shape, Shape::Flat(3));
  ASSERT_EQ(m->spec.layers.size(), 3u);
  EXPECT_EQ(m->spec.layers[0], LayerSpec::Dense(3, 2));
  EXPECT_TRUE(m->spec.frozen.empty());
  std::vector<double> want = Ramp(6);
  want.insert(want.end(), {0.5, -0.5});
  const std::vector<double> w2 = Ramp(4, -0.2);
  want.insert(want.end(), w2.begin(), w2.end());
  want.insert(want.end(), {0.01, 0.02});
  ASSERT_EQ(m->trained_parameters.size(), static_cast<Index>(want.size()));
  for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(m->trained_parameters[k], want[k]) << k;
  EXPECT_EQ(m->layers[0].node_name, "/fc1/Gemm");
  EXPECT_EQ(m->layers[1].op_type, "Relu");
  EXPECT_EQ(m->opset_version, 13);
}

TEST(OnnxImport, GemmWithoutTransBAndMatMulAreTransposed) {
  // W stored [in, out] = [3, 2]: W_core(o, i) = B(i, o).
  const std::vector<double> b_in_out = {1, 2, 3, 4, 5, 6};  // rows i: (1,2) (3,4) (5,6)
  const std::vector<double> core = {1, 3, 5, 2, 4, 6};
  for (const std::string op : {"Gemm", "MatMul"}) {
    ModelBuilder b({-1, 3});
    b.Init("w", {3, 2}, b_in_out);
    b.Node(op, {"x", "w"}, "y");
    b.Output("y");
    absl::StatusOr<ImportedModel> m = Import(b);
    ASSERT_TRUE(m.ok()) << op << ": " << m.status();
    ASSERT_EQ(m->trained_parameters.size(), 8);
    for (int k = 0; k < 6; ++k) EXPECT_EQ(m->trained_parameters[k], core[k]) << op << " " << k;
    EXPECT_EQ(m->trained_parameters[6], 0.0) << "no bias: zero";
    EXPECT_EQ(m->trained_parameters[7], 0.0);
  }
}

TEST(OnnxImport, MatMulWithAddInEitherOrderIsOneDenseLayer) {
  for (bool bias_first : {false, true}) {
    ModelBuilder b({-1, 2});
    b.Init("w", {2, 2}, {1, 2, 3, 4});
    b.Init("c", {2}, {7, 8});
    b.Node("MatMul", {"x", "w"}, "h", "/fc/MatMul");
    b.Node("Add",
           bias_first ? std::vector<std::string>{"c", "h"} : std::vector<std::string>{"h", "c"},
           "y", "/fc/Add");
    b.Output("y");
    absl::StatusOr<ImportedModel> m = Import(b);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->spec.layers.size(), 1u);
    EXPECT_EQ(m->layers[0].op_type, "MatMul+Add");
    EXPECT_EQ(m->layers[0].node_name, "/fc/MatMul");
    const std::vector<double> want = {1, 3, 2, 4, 7, 8};
    for (int k = 0; k < 6; ++k) EXPECT_EQ(m->trained_parameters[k], want[k]) << k;
  }
  // Either node's name ends a frozen prefix there.
  for (const std::string name : {"/fc/MatMul", "/fc/Add"}) {
    ModelBuilder b({-1, 2});
    b.Init("w", {2, 2}, {1, 2, 3, 4});
    b.Init("c", {2}, {7, 8});
    b.Node("MatMul", {"x", "w"}, "h", "/fc/MatMul");
    b.Node("Add", {"h", "c"}, "a", "/fc/Add");
    b.Init("w2", {2, 1}, {1, 1});
    b.Node("MatMul", {"a", "w2"}, "y", "/head");
    b.Output("y");
    ImportOptions o;
    o.frozen_until = name;
    absl::StatusOr<ImportedModel> m = Import(b, o);
    ASSERT_TRUE(m.ok()) << name << ": " << m.status();
    EXPECT_EQ(m->spec.frozen.layers.size(), 1u) << name;
    EXPECT_EQ(m->spec.frozen.parameters.size(), 6) << name;
  }
}

TEST(OnnxImport, ConvKeepsTorchLayoutPadsAndStridesAndTypedFloat32Fields) {
  ModelBuilder b({-1, 2, 5, 5}, ::onnx::TensorProto::FLOAT);
  b.Init("cw", {3, 2, 3, 3}, Ramp(54, 0.01), /*float32=*/true, /*typed=*/true);
  b.Init("cb", {3}, {0.1, 0.2, 0.3}, true, true);
  auto* conv = b.Node("Conv", {"x", "cw", "cb"}, "c", "/conv/Conv");
  ModelBuilder::SetInts(conv, "kernel_shape", {3, 3});
  ModelBuilder::SetInts(conv, "pads", {1, 1, 1, 1});
  ModelBuilder::SetInts(conv, "strides", {2, 2});
  ModelBuilder::SetInts(conv, "dilations", {1, 1});
  ModelBuilder::SetInt(conv, "group", 1);
  b.Node("Relu", {"c"}, "r");
  ModelBuilder::SetInt(b.Node("Flatten", {"r"}, "f", "/Flatten"), "axis", 1);
  b.Init("w", {1, 27}, Ramp(27), true);
  ModelBuilder::SetInt(b.Node("Gemm", {"f", "w"}, "y"), "transB", 1);
  b.Output("y");
  absl::StatusOr<ImportedModel> m = Import(b);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->spec.layers.size(), 4u);
  const Conv2dParams& c = m->spec.layers[0].conv;
  EXPECT_EQ(c.in_channels, 2);
  EXPECT_EQ(c.out_channels, 3);
  EXPECT_EQ(c.stride_h, 2);
  EXPECT_EQ(c.pad_w, 1);
  EXPECT_EQ(m->spec.input_shape, Shape::Image(2, 5, 5));
  const std::vector<double> w = Ramp(54, 0.01);
  for (int k = 0; k < 54; ++k) {
    EXPECT_EQ(m->trained_parameters[k], static_cast<double>(static_cast<float>(w[k]))) << k;
  }
  EXPECT_EQ(m->trained_parameters[54], static_cast<double>(0.1f));
}

TEST(OnnxImport, FrozenPrefixByCountAndByNameSplitsTheParameters) {
  ImportOptions by_count;
  by_count.frozen_layers = 2;
  ImportOptions by_name;
  by_name.frozen_until = "/Relu";
  for (const ImportOptions& o : {by_count, by_name}) {
    absl::StatusOr<ImportedModel> m = Import(TwoLayerMlp(), o);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->spec.frozen.layers.size(), 2u);
    ASSERT_EQ(m->spec.layers.size(), 1u);
    ASSERT_EQ(m->spec.frozen.parameters.size(), 8);
    EXPECT_EQ(m->spec.frozen.parameters[6], 0.5);
    ASSERT_EQ(m->trained_parameters.size(), 6);
    EXPECT_EQ(m->trained_parameters[0], Ramp(4, -0.2)[0]);
    EXPECT_EQ(m->trained_parameters[5], 0.02);
    EXPECT_EQ(m->layers.size(), 3u);
  }
  // The forward pass does not depend on where the prefix ends.
  absl::StatusOr<ImportedModel> whole = Import(TwoLayerMlp());
  absl::StatusOr<ImportedModel> split = Import(TwoLayerMlp(), by_count);
  ASSERT_TRUE(whole.ok() && split.ok());
  Matrix x(2, 3);
  x << 1, -2, 0.5, 0.3, 0.2, -0.1;
  EXPECT_EQ(Forward(whole->spec, whole->trained_parameters, x),
            Forward(split->spec, split->trained_parameters, x));
}

TEST(OnnxImport, FrozenPrefixErrorsNameTheLimitAndTheNodes) {
  ImportOptions o;
  o.frozen_layers = 3;
  ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kInvalidArgument,
              {"frozen_layers 3 must be in [0, 2]", "3 layers"});
  o.frozen_layers = 1;  // the trained part would start with the Relu
  ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kInvalidArgument,
              {"must start with a dense or conv2d layer",
               "(with 1 frozen layer(s) the trained part starts at node 1 \"/Relu\" (Relu)"});
  o.frozen_layers = 1;
  o.frozen_until = "/Relu";
  ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kInvalidArgument, {"not both"});
  ImportOptions n;
  n.frozen_until = "/nope";
  ExpectError(
      Import(TwoLayerMlp(), n), absl::StatusCode::kInvalidArgument,
      {"frozen_until \"/nope\" names no layer node", "\"/fc1/Gemm\", \"/Relu\", \"/fc2/Gemm\""});
  n.frozen_until = "/fc2/Gemm";
  ExpectError(Import(TwoLayerMlp(), n), absl::StatusCode::kInvalidArgument, {"is the last layer"});
}

TEST(OnnxImport, ReshapeToBatchByMinusOneAndTheDynamicShapeSubgraphAreFlattens) {
  // [0, -1] as a constant, and torch's Shape -> Gather -> Unsqueeze -> Concat.
  for (bool dynamic : {false, true}) {
    ModelBuilder b({-1, 1, 2, 2});
    b.Init("cw", {2, 1, 1, 1}, {1, -1});
    b.Node("Conv", {"x", "cw"}, "c");
    if (dynamic) {
      b.Node("Shape", {"c"}, "s");
      b.IntInit("zero", {0})->clear_dims();  // a scalar index
      ModelBuilder::SetInt(b.Node("Gather", {"s", "zero"}, "n"), "axis", 0);
      b.IntInit("axes", {0});
      b.Node("Unsqueeze", {"n", "axes"}, "n1");
      b.IntInit("minus1", {-1});
      ModelBuilder::SetInt(b.Node("Concat", {"n1", "minus1"}, "shape"), "axis", 0);
    } else {
      b.IntInit("shape", {0, -1});
    }
    b.Node("Reshape", {"c", "shape"}, "f", "/Reshape");
    b.Init("w", {8, 1}, Ramp(8));
    b.Node("MatMul", {"f", "w"}, "y");
    b.Output("y");
    absl::StatusOr<ImportedModel> m = Import(b);
    ASSERT_TRUE(m.ok()) << (dynamic ? "dynamic: " : "constant: ") << m.status();
    ASSERT_EQ(m->spec.layers.size(), 3u);
    EXPECT_EQ(m->spec.layers[1].kind, LayerKind::kFlatten);
    EXPECT_EQ(m->layers[1].op_type, "Reshape");
  }
}

TEST(OnnxImport, ReshapeThatIsNotAFlattenIsRefusedWithItsTarget) {
  ModelBuilder b({-1, 1, 2, 2});
  b.Init("cw", {2, 1, 1, 1}, {1, -1});
  b.Node("Conv", {"x", "cw"}, "c");
  b.IntInit("shape", {0, 2, -1});
  b.Node("Reshape", {"c", "shape"}, "f", "/Reshape");
  b.Init("w", {8, 1}, Ramp(8));
  b.Node("MatMul", {"f", "w"}, "y");
  b.Output("y");
  ExpectError(
      Import(b), absl::StatusCode::kUnimplemented,
      {"node 1 \"/Reshape\" (Reshape)", "Reshape to [0, 2, -1] is not supported", "[N, 8]"});
}

TEST(OnnxImport, UnsupportedOpsNameTheNodeItsIndexAndItsOpType) {
  for (const std::string op : {"Sigmoid", "MaxPool", "BatchNormalization", "Softmax"}) {
    ModelBuilder b({-1, 3});
    b.Init("w", {3, 3}, Ramp(9));
    b.Node("MatMul", {"x", "w"}, "h");
    b.Node(op, {"h"}, "y", "/layer2/" + op);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kUnimplemented,
                {"node 1 \"/layer2/" + op + "\": op " + op +
                 " is not supported (supported: Gemm, MatMul+Add, Conv, Relu, Flatten, Reshape to "
                 "[N, -1])"});
  }
  ModelBuilder custom({-1, 3});
  custom.Node("Relu", {"x"}, "y", "/r")->set_domain("com.microsoft");
  custom.Output("y");
  ExpectError(Import(custom), absl::StatusCode::kUnimplemented,
              {"node 0 \"/r\": op com.microsoft.Relu is not supported"});
}

TEST(OnnxImport, ResidualAddIsRefusedAsNotSequential) {
  ModelBuilder b({-1, 3});
  b.Init("w1", {3, 3}, Ramp(9));
  b.Init("w2", {3, 3}, Ramp(9));
  ModelBuilder::SetInt(b.Node("Gemm", {"x", "w1"}, "h"), "transB", 1);
  b.Node("Relu", {"h"}, "r");
  ModelBuilder::SetInt(b.Node("Gemm", {"r", "w2"}, "g"), "transB", 1);
  b.Node("Add", {"g", "r"}, "y", "/Add");
  b.Output("y");
  ExpectError(Import(b), absl::StatusCode::kUnimplemented,
              {"node 3 \"/Add\": op Add is not supported here", "residual"});
  // A MatMul's Add of two activations.
  ModelBuilder m({-1, 3});
  m.Init("w", {3, 3}, Ramp(9));
  m.Node("Relu", {"x"}, "r");
  m.Node("MatMul", {"r", "w"}, "h");
  m.Node("Add", {"h", "r"}, "y", "/skip");
  m.Output("y");
  ExpectError(Import(m), absl::StatusCode::kUnimplemented,
              {"node 2 \"/skip\": op Add of two activations (a residual connection)"});
}

TEST(OnnxImport, BranchesMissingAndUnusedInitializersAreNotSequential) {
  {  // node 2 reads node 0's output: a skip connection
    ModelBuilder b({-1, 3});
    b.Init("w", {3, 3}, Ramp(9));
    b.Node("Relu", {"x"}, "a");
    b.Node("Relu", {"a"}, "b2");
    ModelBuilder::SetInt(b.Node("Gemm", {"a", "w"}, "y", "/fc"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 2 \"/fc\" (Gemm): input \"a\" is not the previous layer's output \"b2\"",
                 "earlier activation"});
  }
  {  // a missing initializer
    ModelBuilder b({-1, 3});
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "fc.weight"}, "y", "/fc"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 0 \"/fc\" (Gemm): weight B \"fc.weight\"", "missing initializer"});
  }
  {  // an unused one
    ModelBuilder b = TwoLayerMlp();
    b.Init("stray", {2}, {1, 2});
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"\"stray\" is not used by any layer"});
  }
  {  // two outputs
    ModelBuilder b = TwoLayerMlp();
    b.Output("h1");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument, {"2 outputs", "exactly 1"});
  }
  {  // the output is not the last layer's
    ModelBuilder b = TwoLayerMlp();
    b.model().mutable_graph()->mutable_output(0)->set_name("h2");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"graph output \"h2\" is not the last layer's output \"y\""});
  }
  {  // two data inputs
    ModelBuilder b = TwoLayerMlp();
    b.model().mutable_graph()->add_input()->set_name("z");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument, {"2 data inputs"});
  }
}

TEST(OnnxImport, WeightShapeMismatchesNameTheTensorItsShapeAndTheRunningShape) {
  {
    ModelBuilder b({-1, 3});
    b.Init("fc.weight", {2, 4}, Ramp(8));
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "fc.weight"}, "y", "/fc/Gemm"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 0 \"/fc/Gemm\" (Gemm): weight B \"fc.weight\" has shape [2, 4]",
                 "3 inputs it must be [out, 3]"});
  }
  {
    ModelBuilder b({-1, 3});
    b.Init("w", {3, 2}, Ramp(6));
    b.Init("c", {3}, Ramp(3));
    b.Node("Gemm", {"x", "w", "c"}, "y", "/g");
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"bias C \"c\" has shape [3], expected [2]"});
  }
  {
    ModelBuilder b({-1, 2, 4, 4});
    b.Init("cw", {3, 1, 3, 3}, Ramp(27));
    b.Node("Conv", {"x", "cw"}, "y", "/conv");
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 0 \"/conv\" (Conv): weight \"cw\" has shape [3, 1, 3, 3]",
                 "the input has 2 channels"});
  }
  {  // a dense layer on an image
    ModelBuilder b({-1, 1, 2, 2});
    b.Init("w", {1, 4}, Ramp(4));
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y", "/fc"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"expects a flat input", "[N, 1, 2, 2]", "add a Flatten"});
  }
  {  // a kernel larger than the padded image
    ModelBuilder b({-1, 1, 2, 2});
    b.Init("cw", {1, 1, 3, 3}, Ramp(9));
    b.Node("Conv", {"x", "cw"}, "y", "/conv");
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 0 \"/conv\" (Conv)", "does not fit the padded input"});
  }
}

TEST(OnnxImport, WrongInitializerSizesAndTypesAreRefused) {
  {  // raw_data one value short
    ModelBuilder b = TwoLayerMlp();
    auto* w = b.model().mutable_graph()->mutable_initializer(0);
    w->mutable_raw_data()->resize(5 * 8);
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"weight B \"w1\": raw_data has 40 bytes but the dims say 6 values of 8 bytes"});
  }
  {  // a typed field with too many values
    ModelBuilder b({-1, 2});
    b.Init("w", {1, 2}, {1, 2, 3}, false, /*typed=*/true);
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"double_data holds 3 values but the dims say 2"});
  }
  {  // int8 weights
    ModelBuilder b = TwoLayerMlp();
    b.model().mutable_graph()->mutable_initializer(0)->set_data_type(::onnx::TensorProto::INT8);
    ExpectError(Import(b), absl::StatusCode::kUnimplemented,
                {"\"w1\": has element type int8 (supported: float, double)"});
  }
  {  // external data
    ModelBuilder b = TwoLayerMlp();
    b.model().mutable_graph()->mutable_initializer(0)->set_data_location(
        ::onnx::TensorProto::EXTERNAL);
    ExpectError(Import(b), absl::StatusCode::kUnimplemented, {"external data"});
  }
}

TEST(OnnxImport, NanAndInfWeightsAreRefused) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    ModelBuilder b({-1, 2});
    b.Init("w", {1, 2}, {1, bad});
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y", "/fc"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
                {"node 0 \"/fc\" (Gemm): weight B \"w\": value 1 is", "must be finite"});
  }
}

TEST(OnnxImport, UnsupportedAttributesAreRefusedByName) {
  struct Case {
    std::string what;
    std::function<void(::onnx::NodeProto*)> set;
    std::string needle;
  };
  const std::vector<Case> conv_cases = {
      {"group", [](auto* n) { ModelBuilder::SetInt(n, "group", 2); }, "group=2 is not supported"},
      {"dilations",
       [](auto* n) {
         ModelBuilder::SetInts(n, "dilations", {2, 2});
       },
       "dilations [2, 2] are not supported"},
      {"pads",
       [](auto* n) {
         ModelBuilder::SetInts(n, "pads", {1, 0, 0, 0});
       },
       "pads [1, 0, 0, 0] are not symmetric"},
      {"auto_pad", [](auto* n) { ModelBuilder::SetString(n, "auto_pad", "SAME_UPPER"); },
       "auto_pad SAME_UPPER is not supported"},
  };
  for (const Case& c : conv_cases) {
    ModelBuilder b({-1, 2, 4, 4});
    b.Init("cw", {2, 2, 3, 3}, Ramp(36));
    c.set(b.Node("Conv", {"x", "cw"}, "y", "/conv"));
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kUnimplemented, {"node 0 \"/conv\" (Conv)", c.needle});
  }
  ModelBuilder a = TwoLayerMlp();
  ModelBuilder::SetFloat(a.model().mutable_graph()->mutable_node(0), "alpha", 0.5f);
  ExpectError(Import(a), absl::StatusCode::kUnimplemented,
              {"node 0 \"/fc1/Gemm\" (Gemm): alpha=0.5 beta=1 is not supported"});
  ModelBuilder t = TwoLayerMlp();
  ModelBuilder::SetInt(t.model().mutable_graph()->mutable_node(0), "transA", 1);
  ExpectError(Import(t), absl::StatusCode::kUnimplemented, {"transA=1 is not supported"});
  ModelBuilder f({-1, 1, 2, 2});
  ModelBuilder::SetInt(f.Node("Flatten", {"x"}, "y", "/flat"), "axis", 2);
  f.Output("y");
  ExpectError(Import(f), absl::StatusCode::kUnimplemented,
              {"node 0 \"/flat\" (Flatten): axis=2 is not supported"});
}

TEST(OnnxImport, MalformedBytesAreInvalidArgumentNeverACrash) {
  ExpectError(ImportOnnx("", {}), absl::StatusCode::kInvalidArgument, {"empty"});
  ExpectError(ImportOnnx(std::string("\xff\xff\xff\xff\x0f garbage", 12), {}),
              absl::StatusCode::kInvalidArgument, {"do not parse as an onnx.ModelProto"});
  const std::string good = TwoLayerMlp().Bytes();
  ExpectError(ImportOnnx(good.substr(0, good.size() / 2), {}), absl::StatusCode::kInvalidArgument,
              {"not a valid ONNX model"});
  ::onnx::ModelProto no_graph;
  no_graph.set_ir_version(7);
  ExpectError(ImportOnnx(no_graph.SerializeAsString() + std::string("\x08\x07", 2), {}),
              absl::StatusCode::kInvalidArgument, {"no graph"});
  ModelBuilder old = TwoLayerMlp();
  old.model().mutable_opset_import(0)->set_version(7);
  ExpectError(Import(old), absl::StatusCode::kUnimplemented, {"opset 7 is not supported"});
  ModelBuilder none = TwoLayerMlp();
  none.model().clear_opset_import();
  ExpectError(Import(none), absl::StatusCode::kInvalidArgument, {"no opset"});
}

TEST(OnnxImport, HugeDimsAndTooManyParametersHitTheLimitsBeforeAllocating) {
  {  // 2^40 values claimed by the dims, 16 bytes present
    ModelBuilder b({-1, 2});
    auto* w = b.Init("w", {1, 2}, {1, 2});
    w->set_dims(0, int64_t{1} << 20);
    w->set_dims(1, int64_t{1} << 20);
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kResourceExhausted, {"the limit"});
  }
  {  // a dim past max_dim
    ModelBuilder b({-1, 2});
    auto* w = b.Init("w", {1, 2}, {1, 2});
    w->set_dims(0, int64_t{1} << 40);
    ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y"), "transB", 1);
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kResourceExhausted, {"dim 1099511627776 exceeds"});
  }
  {  // a network past max_parameters
    ImportOptions o;
    o.limits.max_parameters = 10;
    ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kResourceExhausted,
                {"node 2 \"/fc2/Gemm\" (Gemm): weight B \"w2\"",
                 "at most 10 parameters; 8 before this node"});
  }
  {  // a file past max_bytes
    ImportOptions o;
    o.limits.max_bytes = 100;
    ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kResourceExhausted,
                {"more than the limit of 100"});
  }
  {  // a conv whose padding makes the output huge
    ModelBuilder b({-1, 1, 4, 4});
    b.Init("cw", {4, 1, 1, 1}, Ramp(4));
    ModelBuilder::SetInts(b.Node("Conv", {"x", "cw"}, "y", "/conv"), "pads",
                          {1 << 19, 1 << 19, 1 << 19, 1 << 19});
    b.Output("y");
    ExpectError(Import(b), absl::StatusCode::kResourceExhausted,
                {"node 0 \"/conv\" (Conv): output [4, 1048580, 1048580]"});
  }
}

TEST(OnnxImport, SymbolicInputDimsNeedAnInputShapeThatAgreesWithTheGraph) {
  ModelBuilder b({-1, -1});
  b.Init("w", {1, 3}, Ramp(3));
  ModelBuilder::SetInt(b.Node("Gemm", {"x", "w"}, "y"), "transB", 1);
  b.Output("y");
  ExpectError(Import(b), absl::StatusCode::kInvalidArgument,
              {"graph input \"x\" dim 1 is symbolic", "give the input shape"});
  ImportOptions o;
  o.input_shape = Shape::Flat(3);
  absl::StatusOr<ImportedModel> m = Import(b, o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->spec.input_shape, Shape::Flat(3));
  o.input_shape = Shape::Flat(4);
  ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kInvalidArgument,
              {"input shape [4] does not match graph input \"x\" dim 1 = 3"});
  o.input_shape = Shape::Image(1, 1, 3);
  ExpectError(Import(TwoLayerMlp(), o), absl::StatusCode::kInvalidArgument, {"of rank 2"});
  ModelBuilder int_input({-1, 3}, ::onnx::TensorProto::INT64);
  int_input.Node("Relu", {"x"}, "y");
  int_input.Output("y");
  ExpectError(Import(int_input), absl::StatusCode::kUnimplemented, {"element type int64"});
}

TEST(OnnxImport, ConstantNodesAndIdentityAreWeightsToo) {
  ModelBuilder b({-1, 2});
  auto* c = b.Node("Constant", {}, "wc", "/Constant");
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(::onnx::AttributeProto::TENSOR);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_dims(2);
  a->mutable_t()->set_data_type(::onnx::TensorProto::DOUBLE);
  a->mutable_t()->add_double_data(3);
  a->mutable_t()->add_double_data(4);
  b.Node("Identity", {"wc"}, "w");
  b.Node("Identity", {"x"}, "x1");
  ModelBuilder::SetInt(b.Node("Gemm", {"x1", "w"}, "y"), "transB", 1);
  b.Output("y");
  absl::StatusOr<ImportedModel> m = Import(b);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trained_parameters[0], 3);
  EXPECT_EQ(m->trained_parameters[1], 4);
}

}  // namespace
}  // namespace agt::onnx
