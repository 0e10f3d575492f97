// The importer walks graph.node once, in order (ONNX requires a topological
// order), keeping the running activation (its name and its shape). Constant
// nodes and initializers are tensors; Shape / Gather / Unsqueeze / Concat
// compute small integer vectors (a Reshape's target) in which the batch
// dimension is a symbol; every other node must be a supported layer whose
// data input is the running activation.
#include "core/onnx/import.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/layers/registry.h"
#include "core/onnx/tensor.h"
#include "onnx/onnx_pb.h"

namespace agt::onnx {
namespace {

using ::onnx::AttributeProto;
using ::onnx::GraphProto;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::TensorProto;

constexpr char kSupported[] =
    "supported: Gemm, MatMul+Add, Conv, Relu, Flatten, Reshape to [N, -1]";
// The batch dimension inside a shape computation.
constexpr int64_t kBatch = std::numeric_limits<int64_t>::min();

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

std::string NodeLabel(const NodeProto& node, int index) {
  return absl::StrCat("node ", index, " \"", node.name(), "\"");
}

// "node 3 "/fc/Gemm" (Gemm): <msg>"
absl::Status NodeError(absl::StatusCode code, const NodeProto& node, int index,
                       absl::string_view msg) {
  return absl::Status(code, absl::StrCat(NodeLabel(node, index), " (", node.op_type(), "): ", msg));
}

// A small integer vector from a Constant, an initializer or a shape
// computation; kBatch marks the batch dimension.
struct IntValue {
  std::vector<int64_t> values;
  bool scalar = false;
};

// One core layer under construction.
struct PendingLayer {
  ImportedLayer info;
  std::string add_name;        // a MatMul's Add, which names the layer too
  std::vector<double> params;  // this layer's values in the core's layout
};

class Importer {
 public:
  Importer(const ModelProto& model, const ImportOptions& options)
      : model_(model), graph_(model.graph()), options_(options) {}

  absl::StatusOr<ImportedModel> Run();

 private:
  absl::Status CheckModel();
  absl::Status CollectInitializers();
  absl::Status ReadInput();
  absl::Status Walk();
  absl::Status Finish(ImportedModel* out);

  // One node of each kind; `i` is its index in graph.node.
  absl::Status Constant(const NodeProto& node, int i);
  absl::Status Identity(const NodeProto& node, int i);
  absl::Status ShapeOp(const NodeProto& node, int i);
  absl::Status Gemm(const NodeProto& node, int i);
  absl::Status MatMul(const NodeProto& node, int i);
  absl::Status Conv(const NodeProto& node, int i);
  absl::Status Relu(const NodeProto& node, int i);
  absl::Status Flatten(const NodeProto& node, int i);
  absl::Status Reshape(const NodeProto& node, int i);

  // The node's data input must be the running activation.
  absl::Status CheckChained(const NodeProto& node, int i, int min_inputs, int max_inputs);
  // A float tensor input of a node (an initializer or a Constant): its dims
  // and values; marks it used. `role` names it in messages ("weight").
  absl::Status Weight(const NodeProto& node, int i, int input, absl::string_view role,
                      std::vector<int64_t>* dims, std::vector<double>* values);
  absl::StatusOr<IntValue> IntInput(const NodeProto& node, int i, int input);
  absl::Status AddLayer(const NodeProto& node, int i, absl::string_view op, LayerSpec spec,
                        std::vector<double> params);
  absl::Status ChargeParameters(const NodeProto& node, int i, int64_t count);

  const ModelProto& model_;
  const GraphProto& graph_;
  const ImportOptions& options_;

