// Exporting a model (frozen prefix + trained layers, nominal parameters) as
// an ONNX ModelProto that onnx.checker accepts and any ONNX runtime (or
// PyTorch through an ONNX runtime) evaluates: opset 13, IR version 7, one
// graph input "input" of shape [N, C, H, W] or [N, D] with a symbolic batch
// dim "N", one output "logits" [N, classes].
//
// Nodes: Conv (kernel_shape, pads [ph, pw, ph, pw], strides), Relu,
// Flatten (axis 1), Gemm (transB = 1, weight [out, in] as the core stores
// it). Node i of the frozen prefix is named "frozen.<i>.<kind>", trained
// layer j "trained.<j>.<kind>" (kind: conv2d, relu, flatten, dense), their
// weights "<node>.weight" / "<node>.bias". The number of frozen layers is
// also written to metadata_props ("agt.frozen_layers"), for people.
//
// Initializers are float64 by default (the parameters exactly, so that
// ImportOnnx gives them back bit for bit; the input and output are then
// float64 too), or float32 (rounded to nearest) when asked.
//
// Thread-safety: a pure function.
#ifndef AGT_CORE_ONNX_EXPORT_H_
#define AGT_CORE_ONNX_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/common/types.h"
#include "core/model/model.h"

namespace agt::onnx {

struct ExportOptions {
  bool float32 = false;
  std::string graph_name = "agt";
  std::string producer_version;  // e.g. the agt version
};

// InvalidArgument if the spec does not Validate() or trained_params has not
// NumParameters() values.
absl::StatusOr<std::string> ExportOnnx(const ModelSpec& spec, const Vector& trained_params,
                                       const ExportOptions& options = {});

}  // namespace agt::onnx

#endif  // AGT_CORE_ONNX_EXPORT_H_
