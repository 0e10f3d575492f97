// Importing a network exported from PyTorch (torch.onnx.export) as the core's
// ModelSpec: a frozen prefix with its fixed parameters and the trained layers
// with their initial parameters (core/onnx/README.md has the user's view).
//
// Supported: a sequential graph (every layer node reads the previous layer
// node's output) of Gemm (alpha = beta = 1, transA = 0, either transB),
// MatMul with an optional Add of a bias (one dense layer), Conv (2-D, group
// 1, dilations 1, symmetric zero padding, any strides), Relu, Flatten (axis 1)
// and Reshape to [N, -1] (a flatten). Weights are initializers (or Constant
// nodes), float32 or float64, in raw_data (little-endian) or the typed
// fields. The shape of a Reshape may be a constant or the little subgraph
// torch emits for x.view(x.size(0), -1) with a dynamic batch axis (Shape,
// Gather, Unsqueeze, Concat of constants); those nodes compute a shape, not a
// layer, and are not counted as layers. Identity nodes rename a constant or
// pass the activation through.
//
// Everything else is refused with a status that names the node (its index in
// graph.node and its name) and its op type: Unimplemented for valid ONNX this
// importer does not support (an op, an attribute value), InvalidArgument for
// a malformed file, a graph that is not sequential, missing or unused
// initializers, weights whose shape does not match the running shape, NaN or
// Inf weights; ResourceExhausted past ImportLimits. Sizes are checked before
// anything is allocated, so no input makes the importer crash or allocate
// more than the limits allow.
//
// Layouts: a dense layer's weight is out x in row-major (PyTorch Linear's
// weight, Gemm's B with transB = 1; transB = 0 and MatMul's [in, out] are
// transposed on import); a conv weight O x C x kh x kw as in PyTorch and ONNX.
// float32 values are widened to float64 exactly.
//
// Thread-safety: ImportOnnx is a pure function; concurrent calls are safe.
#ifndef AGT_CORE_ONNX_IMPORT_H_
#define AGT_CORE_ONNX_IMPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/types.h"
#include "core/layers/layer_spec.h"
#include "core/model/model.h"

namespace agt::onnx {

// Caps checked before allocating. The defaults fit a Fashion-MNIST CNN many
// times over; a server passes its own.
struct ImportLimits {
  int64_t max_bytes = int64_t{256} << 20;            // the serialized model
  int64_t max_parameters = int64_t{32} << 20;        // frozen + trained values
  int64_t max_values_per_sample = int64_t{1} << 24;  // any activation of one sample
  int64_t max_dim = int64_t{1} << 20;                // any one tensor dimension
  int max_nodes = 4096;
};

struct ImportOptions {
  // The frozen prefix: either a number of layers (core layers, in order: a
  // Gemm, a MatMul with its Add, a Conv, a Relu, a Flatten or Reshape count
  // one each; 0 = nothing frozen), or the name of the last frozen node (a
  // MatMul's or its Add's name freezes both). At most one may be set; neither means
  // nothing is frozen.
  std::optional<int> frozen_layers;
  std::string frozen_until;
  // The shape of one sample, [C, H, W] or [D], for a graph whose input dims
  // (other than the batch dim) are symbolic. Where the graph's dims are known
  // they must agree with it.
  Shape input_shape;
  ImportLimits limits;
};

// One core layer and the node(s) it came from.
struct ImportedLayer {
  LayerSpec spec;
  int node_index = 0;     // in graph.node; a MatMul + Add: the MatMul's
  std::string node_name;  // as in the file (may be empty)
  std::string op_type;    // "Gemm", "MatMul+Add", "Conv", ...
};

struct ImportedModel {
  // input_shape, the frozen prefix with its parameters, the trained layers;
  // Validate() has passed.
  ModelSpec spec;
  // The trained layers' parameters (the initial parameters of training), in
  // the layout of model/model.h.
  Vector trained_parameters;
  // Every layer, frozen ones first, with its origin.
  std::vector<ImportedLayer> layers;
  int64_t opset_version = 0;
  std::string producer;  // e.g. "pytorch 1.13.1"
};

// Parses a serialized onnx.ModelProto and converts it as described above.
absl::StatusOr<ImportedModel> ImportOnnx(absl::string_view bytes, const ImportOptions& options);

// Reads a file (at most options.limits.max_bytes; NotFound if it cannot be
// opened) and imports it; messages start with the path.
absl::StatusOr<ImportedModel> ImportOnnxFile(const std::string& path, const ImportOptions& options);

}  // namespace agt::onnx

#endif  // AGT_CORE_ONNX_IMPORT_H_