  std::map<std::string, const TensorProto*> tensors_;  // initializers and Constant outputs
  std::set<std::string> used_tensors_;
  std::map<std::string, IntValue> ints_;            // shape computations
  std::map<std::string, Shape> activation_shapes_;  // per activation, without the batch dim
  std::string graph_input_;
  int64_t batch_value_ = 0;  // the graph input's batch dim when it is a number, else 0
  std::string current_;      // the running activation
  Shape shape_;              // its shape
  int64_t parameters_ = 0;
  std::vector<PendingLayer> layers_;
  int64_t opset_ = 0;
};

absl::Status Importer::CheckModel() {
  if (!model_.has_graph()) return Invalid("the model has no graph");
  for (const auto& op : model_.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = op.version();
  }
  if (opset_ == 0) {
    return Invalid("the model imports no opset of the default domain (opset_import)");
  }
  if (opset_ < 9 || opset_ > 20) {
    return absl::UnimplementedError(
        absl::StrCat("opset ", opset_,
                     " is not supported (supported: 9 to 20; export with "
                     "opset_version=13)"));
  }
  if (graph_.node_size() > options_.limits.max_nodes) {
    return absl::ResourceExhaustedError(absl::StrCat("the graph has ", graph_.node_size(),
                                                     " nodes, more than the limit of ",
                                                     options_.limits.max_nodes));
  }
  if (graph_.output_size() != 1) {
    return Invalid(absl::StrCat("the graph has ", graph_.output_size(),
                                " outputs; a sequential network has exactly 1"));
  }
  return absl::OkStatus();
}

absl::Status Importer::CollectInitializers() {
  if (graph_.sparse_initializer_size() > 0) {
    return absl::UnimplementedError("sparse initializers are not supported");
  }
  for (const TensorProto& t : graph_.initializer()) {
    if (t.name().empty()) return Invalid("an initializer has no name");
    if (!tensors_.emplace(t.name(), &t).second) {
      return Invalid(absl::StrCat("initializer \"", t.name(), "\" is defined twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status Importer::ReadInput() {
  // Inputs that are also initializers (keep_initializers_as_inputs) are
  // weights, not data.
  const ::onnx::ValueInfoProto* input = nullptr;
  int count = 0;
  for (const auto& v : graph_.input()) {
    if (tensors_.count(v.name()) > 0) continue;
    input = &v;
    ++count;
  }
  if (count != 1) {
    return Invalid(absl::StrCat("the graph has ", count,
                                " data inputs (inputs without an initializer); a sequential "
                                "network has exactly 1"));
  }
  graph_input_ = input->name();
  if (!input->type().has_tensor_type()) {
    return Invalid(absl::StrCat("graph input \"", graph_input_, "\" is not a tensor"));
  }
  const auto& tt = input->type().tensor_type();
  if (tt.elem_type() != TensorProto::FLOAT && tt.elem_type() != TensorProto::DOUBLE) {
    return absl::UnimplementedError(
        absl::StrCat("graph input \"", graph_input_, "\" has element type ",
                     DataTypeName(tt.elem_type()), " (supported: float, double)"));
  }
  // dims[0] is the batch; the rest are one sample's shape, known numbers or
  // symbols that options.input_shape replaces.
  std::vector<int64_t> dims;  // -1: symbolic
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) {
      dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
  }
  const Shape& override_shape = options_.input_shape;
  if (!tt.has_shape() && override_shape.empty()) {
    return Invalid(absl::StrCat("graph input \"", graph_input_,
                                "\" has no shape: give the input shape ([C, H, W] or [D])"));
  }
  if (tt.has_shape() && dims.size() != 2 && dims.size() != 4) {
    return absl::UnimplementedError(absl::StrCat("graph input \"", graph_input_, "\" has rank ",
                                                 dims.size(),
                                                 "; supported: [N, D] or [N, C, H, W]"));
  }
  if (!dims.empty()) batch_value_ = dims[0] > 0 ? dims[0] : 0;
  std::vector<int> sample;
  if (!override_shape.empty()) {
    if (!override_shape.is_flat() && !override_shape.is_image()) {
      return Invalid(
          absl::StrCat("input shape ", override_shape.ToString(), " must be [D] or [C, H, W]"));
    }
    if (!dims.empty() && dims.size() != override_shape.dims.size() + 1) {
      return Invalid(absl::StrCat("input shape ", override_shape.ToString(),
                                  " does not match graph input \"", graph_input_, "\" of rank ",
                                  dims.size()));
    }
    for (size_t k = 0; k < override_shape.dims.size(); ++k) {
      const int64_t want = override_shape.dims[k];
      if (want <= 0 || want > options_.limits.max_dim) {
        return Invalid(absl::StrCat("input shape ", override_shape.ToString(),
                                    ": dims must be in [1, ", options_.limits.max_dim, "]"));
      }
      if (!dims.empty() && dims[k + 1] > 0 && dims[k + 1] != want) {
        return Invalid(absl::StrCat("input shape ", override_shape.ToString(),
                                    " does not match graph input \"", graph_input_, "\" dim ",
                                    k + 1, " = ", dims[k + 1]));
      }
    }
    sample = override_shape.dims;
  } else {
    for (size_t k = 1; k < dims.size(); ++k) {
      if (dims[k] <= 0) {
        return Invalid(absl::StrCat("graph input \"", graph_input_, "\" dim ", k,
                                    " is symbolic or not positive: give the input shape ([C, H, "
                                    "W] or [D])"));
      }
      if (dims[k] > options_.limits.max_dim) {
        return absl::ResourceExhaustedError(
            absl::StrCat("graph input \"", graph_input_, "\" dim ", k, " = ", dims[k],
                         " exceeds the limit of ", options_.limits.max_dim));
      }
      sample.push_back(static_cast<int>(dims[k]));
    }
  }
  shape_ = Shape{sample};
  int64_t values = 1;
  for (int d : sample) values *= d;  // each <= 2^20, at most 3 dims: no overflow
  if (values > options_.limits.max_values_per_sample) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "graph input \"", graph_input_, "\" has ", values,
        " values per sample, more than the limit of ", options_.limits.max_values_per_sample));
  }
  current_ = graph_input_;
  activation_shapes_[current_] = shape_;
  return absl::OkStatus();
}

absl::Status Importer::Walk() {
  for (int i = 0; i < graph_.node_size(); ++i) {
    const NodeProto& node = graph_.node(i);
    const std::string& op = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return absl::UnimplementedError(absl::StrCat(NodeLabel(node, i), ": op ", node.domain(), ".",
                                                   op, " is not supported (", kSupported, ")"));
    }
    absl::Status s;
    if (op == "Constant") {
      s = Constant(node, i);
    } else if (op == "Identity") {
      s = Identity(node, i);
    } else if (op == "Shape" || op == "Gather" || op == "Unsqueeze" || op == "Concat") {
      s = ShapeOp(node, i);
    } else if (op == "Gemm") {
      s = Gemm(node, i);
    } else if (op == "MatMul") {
      s = MatMul(node, i);
      if (s.ok() && i + 1 < graph_.node_size() && graph_.node(i + 1).op_type() == "Add" &&
          graph_.node(i + 1).input_size() == 2) {
        ++i;  // MatMul consumed its Add
      }
    } else if (op == "Conv") {
      s = Conv(node, i);
    } else if (op == "Relu") {
      s = Relu(node, i);
    } else if (op == "Flatten") {
      s = Flatten(node, i);
    } else if (op == "Reshape") {
      s = Reshape(node, i);
    } else if (op == "Add") {
      s = absl::UnimplementedError(
          absl::StrCat(NodeLabel(node, i),
                       ": op Add is not supported here: only as the bias of the MatMul "
                       "right before it (a residual or other Add is not sequential; ",
                       kSupported, ")"));
    } else {
      s = absl::UnimplementedError(
          absl::StrCat(NodeLabel(node, i), ": op ", op, " is not supported (", kSupported, ")"));
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Importer::CheckChained(const NodeProto& node, int i, int min_inputs, int max_inputs) {
  if (node.input_size() < min_inputs || node.input_size() > max_inputs) {
    return NodeError(
        absl::StatusCode::kInvalidArgument, node, i,
        absl::StrCat("has ", node.input_size(), " inputs, expected ",
                     min_inputs == max_inputs ? absl::StrCat(min_inputs)
                                              : absl::StrCat(min_inputs, " to ", max_inputs)));
  }
  if (node.output_size() != 1) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("has ", node.output_size(), " outputs, expected 1"));
  }
  if (node.input(0) != current_) {
    std::string what = tensors_.count(node.input(0)) > 0 ? "a constant"
                       : activation_shapes_.count(node.input(0)) > 0
                           ? "an earlier activation (a branch or skip connection)"
                           : "not defined before this node";
    return NodeError(
        absl::StatusCode::kInvalidArgument, node, i,
        absl::StrCat("input \"", node.input(0), "\" is not the previous layer's output \"",
                     current_, "\" (it is ", what, "); only sequential graphs are supported"));
  }
  for (int k = 1; k < node.input_size(); ++k) {
    if (node.input(k) == current_ || activation_shapes_.count(node.input(k)) > 0) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                       absl::StrCat("input ", k, " \"", node.input(k),
                                    "\" is an activation, expected a constant; only sequential "
                                    "graphs are supported"));
    }
  }
  if (node.output(0).empty() || activation_shapes_.count(node.output(0)) > 0 ||
      tensors_.count(node.output(0)) > 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("output \"", node.output(0), "\" is empty or defined twice"));
  }
  return absl::OkStatus();
}

