// A bounded-time fuzz of the importer: real ONNX files (the exporter's, a
// hand-built MatMul + Add / Reshape / Constant graph, and the torch-made
// files when torch is there) mutated by bit flips, truncation, byte
// insertions and deletions, chunk duplication and varint (field-length)
// changes, for a fixed number of iterations from a fixed seed, and parsed
// models with fields changed (dims, attributes, types, data sizes, node
// order, ops, inputs, the input shape). Every
// mutant must give a status or a valid model; a crash, a sanitizer report
// or an accepted model that fails its own checks fails the test. Built
// under ASan/UBSan by deploy/run-tests.sh.
#include <gtest/gtest.h>

#include <chrono>

#include "core/common/rng.h"
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#include "tests/onnx/onnx_test_util.h"

namespace agt::onnx {
namespace {

using test::ModelBuilder;

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  // The exporter's output for a conv model with a frozen prefix.
  ModelSpec spec;
  spec.input_shape = Shape::Image(1, 5, 5);
  Conv2dParams c;
  c.in_channels = 1;
  c.out_channels = 2;
  c.kernel_h = c.kernel_w = 3;
  c.pad_h = c.pad_w = 1;
  c.stride_h = c.stride_w = 2;
  spec.frozen.layers = {LayerSpec::Conv2d(c), LayerSpec::Relu(), LayerSpec::Flatten()};
  spec.frozen.parameters = Vector::LinSpaced(2 * 9 + 2, -1, 1);
  spec.layers = {LayerSpec::Dense(18, 4), LayerSpec::Relu(), LayerSpec::Dense(4, 2)};
  const Vector theta = InitParameters(spec, 1);
  for (bool f32 : {false, true}) {
    ExportOptions eo;
    eo.float32 = f32;
    absl::StatusOr<std::string> bytes = ExportOnnx(spec, theta, eo);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    if (bytes.ok()) seeds.push_back(*bytes);
  }
  // MatMul + Add, a constant Reshape target, a Constant node.
  ModelBuilder b({-1, 1, 2, 2});
  b.Init("cw", {2, 1, 1, 1}, {1, -1});
  b.Node("Conv", {"x", "cw"}, "c");
  b.IntInit("shape", {0, -1});
  b.Node("Reshape", {"c", "shape"}, "f");
  b.Init("w", {8, 3}, test::Ramp(24));
  b.Init("bias", {3}, {1, 2, 3}, true, true);
  b.Node("MatMul", {"f", "w"}, "h");
  b.Node("Add", {"h", "bias"}, "y");
  b.Output("y");
  seeds.push_back(b.Bytes());
  const test::TorchCases& t = test::GetTorchCases();
  if (t.skip.empty()) {
    for (const char* name : {"mixed.onnx", "conv.onnx", "dense_float32.onnx", "sigmoid.onnx"}) {
      seeds.push_back(test::ReadBytes(t.dir / name));
    }
  }
  return seeds;
}

std::string Mutate(const std::string& seed, Rng* rng) {
  std::string s = seed;
  const int edits = 1 + static_cast<int>(rng->UniformInt(4));
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t at = rng->UniformInt(s.size());
    switch (rng->UniformInt(7)) {
      case 0:  // bit flip
        s[at] = static_cast<char>(s[at] ^ (1 << rng->UniformInt(8)));
        break;
      case 1:  // truncation
        s.resize(at);
        break;
      case 2:  // random bytes inserted
        s.insert(at, std::string(1 + rng->UniformInt(8), static_cast<char>(rng->UniformInt(256))));
        break;
      case 3:  // a range deleted
        s.erase(at, 1 + rng->UniformInt(16));
        break;
      case 4:  // a chunk duplicated
        s.insert(at, s.substr(rng->UniformInt(s.size()), 1 + rng->UniformInt(32)));
        break;
      case 5:  // a varint made longer or larger (lengths, dims, field numbers)
        s[at] = static_cast<char>(rng->UniformInt(2) == 0 ? 0xff : 0x7f);
        break;
      default:  // a byte replaced by a small value (lengths, enum values)
        s[at] = static_cast<char>(rng->UniformInt(16));
        break;
    }
  }
  return s;
}

TEST(OnnxFuzz, MutatedFilesGiveAStatusOrAValidModelNeverACrash) {
  const std::vector<std::string> seeds = Seeds();
  ASSERT_GE(seeds.size(), 3u);
  // Every seed imports as it is.
  for (const std::string& s : seeds) {
    absl::StatusOr<ImportedModel> m = ImportOnnx(s, {});
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented) << m.status();  // sigmoid
    }
  }
  Rng rng(20261202);
  ImportOptions options;
  // Small limits: mutated dims must not make it allocate much.
  options.limits.max_parameters = 1 << 16;
  options.limits.max_values_per_sample = 1 << 16;
  const auto start = std::chrono::steady_clock::now();
  const int kIterations = 20000;
  int accepted = 0, refused = 0, done = 0;
  for (int it = 0; it < kIterations; ++it) {
    // Time-bounded too, for slow sanitizer builds: at most 8 s.
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(8)) break;
    const std::string mutant = Mutate(seeds[it % seeds.size()], &rng);
    ImportOptions o = options;
    if (it % 3 == 1) o.frozen_layers = 3;
    absl::StatusOr<ImportedModel> m = ImportOnnx(mutant, o);
    ++done;
    if (m.ok()) {
      ++accepted;
      ASSERT_TRUE(m->spec.Validate().ok()) << "iteration " << it << ": " << m->spec.Validate();
      ASSERT_EQ(m->trained_parameters.size(), m->spec.NumParameters()) << "iteration " << it;
      ASSERT_TRUE(m->trained_parameters.allFinite()) << "iteration " << it;
    } else {
      ++refused;
      ASSERT_FALSE(m.status().message().empty()) << "iteration " << it;
      ASSERT_NE(m.status().code(), absl::StatusCode::kInternal) << m.status();
    }
  }
  EXPECT_GE(done, 500) << "too few iterations in the time bound";
  EXPECT_GT(refused, 0);
  std::cout << done << " mutants: " << accepted << " imported, " << refused << " refused\n";
}

