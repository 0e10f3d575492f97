#include "server/domain/model_artifacts.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "server/domain/model_convert.h"

#ifdef AGT_SERVER_WITH_ONNX
#include "core/onnx/export.h"
#include "core/onnx/import.h"
#endif

namespace agt::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), field);
}

#ifndef AGT_SERVER_WITH_ONNX
absl::Status NoOnnx() {
  return absl::UnimplementedError(
      "this agt-server was built without ONNX support (-DAGT_WITH_ONNX=OFF; needs libonnx-dev)");
}
#else
// Keeps ImportOnnx's code (Unimplemented for an unsupported op) and prefixes
// the field the problem is about.
absl::Status InField(const absl::Status& s, absl::string_view field) {
  return WithField(absl::Status(s.code(), absl::StrCat(field, ": ", s.message())), field);
}

std::string ShapeText(const std::vector<int>& dims) { return agt::Shape{dims}.ToString(); }
#endif

}  // namespace

absl::StatusOr<agt::v1::ModelArtifact> DescribeOnnxArtifact(absl::string_view bytes,
                                                            const std::vector<int>& input_shape,
                                                            int64_t max_bytes) {
#ifndef AGT_SERVER_WITH_ONNX
  (void)bytes, (void)input_shape, (void)max_bytes;
  return NoOnnx();
#else
  onnx::ImportOptions options;
  options.input_shape = agt::Shape{input_shape};
  options.limits.max_bytes = max_bytes;
  // The ops and weights are checked by any import; only which prefix makes a
  // trainable model depends on frozen_layers. A network that starts with a
  // Flatten or Relu (an MLP on images) needs that layer frozen: try the
  // prefixes in order until one fits or the error is about something else.
  absl::StatusOr<onnx::ImportedModel> imported;
  absl::Status first;  // the error with nothing frozen, if no prefix fits
  for (int frozen = 0;; ++frozen) {
    options.frozen_layers = frozen;
    imported = onnx::ImportOnnx(bytes, options);
    if (imported.ok()) break;
    const bool structural =
        imported.status().code() == absl::StatusCode::kInvalidArgument &&
        absl::StrContains(imported.status().message(), "frozen layer(s) the trained part starts");
    if (frozen == 0) first = imported.status();
    if (!structural) {
      if (frozen > 0) imported = first;
      break;
    }
  }
  if (!imported.ok()) return imported.status();
  absl::StatusOr<agt::v1::ModelArchitecture> arch = ArchitectureToProto(imported->spec);
  if (!arch.ok()) return arch.status();
  std::vector<const agt::v1::Layer*> layers;
  for (const agt::v1::Layer& l : arch->frozen().layers()) layers.push_back(&l);
  for (const agt::v1::Layer& l : arch->layers()) layers.push_back(&l);
  agt::v1::ModelArtifact out;
  out.set_format(agt::v1::MODEL_ARTIFACT_FORMAT_ONNX);
  for (int d : imported->spec.InputShape().dims) out.add_input_shape(d);
  for (size_t i = 0; i < imported->layers.size() && i < layers.size(); ++i) {
    agt::v1::ModelArtifactLayer* l = out.add_layers();
    l->set_index(static_cast<int>(i));
    l->set_node_name(imported->layers[i].node_name);
    l->set_op_type(imported->layers[i].op_type);
    *l->mutable_layer() = *layers[i];
  }
  out.set_num_parameters(imported->spec.frozen.parameters.size() +
                         imported->trained_parameters.size());
  out.set_num_outputs(imported->spec.OutputDim());
  out.set_producer(imported->producer);
  out.set_opset_version(imported->opset_version);
  return out;
#endif
}

absl::Status ResolveModelArtifact(const agt::v1::ModelArtifact& artifact, absl::string_view bytes,
                                  const DatasetRecord& dataset, agt::v1::TrainingJobSpec* spec) {
  if (spec->has_architecture()) {
    return Invalid("spec.architecture",
                   "not with spec.model_artifact: the artifact holds the layers and their "
                   "parameters (choose the frozen prefix with frozen_layers or frozen_until)");
  }
  if (spec->hidden_widths_size() > 0) {
    return Invalid("spec.hidden_widths", "not with spec.model_artifact");
  }
#ifndef AGT_SERVER_WITH_ONNX
  (void)artifact, (void)bytes, (void)dataset;
  return NoOnnx();
#else
  const agt::v1::ModelArtifactRef& ref = spec->model_artifact();
  onnx::ImportOptions options;
  options.input_shape =
      agt::Shape{std::vector<int>(artifact.input_shape().begin(), artifact.input_shape().end())};
  options.limits.max_bytes = static_cast<int64_t>(bytes.size());
  std::string field = "spec.model_artifact";
  if (ref.frozen_case() == agt::v1::ModelArtifactRef::kFrozenLayers) {
    options.frozen_layers = ref.frozen_layers();
    field = "spec.model_artifact.frozen_layers";
  } else if (ref.frozen_case() == agt::v1::ModelArtifactRef::kFrozenUntil) {
    options.frozen_until = ref.frozen_until();
    field = "spec.model_artifact.frozen_until";
    if (ref.frozen_until().empty()) return Invalid(field, "must name a node");
  }
  absl::StatusOr<onnx::ImportedModel> imported = onnx::ImportOnnx(bytes, options);
  if (!imported.ok()) return InField(imported.status(), field);
  const agt::Shape data_shape = dataset.sample_shape.empty()
                                    ? agt::Shape::Flat(dataset.num_features)
                                    : agt::Shape{dataset.sample_shape};
  if (imported->spec.InputShape() != data_shape) {
    return Invalid(
        "spec.model_artifact",
        absl::StrCat("the network's input shape ", imported->spec.InputShape().ToString(),
                     " (artifact ", artifact.id(), ") does not match the sample shape ",
                     ShapeText(data_shape.dims), " of dataset ", dataset.id));
  }
  absl::StatusOr<agt::v1::ModelArchitecture> arch = ArchitectureToProto(imported->spec);
  if (!arch.ok()) return InField(arch.status(), "spec.model_artifact");
  *arch->mutable_initial_parameters() =
      ParametersToProto(imported->spec, imported->trained_parameters);
  *spec->mutable_architecture() = *std::move(arch);
  return absl::OkStatus();
#endif
}

absl::StatusOr<std::string> ExportModelOnnx(const agt::ModelSpec& spec, const agt::Vector& nominal,
                                            int polynomial_degree, bool float32) {
  if (polynomial_degree > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model takes polynomial features of degree ", polynomial_degree,
        " of its inputs, which an ONNX file of its layers would not compute; export it with "
        "ExportModel"));
  }
#ifndef AGT_SERVER_WITH_ONNX
  (void)spec, (void)nominal, (void)float32;
  return NoOnnx();
#else
  onnx::ExportOptions options;
  options.float32 = float32;
  return onnx::ExportOnnx(spec, nominal, options);
#endif
}

}  // namespace agt::server