absl::Status Importer::Weight(const NodeProto& node, int i, int input, absl::string_view role,
                              std::vector<int64_t>* dims, std::vector<double>* values) {
  const std::string& name = node.input(input);
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat(role, " \"", name,
                                  "\" is not an initializer or a Constant (missing initializer)"));
  }
  used_tensors_.insert(name);
  const int64_t budget = options_.limits.max_parameters - parameters_;
  absl::Status s = ReadFloatTensor(*it->second, budget, options_.limits.max_dim, dims, values);
  if (!s.ok()) {
    const std::string limit =
        s.code() == absl::StatusCode::kResourceExhausted
            ? absl::StrCat(" (the whole network may have at most ", options_.limits.max_parameters,
                           " parameters; ", parameters_, " before this node)")
            : "";
    return absl::Status(s.code(), absl::StrCat(NodeLabel(node, i), " (", node.op_type(), "): ",
                                               role, " \"", name, "\": ", s.message(), limit));
  }
  return absl::OkStatus();
}

absl::StatusOr<IntValue> Importer::IntInput(const NodeProto& node, int i, int input) {
  const std::string& name = node.input(input);
  if (auto it = ints_.find(name); it != ints_.end()) return it->second;
  auto t = tensors_.find(name);
  if (t == tensors_.end()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("input \"", name, "\" is not a constant or a shape computation"));
  }
  used_tensors_.insert(name);
  IntValue v;
  std::vector<int64_t> dims;
  if (absl::Status s = ReadIntTensor(*t->second, /*max_values=*/64, &dims, &v.values); !s.ok()) {
    return NodeError(s.code(), node, i, absl::StrCat("input \"", name, "\": ", s.message()));
  }
  if (dims.size() > 1) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     absl::StrCat("input \"", name, "\" has rank ", dims.size(),
                                  "; shape computations use scalars and 1-D tensors"));
  }
  v.scalar = dims.empty();
  return v;
}

absl::Status Importer::ChargeParameters(const NodeProto& node, int i, int64_t count) {
  parameters_ += count;
  if (parameters_ > options_.limits.max_parameters) {
    return NodeError(absl::StatusCode::kResourceExhausted, node, i,
                     absl::StrCat("the network has more than ", options_.limits.max_parameters,
                                  " parameters (the limit)"));
  }
  return absl::OkStatus();
}

absl::Status Importer::AddLayer(const NodeProto& node, int i, absl::string_view op, LayerSpec spec,
                                std::vector<double> params) {
  absl::StatusOr<std::unique_ptr<Layer>> layer = MakeLayer(spec, shape_);
  if (!layer.ok()) {
    return NodeError(
        absl::StatusCode::kInvalidArgument, node, i,
        absl::StrCat(layer.status().message(), " (running shape ", shape_.ToString(), ")"));
  }
  const Shape out = (*layer)->output_shape();
  if (out.size() <= 0 || out.size() > options_.limits.max_values_per_sample) {
    return NodeError(
        absl::StatusCode::kResourceExhausted, node, i,
        absl::StrCat("output ", out.ToString(), " has ", out.size(), " values per sample (limit ",
                     options_.limits.max_values_per_sample, ")"));
  }
  if (static_cast<Index>(params.size()) != (*layer)->num_params()) {
    return NodeError(absl::StatusCode::kInternal, node, i, "parameter count mismatch");
  }
  PendingLayer p;
  p.info.spec = spec;
  p.info.node_index = i;
  p.info.node_name = node.name();
  p.info.op_type = std::string(op);
  p.params = std::move(params);
  layers_.push_back(std::move(p));
  shape_ = out;
  current_ = node.output(0);
  activation_shapes_[current_] = shape_;
  return absl::OkStatus();
}

