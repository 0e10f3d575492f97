// agtctl model list | get | export (JSON or ONNX) | rm.
#include <fstream>
#include <optional>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"

namespace agt::client {
namespace {

std::string DescribePerturbation(const agt::v1::Perturbation& p) {
  std::string out = PerturbationName(p.kind());
  if (p.kind() == agt::v1::PERTURBATION_KIND_POISONING) {
    absl::StrAppend(&out, ", epsilon ", FormatNumber(p.epsilon()));
    if (p.has_labels()) {
      const agt::v1::LabelPerturbation& l = p.labels();
      if (l.has_flip()) absl::StrAppend(&out, ", label flips");
      if (l.has_target_class()) absl::StrAppend(&out, ", labels to class ", l.target_class());
      if (l.has_nu()) absl::StrAppend(&out, ", targets moved by ", FormatNumber(l.nu()));
    }
    if (p.paired()) absl::StrAppend(&out, ", paired");
  }
  return out;
}

void PrintModel(std::ostream& out, const agt::v1::Model& model) {
  KeyValues rows = {
      {"id", model.id()},
      {"name", model.name()},
      {"job", model.job_id()},
      {"dataset", model.dataset_id()},
      {"architecture", DescribeArchitecture(model.architecture())},
      {"polynomial degree", absl::StrCat(std::max(model.polynomial_degree(), 1))},
      {"input features", absl::StrCat(model.input_features())},
      {"loss", LossName(model.loss())},
      {"classes", absl::StrCat(model.num_classes())},
      {"perturbation", DescribePerturbation(model.perturbation())},
      {"bounds", DescribeBounds(model.bound_method(), model.interval_product(), model.rounding())},
      {"trained on", model.backend().empty() ? "-" : model.backend()},
      {"created", FormatTimestamp(model.created())},
  };
  if (model.momentum_caveat()) {
    rows.push_back({"caveat",
                    "trained with momentum: bounds follow the reference's rule, "
                    "soundness not established"});
  }
  AddWarningRows(model.warnings(), &rows);
  PrintKeyValues(out, rows);
  out << "\n";
  Table table({"BUDGET", "TOTAL WIDTH", "MAX WIDTH"});
  for (const agt::v1::BudgetSummary& b : model.budgets()) {
    table.AddRow(
        {BudgetLabel(b.budget()), FormatNumber(b.total_width()), FormatNumber(b.max_width())});
  }
  out << table.Render();
}

int ListModels(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::ListModelsResponse> listed = ListAllPages<agt::v1::ListModelsResponse>(
      agt::v1::ListModelsRequest(),
      [&](const agt::v1::ListModelsRequest& r) { return (*client)->ListModels(r); });
  if (!listed.ok()) return ctx.Fail(listed.status());
  const agt::v1::ListModelsResponse& all = *listed;
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& m : all.models()) ctx.out() << m.id() << "\n";
    return kExitOk;
  }
  Table table({"ID", "NAME", "JOB", "DATASET", "PERTURBATION", "BUDGETS", "CREATED"});
  for (const auto& m : all.models()) {
    std::vector<std::string> budgets;
    for (const auto& b : m.budgets()) budgets.push_back(absl::StrCat(b.budget().n()));
    table.AddRow({m.id(), m.name(), m.job_id(), m.dataset_id(),
                  PerturbationName(m.perturbation().kind()), absl::StrJoin(budgets, ","),
                  FormatTimestamp(m.created())});
  }
  ctx.out() << table.Render();
  return kExitOk;
}

int GetModel(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::GetModelRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::GetModelResponse> response = (*client)->GetModel(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->model().id() << "\n";
  } else {
    PrintModel(ctx.out(), response->model());
  }
  return kExitOk;
}