// Structured mutations: parsed seeds with one field changed the way a
// careless exporter (or an attacker) would: a dim, an attribute's values, a
// tensor's type or data, a node's inputs, order or op, the graph's outputs.
void MutateStructure(::onnx::ModelProto* m, Rng* rng) {
  ::onnx::GraphProto* g = m->mutable_graph();
  const int64_t wild[] = {-1, 0, 1, 2, 3, 7, 1 << 20, int64_t{1} << 40, -(int64_t{1} << 62)};
  auto value = [&] { return wild[rng->UniformInt(std::size(wild))]; };
  switch (rng->UniformInt(8)) {
    case 0:
      if (g->initializer_size() > 0) {
        auto* t = g->mutable_initializer(rng->UniformInt(g->initializer_size()));
        if (t->dims_size() > 0) t->set_dims(rng->UniformInt(t->dims_size()), value());
      }
      break;
    case 1:
      if (g->node_size() > 0) {
        auto* n = g->mutable_node(rng->UniformInt(g->node_size()));
        if (n->attribute_size() > 0) {
          auto* a = n->mutable_attribute(rng->UniformInt(n->attribute_size()));
          for (int k = 0; k < a->ints_size(); ++k) a->set_ints(k, value());
          a->set_i(value());
          if (rng->UniformInt(4) == 0) a->set_type(::onnx::AttributeProto::FLOATS);
        }
      }
      break;
    case 2:
      if (g->initializer_size() > 0) {
        auto* t = g->mutable_initializer(rng->UniformInt(g->initializer_size()));
        t->set_data_type(static_cast<int32_t>(rng->UniformInt(17)));
      }
      break;
    case 3:
      if (g->initializer_size() > 0) {
        auto* t = g->mutable_initializer(rng->UniformInt(g->initializer_size()));
        t->mutable_raw_data()->resize(rng->UniformInt(t->raw_data().size() + 9));
      }
      break;
    case 4:
      if (g->node_size() > 1) {
        g->mutable_node()->SwapElements(rng->UniformInt(g->node_size()),
                                        rng->UniformInt(g->node_size()));
      }
      break;
    case 5:
      if (g->node_size() > 0) {
        auto* n = g->mutable_node(rng->UniformInt(g->node_size()));
        const char* ops[] = {"Gemm",  "MatMul", "Conv",   "Relu",      "Flatten",  "Reshape", "Add",
                             "Shape", "Gather", "Concat", "Unsqueeze", "Identity", "Constant"};
        n->set_op_type(ops[rng->UniformInt(std::size(ops))]);
      }
      break;
    case 6:
      if (g->node_size() > 0) {
        auto* n = g->mutable_node(rng->UniformInt(g->node_size()));
        if (n->input_size() > 0 && g->node_size() > 0) {
          const auto& other = g->node(rng->UniformInt(g->node_size()));
          n->set_input(rng->UniformInt(n->input_size()),
                       other.output_size() > 0 ? other.output(0) : "");
        }
      }
      break;
    default:
      if (g->input_size() > 0) {
        auto* shape = g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
        if (shape->dim_size() > 0) {
          shape->mutable_dim(rng->UniformInt(shape->dim_size()))->set_dim_value(value());
        }
      }
      break;
  }
}

TEST(OnnxFuzz, StructurallyMutatedModelsGiveAStatusOrAValidModel) {
  const std::vector<std::string> seeds = Seeds();
  Rng rng(7);
  ImportOptions options;
  options.limits.max_parameters = 1 << 16;
  options.limits.max_values_per_sample = 1 << 16;
  const auto start = std::chrono::steady_clock::now();
  int done = 0, accepted = 0;
  for (int it = 0; it < 20000; ++it) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(6)) break;
    ::onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(seeds[it % seeds.size()]));
    const int edits = 1 + static_cast<int>(rng.UniformInt(3));
    for (int e = 0; e < edits; ++e) MutateStructure(&m, &rng);
    ImportOptions o = options;
    if (it % 4 == 1) o.frozen_layers = static_cast<int>(rng.UniformInt(6));
    absl::StatusOr<ImportedModel> r = ImportOnnx(m.SerializeAsString(), o);
    ++done;
    if (r.ok()) {
      ++accepted;
      ASSERT_TRUE(r->spec.Validate().ok()) << "iteration " << it;
      ASSERT_EQ(r->trained_parameters.size(), r->spec.NumParameters()) << "iteration " << it;
    } else {
      ASSERT_FALSE(r.status().message().empty()) << "iteration " << it;
      ASSERT_NE(r.status().code(), absl::StatusCode::kInternal) << r.status();
    }
  }
  EXPECT_GE(done, 500);
  std::cout << done << " structural mutants: " << accepted << " imported\n";
}

}  // namespace
}  // namespace agt::onnx