// Attribute readers: absent attributes keep the default; a wrong type is an
// error naming the attribute.
const AttributeProto* FindAttribute(const NodeProto& node, absl::string_view name) {
  for (const AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

absl::Status IntAttribute(const NodeProto& node, int i, absl::string_view name, int64_t* out) {
  const AttributeProto* a = FindAttribute(node, name);
  if (a == nullptr) return absl::OkStatus();
  if (a->type() != AttributeProto::INT) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("attribute ", name, " must be an int"));
  }
  *out = a->i();
  return absl::OkStatus();
}

absl::Status FloatAttribute(const NodeProto& node, int i, absl::string_view name, float* out) {
  const AttributeProto* a = FindAttribute(node, name);
  if (a == nullptr) return absl::OkStatus();
  if (a->type() != AttributeProto::FLOAT) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("attribute ", name, " must be a float"));
  }
  *out = a->f();
  return absl::OkStatus();
}

absl::Status IntsAttribute(const NodeProto& node, int i, absl::string_view name,
                           std::vector<int64_t>* out) {
  const AttributeProto* a = FindAttribute(node, name);
  if (a == nullptr) return absl::OkStatus();
  if (a->type() != AttributeProto::INTS) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("attribute ", name, " must be a list of ints"));
  }
  out->assign(a->ints().begin(), a->ints().end());
  return absl::OkStatus();
}

absl::Status OnlyAttributes(const NodeProto& node, int i,
                            std::initializer_list<absl::string_view> known) {
  for (const AttributeProto& a : node.attribute()) {
    bool ok = false;
    for (absl::string_view k : known) ok = ok || a.name() == k;
    if (!ok) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       absl::StrCat("attribute ", a.name(), " is not supported"));
    }
  }
  return absl::OkStatus();
}

std::string DimsString(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

absl::Status Importer::Constant(const NodeProto& node, int i) {
  if (node.output_size() != 1 || node.input_size() != 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     "a Constant has no inputs and 1 output");
  }
  const AttributeProto* a = FindAttribute(node, "value");
  if (a == nullptr || node.attribute_size() != 1 || a->type() != AttributeProto::TENSOR) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     "only a Constant with a tensor `value` is supported");
  }
  if (!tensors_.emplace(node.output(0), &a->t()).second ||
      activation_shapes_.count(node.output(0)) > 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("output \"", node.output(0), "\" is defined twice"));
  }
  return absl::OkStatus();
}

// Identity of a constant is another name for it (torch emits these for
// weights it shares); of the running activation, a no-op.
absl::Status Importer::Identity(const NodeProto& node, int i) {
  if (node.input_size() != 1 || node.output_size() != 1 || node.output(0).empty() ||
      tensors_.count(node.output(0)) > 0 || activation_shapes_.count(node.output(0)) > 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     "expected 1 input and 1 output, defined once");
  }
  if (auto t = tensors_.find(node.input(0)); t != tensors_.end()) {
    used_tensors_.insert(node.input(0));
    tensors_.emplace(node.output(0), t->second);
    return absl::OkStatus();
  }
  if (absl::Status s = CheckChained(node, i, 1, 1); !s.ok()) return s;
  current_ = node.output(0);
  activation_shapes_[current_] = shape_;
  return absl::OkStatus();
}

// Shape, Gather, Unsqueeze and Concat on small integer vectors: what torch
// emits to compute [x.size(0), -1] for a dynamic batch axis.
absl::Status Importer::ShapeOp(const NodeProto& node, int i) {
  const std::string& op = node.op_type();
  if (node.output_size() != 1 || node.input_size() < 1 || node.output(0).empty() ||
      ints_.count(node.output(0)) > 0 || tensors_.count(node.output(0)) > 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     "expected 1 output, defined once, and at least 1 input");
  }
  IntValue out;
  if (op == "Shape") {
    if (node.attribute_size() > 0 || node.input_size() != 1) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       "only Shape of a whole tensor (no start/end) is supported");
    }
    auto it = activation_shapes_.find(node.input(0));
    if (it == activation_shapes_.end()) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                       absl::StrCat("input \"", node.input(0), "\" is not an activation"));
    }
    out.values.push_back(kBatch);
    for (int d : it->second.dims) out.values.push_back(d);
  } else if (op == "Gather") {
    int64_t axis = 0;
    if (absl::Status s = IntAttribute(node, i, "axis", &axis); !s.ok()) return s;
    if (axis != 0 || node.input_size() != 2) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       "only Gather on axis 0 of a shape is supported");
    }
    absl::StatusOr<IntValue> data = IntInput(node, i, 0);
    if (!data.ok()) return data.status();
    absl::StatusOr<IntValue> index = IntInput(node, i, 1);
    if (!index.ok()) return index.status();
    const int64_t n = static_cast<int64_t>(data->values.size());
    for (int64_t k : index->values) {
      if (k == kBatch || k < -n || k >= n) {
        return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                         absl::StrCat("index ", k, " is out of range for ", n, " values"));
      }
      out.values.push_back(data->values[k < 0 ? k + n : k]);
    }
    out.scalar = index->scalar;
  } else if (op == "Unsqueeze") {
    std::vector<int64_t> axes;
    if (node.input_size() == 2) {
      absl::StatusOr<IntValue> a = IntInput(node, i, 1);
      if (!a.ok()) return a.status();
      axes = a->values;
    } else if (absl::Status s = IntsAttribute(node, i, "axes", &axes); !s.ok()) {
      return s;
    }
    absl::StatusOr<IntValue> data = IntInput(node, i, 0);
    if (!data.ok()) return data.status();
    if (!data->scalar || axes != std::vector<int64_t>{0}) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       "only Unsqueeze of a scalar on axis 0 is supported");
    }
    out.values = data->values;
  } else {  // Concat
    int64_t axis = 0;
    if (absl::Status s = IntAttribute(node, i, "axis", &axis); !s.ok()) return s;
    if (axis != 0) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       "only Concat on axis 0 of shapes is supported");
    }
    for (int k = 0; k < node.input_size(); ++k) {
      absl::StatusOr<IntValue> part = IntInput(node, i, k);
      if (!part.ok()) return part.status();
      if (part->scalar) {
        return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                         "Concat of a scalar (rank 0)");
      }
      out.values.insert(out.values.end(), part->values.begin(), part->values.end());
      if (out.values.size() > 64) {
        return NodeError(absl::StatusCode::kUnimplemented, node, i, "shape longer than 64");
      }
    }
  }
  ints_[node.output(0)] = std::move(out);
  return absl::OkStatus();
}