// --format onnx: the nominal network as an ONNX file (ExportModelOnnx).
int ExportModelAsOnnx(CommandContext& ctx, const Client& client) {
  std::optional<std::string> path = ctx.args().Get("out");
  if (!path || *path == "-") {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "--format onnx writes a binary file: give it with --out FILE (-o FILE)"));
  }
  agt::v1::ExportModelOnnxRequest request;
  request.set_model_id(ctx.positionals()[0]);
  request.set_float32(ctx.args().Has("float32"));
  absl::StatusOr<std::string> file = client.ExportModelOnnx(request);
  if (!file.ok()) return ctx.Fail(file.status());
  std::ofstream stream(*path, std::ios::binary | std::ios::trunc);
  stream.write(file->data(), static_cast<std::streamsize>(file->size()));
  stream.close();
  if (!stream) {
    return ctx.FailUsage(absl::InvalidArgumentError(absl::StrCat("cannot write ", *path)));
  }
  if (ctx.quiet()) {
    ctx.out() << request.model_id() << "\n";
  } else if (ctx.json()) {
    ctx.out() << "{\"model_id\": \"" << request.model_id() << "\", \"path\": \"" << *path
              << "\", \"size_bytes\": " << file->size() << "}\n";
  } else {
    ctx.out() << "wrote model " << request.model_id() << " as ONNX ("
              << FormatBytes(static_cast<int64_t>(file->size())) << ", nominal parameters) to "
              << *path << "\n";
  }
  return kExitOk;
}

int ExportModel(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  const std::string format = ctx.args().Get("format").value_or("json");
  if (format == "onnx") return ExportModelAsOnnx(ctx, **client);
  if (format != "json") {
    return ctx.FailUsage(absl::InvalidArgumentError(
        absl::StrCat("--format: '", format, "' is not json or onnx")));
  }
  if (ctx.args().Has("float32")) {
    return ctx.FailUsage(absl::InvalidArgumentError("--float32 goes with --format onnx"));
  }
  agt::v1::ExportModelRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::ExportModelResponse> response = (*client)->ExportModel(request);
  if (!response.ok()) return ctx.Fail(response.status());
  std::string json = ToJson(*response);
  std::optional<std::string> path = ctx.args().Get("out");
  if (!path || *path == "-") {
    ctx.out() << json;
    return kExitOk;
  }
  std::ofstream file(*path, std::ios::binary | std::ios::trunc);
  file << json;
  file.close();
  if (!file) {
    return ctx.FailUsage(absl::InvalidArgumentError(absl::StrCat("cannot write ", *path)));
  }
  if (ctx.quiet()) {
    ctx.out() << response->model().id() << "\n";
  } else if (!ctx.json()) {
    ctx.out() << "wrote model " << response->model().id() << " (" << response->boxes_size()
              << " budget boxes, " << FormatBytes(static_cast<int64_t>(json.size())) << ") to "
              << *path << "\n";
  }
  return kExitOk;
}

int DeleteModel(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::DeleteModelRequest request;
  request.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::DeleteModelResponse> response = (*client)->DeleteModel(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (!ctx.quiet()) {
    ctx.out() << "deleted model " << request.model_id() << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> ModelCommands() {
  std::vector<Command> commands;
  commands.push_back(
      Command{{"model", "list"}, "", "list your trained models", "", {}, 0, 0, ListModels});
  commands.push_back(Command{{"model", "get"},
                             "MODEL_ID",
                             "show a model and the bound widths of its budgets",
                             "With --json: the whole agt.v1.GetModelResponse, nominal "
                             "parameters included.\n",
                             {},
                             1,
                             1,
                             GetModel});
  commands.push_back(
      Command{{"model", "export"},
              "MODEL_ID [--out FILE] [--format json|onnx [--float32]]",
              "export a model: its parameters and boxes as JSON, or the nominal network as ONNX",
              "--format json (default): the proto3 JSON of agt.v1.ExportModelResponse (nominal\n"
              "parameters and every budget's parameter box) to FILE or stdout.\n"
              "--format onnx: the nominal network (frozen prefix + trained layers) as an ONNX\n"
              "file (opset 13, input \"input\", output \"logits\"; float64 weights unless\n"
              "--float32) to FILE, to serve with any ONNX runtime; the certified boxes stay in\n"
              "the JSON export.\n",
              {{"out", true, 'o', "FILE", "write to FILE instead of stdout"},
               {"format", true, 0, "FORMAT", "json (default) or onnx"},
               {"float32", false, 0, "", "onnx: float32 weights (rounded to nearest)"}},
              1,
              1,
              ExportModel});
  commands.push_back(Command{
      {"model", "rm"},
      "MODEL_ID",
      "delete a model with its boxes and deletion ledger (its job stays)",
      "The privacy budget of its training data stays: a model trained again on the same\n"
      "data spends from the same budget. Fails while a retraining of the model is queued\n"
      "or running.\n",
      {},
      1,
      1,
      DeleteModel});
  return commands;
}

}  // namespace agt::client
