// agtctl artifact upload | list | get | rm: pre-trained networks (ONNX files)
// kept by the server as model artifacts, which `agtctl train
// --model-artifact ID` fine-tunes.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"

namespace agt::client {
namespace {

std::string ShapeText(const google::protobuf::RepeatedField<int32_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// One layer as DescribeArchitecture words it ("conv2d 1->3 3x3", "relu").
std::string LayerText(const agt::v1::Layer& layer) {
  agt::v1::ModelArchitecture one;
  *one.add_layers() = layer;
  return DescribeArchitecture(one);
}

void PrintArtifact(std::ostream& out, const agt::v1::ModelArtifact& a) {
  PrintKeyValues(out, {{"id", a.id()},
                       {"name", a.name()},
                       {"format", "onnx"},
                       {"size", FormatBytes(a.size_bytes())},
                       {"sha256", a.sha256()},
                       {"input shape", ShapeText(a.input_shape())},
                       {"outputs", absl::StrCat(a.num_outputs())},
                       {"parameters", absl::StrCat(a.num_parameters())},
                       {"producer", absl::StrCat(a.producer(), ", opset ", a.opset_version())},
                       {"created", FormatTimestamp(a.created())}});
  out << "\n";
  // INDEX + 1 is the --frozen-layers that freezes the row and those above.
  Table table({"INDEX", "NODE", "OP", "LAYER"});
  for (const agt::v1::ModelArtifactLayer& l : a.layers()) {
    table.AddRow({absl::StrCat(l.index()), l.node_name(), l.op_type(), LayerText(l.layer())});
  }
  out << table.Render();
}

template <typename Response>
int PrintArtifactResponse(CommandContext& ctx, const absl::StatusOr<Response>& response) {
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->artifact().id() << "\n";
  } else {
    PrintArtifact(ctx.out(), response->artifact());
  }
  return kExitOk;
}

int UploadArtifact(CommandContext& ctx) {
  const std::string& path = ctx.positionals()[0];
  agt::v1::ModelArtifactMetadata metadata;
  metadata.set_name(ctx.args().GetOr("name", std::filesystem::path(path).filename().string()));
  metadata.set_format(agt::v1::MODEL_ARTIFACT_FORMAT_ONNX);
  if (std::optional<std::string> shape = ctx.args().Get("input-shape")) {
    absl::StatusOr<std::vector<int64_t>> dims = ParseIntList("--input-shape", *shape, 1, 65535);
    if (!dims.ok()) return ctx.FailUsage(dims.status());
    for (int64_t d : *dims) metadata.add_input_shape(static_cast<int>(d));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return ctx.FailUsage(absl::NotFoundError(absl::StrCat("cannot read model file ", path)));
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  return PrintArtifactResponse(ctx, (*client)->UploadModelArtifactFile(metadata, path));
}

int ListArtifacts(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::ListModelArtifactsResponse> listed =
      ListAllPages<agt::v1::ListModelArtifactsResponse>(
          agt::v1::ListModelArtifactsRequest(), [&](const agt::v1::ListModelArtifactsRequest& r) {
            return (*client)->ListModelArtifacts(r);
          });
  if (!listed.ok()) return ctx.Fail(listed.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*listed);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& a : listed->artifacts()) ctx.out() << a.id() << "\n";
    return kExitOk;
  }
  Table table({"ID", "NAME", "INPUT", "LAYERS", "PARAMETERS", "SIZE", "CREATED"});
  for (const auto& a : listed->artifacts()) {
    table.AddRow({a.id(), a.name(), ShapeText(a.input_shape()), absl::StrCat(a.layers_size()),
                  absl::StrCat(a.num_parameters()), FormatBytes(a.size_bytes()),
                  FormatTimestamp(a.created())});
  }
  ctx.out() << table.Render();
  return kExitOk;
}

int GetArtifact(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::GetModelArtifactRequest request;
  request.set_artifact_id(ctx.positionals()[0]);
  return PrintArtifactResponse(ctx, (*client)->GetModelArtifact(request));
}

int DeleteArtifact(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::DeleteModelArtifactRequest request;
  request.set_artifact_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::DeleteModelArtifactResponse> response =
      (*client)->DeleteModelArtifact(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (!ctx.quiet()) {
    ctx.out() << "deleted model artifact " << request.artifact_id() << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> ArtifactCommands() {
  std::vector<Command> commands;
  commands.push_back(Command{
      {"artifact", "upload"},
      "FILE.onnx [--name NAME] [--input-shape C,H,W]",
      "upload a pre-trained network (ONNX, e.g. from torch.onnx.export) to fine-tune",
      "The server parses the file on arrival and lists its layers (INDEX, NODE, OP):\n"
      "train --model-artifact ID --frozen-layers K freezes layers 0..K-1, and\n"
      "--frozen-until NODE freezes up to and including that node. Supported: sequential\n"
      "Gemm, MatMul (+ Add), Conv, Relu, Flatten, Reshape (core/onnx/README.md); any other\n"
      "op is refused naming the node and its op type. The size and SHA-256 go first:\n"
      "a file over the server's --max-artifact-mib is refused before it is sent, and\n"
      "one altered on the way is refused at the end. --input-shape is for graphs whose\n"
      "input dims are symbolic.\n",
      {{"name", true, 0, "NAME", "a name for people (default: the file's name)"},
       {"input-shape", true, 0, "DIMS", "shape of one sample, D or C,H,W"}},
      1,
      1,
      UploadArtifact});
  commands.push_back(
      Command{{"artifact", "list"}, "", "list your model artifacts", "", {}, 0, 0, ListArtifacts});
  commands.push_back(Command{{"artifact", "get"},
                             "ARTIFACT_ID",
                             "show a model artifact and its layers",
                             "",
                             {},
                             1,
                             1,
                             GetArtifact});
  commands.push_back(
      Command{{"artifact", "rm"},
              "ARTIFACT_ID",
              "delete a model artifact",
              "Jobs and models fine-tuned from it keep their own copy of its layers and\n"
              "parameters (taken when the job was submitted), so deleting it is always allowed.\n",
              {},
              1,
              1,
              DeleteArtifact});
  return commands;
}

}  // namespace agt::client