absl::Status Importer::Gemm(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 2, 3); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(node, i, {"alpha", "beta", "transA", "transB"}); !s.ok()) {
    return s;
  }
  float alpha = 1.0f, beta = 1.0f;
  int64_t trans_a = 0, trans_b = 0;
  if (absl::Status s = FloatAttribute(node, i, "alpha", &alpha); !s.ok()) return s;
  if (absl::Status s = FloatAttribute(node, i, "beta", &beta); !s.ok()) return s;
  if (absl::Status s = IntAttribute(node, i, "transA", &trans_a); !s.ok()) return s;
  if (absl::Status s = IntAttribute(node, i, "transB", &trans_b); !s.ok()) return s;
  if (alpha != 1.0f || beta != 1.0f) {
    return NodeError(
        absl::StatusCode::kUnimplemented, node, i,
        absl::StrCat("alpha=", alpha, " beta=", beta, " is not supported (only alpha = beta = 1)"));
  }
  if (trans_a != 0) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     "transA=1 is not supported (the input must be [N, in])");
  }
  if (!shape_.is_flat()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("expects a flat input [N, in], the running shape is [N, ",
                                  shape_.ToString().substr(1), " (add a Flatten)"));
  }
  std::vector<int64_t> dims;
  std::vector<double> b;
  if (absl::Status s = Weight(node, i, 1, "weight B", &dims, &b); !s.ok()) return s;
  const int64_t in = shape_.dims[0];
  if (dims.size() != 2 || dims[trans_b ? 1 : 0] != in || dims[trans_b ? 0 : 1] <= 0) {
    return NodeError(
        absl::StatusCode::kInvalidArgument, node, i,
        absl::StrCat("weight B \"", node.input(1), "\" has shape ", DimsString(dims),
                     "; with transB=", trans_b, " and ", in, " inputs it must be ",
                     trans_b ? absl::StrCat("[out, ", in, "]") : absl::StrCat("[", in, ", out]")));
  }
  const int64_t out = dims[trans_b ? 0 : 1];
  std::vector<double> params(static_cast<size_t>(in * out + out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) {
      params[o * in + k] = trans_b ? b[o * in + k] : b[k * out + o];
    }
  }
  if (node.input_size() == 3 && !node.input(2).empty()) {
    std::vector<int64_t> cdims;
    std::vector<double> c;
    if (absl::Status s = Weight(node, i, 2, "bias C", &cdims, &c); !s.ok()) return s;
    const bool per_output =
        c.size() == static_cast<size_t>(out) &&
        (cdims == std::vector<int64_t>{out} || cdims == std::vector<int64_t>{1, out});
    const bool broadcast = c.size() == 1 && cdims.size() <= 2;
    if (!per_output && !broadcast) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                       absl::StrCat("bias C \"", node.input(2), "\" has shape ", DimsString(cdims),
                                    ", expected [", out, "] (or [1, ", out, "] or a scalar)"));
    }
    for (int64_t o = 0; o < out; ++o) params[in * out + o] = per_output ? c[o] : c[0];
  }
  if (absl::Status s = ChargeParameters(node, i, in * out + out); !s.ok()) return s;
  return AddLayer(node, i, "Gemm", LayerSpec::Dense(static_cast<int>(in), static_cast<int>(out)),
                  std::move(params));
}

