#include "core/onnx/export.h"

#include "absl/strings/str_cat.h"
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

constexpr int64_t kOpset = 13;
constexpr int64_t kIrVersion = 7;  // what opset 13 pairs with (torch 1.13 writes 7 too)

void SetInts(NodeProto* node, const std::string& name, std::initializer_list<int64_t> values) {
  AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void SetInt(NodeProto* node, const std::string& name, int64_t value) {
  AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INT);
  a->set_i(value);
}

void SetValueInfo(const std::string& name, const std::vector<int64_t>& dims, int32_t elem_type,
                  ::onnx::ValueInfoProto* v) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

// Appends the nodes of `net` (parameters at `params`) to the graph, reading
// from *current and leaving the last output name in it.
void AddNodes(const Network& net, const double* params, const std::string& prefix, bool float32,
              GraphProto* graph, std::string* current) {
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& layer = net.layer(i);
    const LayerSpec& spec = layer.spec();
    const std::string name = absl::StrCat(prefix, ".", i, ".", LayerKindName(spec.kind));
    NodeProto* node = graph->add_node();
    node->set_name(name);
    node->add_input(*current);
    const double* p = params + net.param_offset(i);
    const int64_t rows = layer.weight_rows();
    const int64_t cols = layer.weight_cols();
    switch (spec.kind) {
      case LayerKind::kDense:
        node->set_op_type("Gemm");
        SetInt(node, "transB", 1);
        WriteFloatTensor(name + ".weight", {rows, cols}, p, float32, graph->add_initializer());
        break;
      case LayerKind::kConv2d: {
        const Conv2dParams& c = spec.conv;
        node->set_op_type("Conv");
        SetInts(node, "kernel_shape", {c.kernel_h, c.kernel_w});
        SetInts(node, "pads", {c.pad_h, c.pad_w, c.pad_h, c.pad_w});
        SetInts(node, "strides", {c.stride_h, c.stride_w});
        WriteFloatTensor(name + ".weight", {c.out_channels, c.in_channels, c.kernel_h, c.kernel_w},
                         p, float32, graph->add_initializer());
        break;
      }
      case LayerKind::kRelu:
        node->set_op_type("Relu");
        break;
      case LayerKind::kFlatten:
        node->set_op_type("Flatten");
        SetInt(node, "axis", 1);
        break;
    }
    if (layer.has_params()) {
      node->add_input(name + ".weight");
      node->add_input(name + ".bias");
      WriteFloatTensor(name + ".bias", {rows}, p + rows * cols, float32, graph->add_initializer());
    }
    *current = name + ".out";
    node->add_output(*current);
  }
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const ModelSpec& spec, const Vector& trained_params,
                                       const ExportOptions& options) {
  if (absl::Status s = spec.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot export the model: ", s.message()));
  }
  if (trained_params.size() != spec.NumParameters()) {
    return absl::InvalidArgumentError(absl::StrCat("the model has ", spec.NumParameters(),
                                                   " trained parameters, got ",
                                                   trained_params.size()));
  }
  if (!trained_params.allFinite()) {
    return absl::InvalidArgumentError(
        "the parameters contain NaN or Inf; ONNX weights must be "
        "finite");
  }
  const int32_t elem = options.float32 ? TensorProto::FLOAT : TensorProto::DOUBLE;
  ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("agt");
  model.set_producer_version(options.producer_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  auto* meta = model.add_metadata_props();
  meta->set_key("agt.frozen_layers");
  meta->set_value(absl::StrCat(spec.frozen.layers.size()));

  GraphProto* graph = model.mutable_graph();
  graph->set_name(options.graph_name);
  const Shape input = spec.InputShape();
  SetValueInfo("input", std::vector<int64_t>(input.dims.begin(), input.dims.end()), elem,
               graph->add_input());
  std::string current = "input";
  if (!spec.frozen.empty()) {
    AddNodes(spec.FrozenNetwork(), spec.frozen.parameters.data(), "frozen", options.float32, graph,
             &current);
  }
  AddNodes(spec.TrainedNetwork(), trained_params.data(), "trained", options.float32, graph,
           &current);
  // The last node's output is the graph output.
  graph->mutable_node(graph->node_size() - 1)->set_output(0, "logits");
  SetValueInfo("logits", {spec.OutputDim()}, elem, graph->add_output());

  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return absl::InternalError("the ONNX model could not be serialized (over 2 GB?)");
  }
  return bytes;
}

}  // namespace agt::onnx
