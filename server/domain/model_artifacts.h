// Model artifacts in the domain: what an uploaded ONNX file is (its layers,
// input shape, parameter count), how a job's reference to one becomes a
// self-contained spec, and the ONNX export of a trained model. The parsing
// and writing are agt::onnx's (core/onnx); this file adds the service's
// field names to its errors. Knows nothing of gRPC or SQLite.
//
// When the server is built without agt::onnx (-DAGT_WITH_ONNX=OFF) every
// function here answers Unimplemented saying so.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_DOMAIN_MODEL_ARTIFACTS_H_
#define AGT_SERVER_DOMAIN_MODEL_ARTIFACTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agt/v1/artifacts.pb.h"
#include "agt/v1/training.pb.h"
#include "core/common/types.h"
#include "core/model/model.h"
#include "server/store/store.h"

namespace agt::server {

// Parses an ONNX file as agt::onnx::ImportOnnx does (with `input_shape` for
// symbolic input dims, `max_bytes` as the size cap) and describes it: input
// shape, layers with their node names and op types, parameter count,
// outputs, producer. The file is accepted when some frozen prefix (0, 1, ...
// layers) leaves a trainable model (trained layers starting with a dense or
// conv2d layer, ending with a dense one). id, name, sizes, checksum and time
// are left for the caller. Errors are ImportOnnx's (Unimplemented naming
// the node and op type of an unsupported operator; InvalidArgument for a
// malformed file).
absl::StatusOr<agt::v1::ModelArtifact> DescribeOnnxArtifact(absl::string_view bytes,
                                                            const std::vector<int>& input_shape,
                                                            int64_t max_bytes);

// Replaces spec.model_artifact's reference by what it names: imports
// `bytes` (the artifact `artifact`) with the reference's frozen prefix and
// writes spec.architecture (input shape, frozen prefix with its parameters,
// trained layers, initial_parameters = the file's trained-layer parameters).
// The reference stays in the spec. InvalidArgument naming the field:
// architecture or hidden_widths given as well ("spec.architecture: ..."), a
// frozen_layers past the end or a frozen_until that names no node
// ("spec.model_artifact.frozen_layers: ...", "...frozen_until: ..."), a
// dataset whose sample shape is not the network's input shape
// ("spec.model_artifact: the network's input shape [1, 8, 8] does not match
// the sample shape [64] of dataset ds-...").
absl::Status ResolveModelArtifact(const agt::v1::ModelArtifact& artifact, absl::string_view bytes,
                                  const DatasetRecord& dataset, agt::v1::TrainingJobSpec* spec);

// The nominal network (frozen prefix + trained layers at `nominal`) as an
// ONNX file (agt::onnx::ExportOnnx). FailedPrecondition for
// polynomial_degree > 1: the file would take the expanded features, not the
// user's inputs.
absl::StatusOr<std::string> ExportModelOnnx(const agt::ModelSpec& spec, const agt::Vector& nominal,
                                            int polynomial_degree, bool float32);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_MODEL_ARTIFACTS_H_