absl::Status Importer::MatMul(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 2, 2); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(node, i, {}); !s.ok()) return s;
  if (!shape_.is_flat()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("expects a flat input [N, in], the running shape is [N, ",
                                  shape_.ToString().substr(1), " (add a Flatten)"));
  }
  std::vector<int64_t> dims;
  std::vector<double> b;
  if (absl::Status s = Weight(node, i, 1, "weight", &dims, &b); !s.ok()) return s;
  const int64_t in = shape_.dims[0];
  if (dims.size() != 2 || dims[0] != in || dims[1] <= 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("weight \"", node.input(1), "\" has shape ", DimsString(dims),
                                  "; with ", in, " inputs it must be [", in, ", out]"));
  }
  const int64_t out = dims[1];
  std::vector<double> params(static_cast<size_t>(in * out + out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) params[o * in + k] = b[k * out + o];
  }
  // The bias: an Add right after, of this output and a constant.
  std::string op = "MatMul";
  const NodeProto* layer_node = &node;
  NodeProto merged;
  if (i + 1 < graph_.node_size() && graph_.node(i + 1).op_type() == "Add" &&
      graph_.node(i + 1).input_size() == 2) {
    const NodeProto& add = graph_.node(i + 1);
    const int data = add.input(0) == node.output(0) ? 0 : add.input(1) == node.output(0) ? 1 : -1;
    if (data < 0 || add.output_size() != 1) {
      return absl::UnimplementedError(
          absl::StrCat(NodeLabel(add, i + 1),
                       ": op Add is not supported here: only as the bias of the MatMul "
                       "right before it (",
                       kSupported, ")"));
    }
    // The Add, seen as a node whose input 0 is the data, input 1 the bias.
    NodeProto as_bias = add;
    as_bias.set_input(0, add.input(data));
    as_bias.set_input(1, add.input(1 - data));
    std::vector<int64_t> cdims;
    std::vector<double> c;
    if (tensors_.count(as_bias.input(1)) == 0) {
      return absl::UnimplementedError(
          absl::StrCat(NodeLabel(add, i + 1),
                       ": op Add of two activations (a residual connection) is not "
                       "supported (",
                       kSupported, ")"));
    }
    if (absl::Status s = Weight(as_bias, i + 1, 1, "bias", &cdims, &c); !s.ok()) return s;
    if (c.size() != static_cast<size_t>(out) ||
        (cdims != std::vector<int64_t>{out} && cdims != std::vector<int64_t>{1, out})) {
      return NodeError(absl::StatusCode::kInvalidArgument, add, i + 1,
                       absl::StrCat("bias \"", as_bias.input(1), "\" has shape ", DimsString(cdims),
                                    ", expected [", out, "]"));
    }
    for (int64_t o = 0; o < out; ++o) params[in * out + o] = c[o];
    // The layer's output is the Add's; its name stays the MatMul's.
    merged = node;
    merged.set_output(0, add.output(0));
    if (activation_shapes_.count(add.output(0)) > 0 || tensors_.count(add.output(0)) > 0) {
      return NodeError(absl::StatusCode::kInvalidArgument, add, i + 1,
                       absl::StrCat("output \"", add.output(0), "\" is defined twice"));
    }
    layer_node = &merged;
    op = "MatMul+Add";
  }
  if (absl::Status s = ChargeParameters(node, i, in * out + out); !s.ok()) return s;
  if (absl::Status s = AddLayer(*layer_node, i, op,
                                LayerSpec::Dense(static_cast<int>(in), static_cast<int>(out)),
                                std::move(params));
      !s.ok()) {
    return s;
  }
  if (layer_node == &merged) layers_.back().add_name = graph_.node(i + 1).name();
  return absl::OkStatus();
}

absl::Status Importer::Conv(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 2, 3); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(
          node, i, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
      !s.ok()) {
    return s;
  }
  if (!shape_.is_image()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("expects an image input [N, C, H, W], the running shape is [N, ",
                                  shape_.ToString().substr(1)));
  }
  std::vector<int64_t> dims;
  std::vector<double> w;
  if (absl::Status s = Weight(node, i, 1, "weight", &dims, &w); !s.ok()) return s;
  if (dims.size() != 4) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     absl::StrCat("weight \"", node.input(1), "\" has shape ", DimsString(dims),
                                  "; only 2-D convolutions ([O, C, kh, kw]) are supported"));
  }
  if (dims[1] != shape_.dims[0] || dims[0] <= 0 || dims[2] <= 0 || dims[3] <= 0) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("weight \"", node.input(1), "\" has shape ", DimsString(dims),
                                  "; the input has ", shape_.dims[0],
                                  " channels, so it must be [O, ", shape_.dims[0], ", kh, kw]"));
  }
  int64_t group = 1;
  std::vector<int64_t> dilations, kernel, pads, strides;
  if (absl::Status s = IntAttribute(node, i, "group", &group); !s.ok()) return s;
  if (absl::Status s = IntsAttribute(node, i, "dilations", &dilations); !s.ok()) return s;
  if (absl::Status s = IntsAttribute(node, i, "kernel_shape", &kernel); !s.ok()) return s;
  if (absl::Status s = IntsAttribute(node, i, "pads", &pads); !s.ok()) return s;
  if (absl::Status s = IntsAttribute(node, i, "strides", &strides); !s.ok()) return s;
  if (const AttributeProto* a = FindAttribute(node, "auto_pad"); a != nullptr) {
    if (a->type() != AttributeProto::STRING || (a->s() != "NOTSET" && a->s() != "VALID")) {
      return NodeError(absl::StatusCode::kUnimplemented, node, i,
                       absl::StrCat("auto_pad ", a->s(),
                                    " is not supported (NOTSET with explicit pads, or VALID)"));
    }
  }
  if (group != 1) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     absl::StrCat("group=", group, " is not supported (only 1)"));
  }
  for (int64_t d : dilations) {
    if (d != 1) {
      return NodeError(
          absl::StatusCode::kUnimplemented, node, i,
          absl::StrCat("dilations ", DimsString(dilations), " are not supported (only 1)"));
    }
  }
  if (!kernel.empty() && (kernel.size() != 2 || kernel[0] != dims[2] || kernel[1] != dims[3])) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("kernel_shape ", DimsString(kernel), " does not match weight ",
                                  DimsString(dims)));
  }
  if (pads.empty()) pads = {0, 0, 0, 0};
  if (strides.empty()) strides = {1, 1};
  if (pads.size() != 4 || strides.size() != 2) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("pads ", DimsString(pads), " and strides ", DimsString(strides),
                                  " must have 4 and 2 values"));
  }
  if (pads[0] != pads[2] || pads[1] != pads[3]) {
    return NodeError(absl::StatusCode::kUnimplemented, node, i,
                     absl::StrCat("pads ", DimsString(pads),
                                  " are not symmetric (supported: [ph, pw, ph, pw])"));
  }
  const int64_t max_dim = options_.limits.max_dim;
  if (pads[0] < 0 || pads[1] < 0 || pads[0] > max_dim || pads[1] > max_dim || strides[0] <= 0 ||
      strides[1] <= 0 || strides[0] > max_dim || strides[1] > max_dim) {
    return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                     absl::StrCat("pads ", DimsString(pads), " must be >= 0 and strides ",
                                  DimsString(strides), " > 0 (at most ", max_dim, ")"));
  }
  // The core computes shapes in int: bound them here, in int64, first.
  const int64_t ho = (shape_.dims[1] + 2 * pads[0] - dims[2]) / strides[0] + 1;
  const int64_t wo = (shape_.dims[2] + 2 * pads[1] - dims[3]) / strides[1] + 1;
  const int64_t limit = options_.limits.max_values_per_sample;
  if (ho > 0 && wo > 0 &&
      (ho * wo > limit || dims[0] * ho * wo > limit ||
       ho * wo * (static_cast<int64_t>(w.size()) / dims[0]) > limit)) {
    return NodeError(absl::StatusCode::kResourceExhausted, node, i,
                     absl::StrCat("output [", dims[0], ", ", ho, ", ", wo,
                                  "] (or its patch matrix) is larger than the limit of ", limit,
                                  " values per sample"));
  }
  Conv2dParams p;
  p.out_channels = static_cast<int>(dims[0]);
  p.in_channels = static_cast<int>(dims[1]);
  p.kernel_h = static_cast<int>(dims[2]);
  p.kernel_w = static_cast<int>(dims[3]);
  p.stride_h = static_cast<int>(strides[0]);
  p.stride_w = static_cast<int>(strides[1]);
  p.pad_h = static_cast<int>(pads[0]);
  p.pad_w = static_cast<int>(pads[1]);
  std::vector<double> params = std::move(w);  // O x C x kh x kw: the core's layout
  params.resize(params.size() + dims[0], 0.0);
  if (node.input_size() == 3 && !node.input(2).empty()) {
    std::vector<int64_t> bdims;
    std::vector<double> bias;
    if (absl::Status s = Weight(node, i, 2, "bias", &bdims, &bias); !s.ok()) return s;
    if (bdims != std::vector<int64_t>{dims[0]}) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, i,
                       absl::StrCat("bias \"", node.input(2), "\" has shape ", DimsString(bdims),
                                    ", expected [", dims[0], "]"));
    }
    std::copy(bias.begin(), bias.end(), params.end() - dims[0]);
  }
  if (absl::Status s = ChargeParameters(node, i, static_cast<int64_t>(params.size())); !s.ok()) {
    return s;
  }
  return AddLayer(node, i, "Conv", LayerSpec::Conv2d(p), std::move(params));
}

absl::Status Importer::Relu(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 1, 1); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(node, i, {}); !s.ok()) return s;
  return AddLayer(node, i, "Relu", LayerSpec::Relu(), {});
}

absl::Status Importer::Flatten(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 1, 1); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(node, i, {"axis"}); !s.ok()) return s;
  int64_t axis = 1;
  if (absl::Status s = IntAttribute(node, i, "axis", &axis); !s.ok()) return s;
  if (axis != 1) {
    return NodeError(
        absl::StatusCode::kUnimplemented, node, i,
        absl::StrCat("axis=", axis, " is not supported (only 1: [N, ...] -> [N, -1])"));
  }
  return AddLayer(node, i, "Flatten", LayerSpec::Flatten(), {});
}

absl::Status Importer::Reshape(const NodeProto& node, int i) {
  if (absl::Status s = CheckChained(node, i, 2, 2); !s.ok()) return s;
  if (absl::Status s = OnlyAttributes(node, i, {"allowzero"}); !s.ok()) return s;
  int64_t allowzero = 0;
  if (absl::Status s = IntAttribute(node, i, "allowzero", &allowzero); !s.ok()) return s;
  absl::StatusOr<IntValue> target = IntInput(node, i, 1);
  if (!target.ok()) return target.status();
  const int64_t values = shape_.size();
  const std::vector<int64_t>& t = target->values;
  auto show = [&] {
    std::vector<std::string> parts;
    for (int64_t v : t) parts.push_back(v == kBatch ? "N" : absl::StrCat(v));
    return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  };
  // [N, -1], [N, D], [0, -1] (0 copies the batch dim unless allowzero),
  // [-1, D], or the graph's own batch size where it is a number.
  bool flatten = false;
  if (t.size() == 2 && !target->scalar) {
    const bool batch = t[0] == kBatch || (t[0] == 0 && allowzero == 0) ||
                       (batch_value_ > 0 && t[0] == batch_value_);
    flatten = (batch && (t[1] == -1 || t[1] == values)) || (t[0] == -1 && t[1] == values);
  }
  if (!flatten) {
    return NodeError(
        absl::StatusCode::kUnimplemented, node, i,
        absl::StrCat("Reshape to ", show(), " is not supported (only a flatten to [N, ", values,
                     "] or [N, -1] of the running shape [N, ", shape_.ToString().substr(1), ")"));
  }
  return AddLayer(node, i, "Reshape", LayerSpec::Flatten(), {});
}

absl::Status Importer::Finish(ImportedModel* out) {
  if (layers_.empty()) return Invalid("the graph has no layers");
  const std::string& output = graph_.output(0).name();
  if (current_ != output) {
    return Invalid(absl::StrCat("the graph output \"", output,
                                "\" is not the last layer's output \"", current_,
                                "\"; only sequential graphs are supported"));
  }
  for (const auto& [name, tensor] : tensors_) {
    (void)tensor;
    if (used_tensors_.count(name) == 0) {
      return Invalid(absl::StrCat("initializer or constant \"", name,
                                  "\" is not used by any layer; only sequential graphs of the "
                                  "supported ops are imported"));
    }
  }
  // The frozen prefix.
  int frozen = 0;
  if (options_.frozen_layers.has_value() && !options_.frozen_until.empty()) {
    return Invalid("give the frozen prefix as a layer count or as a node name, not both");
  }
  const int count = static_cast<int>(layers_.size());
  if (options_.frozen_layers.has_value()) {
    frozen = *options_.frozen_layers;
    if (frozen < 0 || frozen >= count) {
      return Invalid(absl::StrCat("frozen_layers ", frozen, " must be in [0, ", count - 1,
                                  "]: the network has ", count,
                                  " layers and at least the last must be trained"));
    }
  } else if (!options_.frozen_until.empty()) {
    frozen = -1;
    for (int k = 0; k < count; ++k) {
      const PendingLayer& l = layers_[k];
      if (l.info.node_name == options_.frozen_until ||
          (!l.add_name.empty() && l.add_name == options_.frozen_until)) {
        frozen = k + 1;
      }
    }
    if (frozen < 0) {
      std::vector<std::string> names;
      for (const PendingLayer& l : layers_)
        names.push_back(absl::StrCat("\"", l.info.node_name, "\""));
      return Invalid(
          absl::StrCat("frozen_until \"", options_.frozen_until,
                       "\" names no layer node (layer nodes: ", absl::StrJoin(names, ", "), ")"));
    }
    if (frozen >= count) {
      return Invalid(absl::StrCat("frozen_until \"", options_.frozen_until,
                                  "\" is the last layer; at least the last must be trained"));
    }
  }
  ModelSpec& spec = out->spec;
  spec.input_shape = activation_shapes_[graph_input_];
  Index frozen_values = 0, trained_values = 0;
  for (int k = 0; k < count; ++k) {
    (k < frozen ? frozen_values : trained_values) += static_cast<Index>(layers_[k].params.size());
  }
  spec.frozen.parameters.resize(frozen_values);
  out->trained_parameters.resize(trained_values);
  Index fo = 0, to = 0;
  for (int k = 0; k < count; ++k) {
    const std::vector<double>& p = layers_[k].params;
    double* dst =
        k < frozen ? spec.frozen.parameters.data() + fo : out->trained_parameters.data() + to;
    std::copy(p.begin(), p.end(), dst);
    (k < frozen ? fo : to) += static_cast<Index>(p.size());
    (k < frozen ? spec.frozen.layers : spec.layers).push_back(layers_[k].info.spec);
    out->layers.push_back(layers_[k].info);
  }
  if (absl::Status s = spec.Validate(); !s.ok()) {
    const PendingLayer& first = layers_[frozen];
    return Invalid(
        absl::StrCat(s.message(), " (with ", frozen, " frozen layer(s) the trained part starts at ",
                     NodeLabel(graph_.node(first.info.node_index), first.info.node_index), " (",
                     first.info.op_type,
                     "); it must start with a Gemm, MatMul or Conv and end with a dense "
                     "layer)"));
  }
  out->opset_version = opset_;
  out->producer = absl::StrCat(model_.producer_name(), model_.producer_version().empty() ? "" : " ",
                               model_.producer_version());
  return absl::OkStatus();
}

absl::StatusOr<ImportedModel> Importer::Run() {
  if (absl::Status s = CheckModel(); !s.ok()) return s;
  if (absl::Status s = CollectInitializers(); !s.ok()) return s;
  if (absl::Status s = ReadInput(); !s.ok()) return s;
  if (absl::Status s = Walk(); !s.ok()) return s;
  ImportedModel out;
  if (absl::Status s = Finish(&out); !s.ok()) return s;
  return out;
}

}  // namespace

absl::StatusOr<ImportedModel> ImportOnnx(absl::string_view bytes, const ImportOptions& options) {
  static_assert(std::endian::native == std::endian::little,
                "raw_data is little-endian; this importer copies it as is");
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size > options.limits.max_bytes || size > std::numeric_limits<int>::max()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the ONNX model has ", size, " bytes, more than the limit of ", options.limits.max_bytes));
  }
  if (size == 0) return Invalid("the ONNX model is empty (0 bytes)");
  ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(size))) {
    return Invalid(absl::StrCat("not a valid ONNX model: the ", size,
                                " bytes do not parse as an onnx.ModelProto (truncated or not "
                                "ONNX)"));
  }
  return Importer(model, options).Run();
}

absl::StatusOr<ImportedModel> ImportOnnxFile(const std::string& path,
                                             const ImportOptions& options) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::streamoff size = in.tellg();
  if (size < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  if (size > options.limits.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": ", size, " bytes, more than the limit of ", options.limits.max_bytes));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  }
  absl::StatusOr<ImportedModel> model = ImportOnnx(bytes, options);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

}  // namespace agt::onnx
