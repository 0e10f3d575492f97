// agtctl dataset upload | list | get | rm.
#include <cmath>
#include <filesystem>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/arrays.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"

namespace agt::client {
namespace {

absl::StatusOr<agt::v1::DatasetFormat> ResolveFormat(const ParsedArgs& args,
                                                     const std::string& path) {
  std::string format = absl::AsciiStrToLower(args.GetOr("format", ""));
  if (format.empty()) {
    std::string lower = absl::AsciiStrToLower(path);
    format = absl::EndsWith(lower, ".f64") || absl::EndsWith(lower, ".bin") ||
                     absl::EndsWith(lower, ".raw")
                 ? "float64"
                 : "csv";
  }
  if (format == "csv") return agt::v1::DATASET_FORMAT_CSV;
  if (format == "float64" || format == "f64") return agt::v1::DATASET_FORMAT_FLOAT64;
  return absl::InvalidArgumentError(
      absl::StrCat("--format '", args.GetOr("format", ""), "' is not csv or float64"));
}

// IDX / .npy / .npz: converted here to FLOAT64 rows with the sample shape.

// What a command answered with one dataset prints (UploadDatasetResponse,
// GetDatasetResponse): the response's proto JSON, the id (-q), or the
// dataset's fields.
template <typename Response>
int PrintDatasetResponse(CommandContext& ctx, const absl::StatusOr<Response>& response) {
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (ctx.quiet()) {
    ctx.out() << response->dataset().id() << "\n";
  } else {
    PrintKeyValues(ctx.out(), DatasetKeyValues(response->dataset()));
  }
  return kExitOk;
}

int UploadArrays(CommandContext& ctx, agt::v1::DatasetMetadata metadata) {
  const std::string& path = ctx.positionals()[0];
  if (ctx.args().Has("format") || ctx.args().Has("features")) {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "--format and --features do not apply to IDX/.npy/.npz files (the file says)"));
  }
  double scale = 0;  // the default: uint8 / 255, others as they are
  if (std::optional<std::string> s = ctx.args().Get("scale")) {
    if (!absl::SimpleAtod(*s, &scale) || !(scale > 0) || !std::isfinite(scale)) {
      return ctx.FailUsage(
          absl::InvalidArgumentError(absl::StrCat("--scale '", *s, "' is not a number > 0")));
    }
  }
  absl::StatusOr<LabelledArrays> arrays = ReadLabelledArrays(
      path, ctx.args().GetOr("labels", ""), ctx.args().Has("label-last-column"), scale);
  if (!arrays.ok()) return ctx.FailUsage(arrays.status());
  if (arrays->labels.empty()) {
    return ctx.FailUsage(absl::InvalidArgumentError(absl::StrCat(
        path, ": no labels; give --labels FILE, --label-last-column, or an .npz with y")));
  }
  metadata.set_format(agt::v1::DATASET_FORMAT_FLOAT64);
  metadata.set_num_features(static_cast<int>(arrays->features.row_size()));
  for (int d : arrays->sample_shape) metadata.add_sample_shape(d);
  const std::string rows = ToFloat64Rows(*arrays);
  arrays->features.values.clear();
  arrays->features.values.shrink_to_fit();
  metadata.set_size_bytes(static_cast<int64_t>(rows.size()));
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  metadata.set_request_id(ctx.RequestId());
  absl::StatusOr<agt::v1::UploadDatasetResponse> response =
      ctx.CallIdempotent([&] { return (*client)->UploadDataset(metadata, rows); });
  return PrintDatasetResponse(ctx, response);
}

int Upload(CommandContext& ctx) {
  const std::string& path = ctx.positionals()[0];
  agt::v1::DatasetMetadata metadata;
  metadata.set_name(ctx.args().GetOr("name", std::filesystem::path(path).stem().string()));
  std::string classes = ctx.args().GetOr("classes", "auto");
  if (classes == "auto") {
    metadata.set_num_classes(-1);
  } else {
    absl::StatusOr<int64_t> c = ParseInt("--classes", classes, 0, 1 << 20);
    if (!c.ok()) return ctx.FailUsage(c.status());
    metadata.set_num_classes(static_cast<int>(*c));
  }
  if (IsArrayFileName(path)) return UploadArrays(ctx, std::move(metadata));
  absl::StatusOr<agt::v1::DatasetFormat> format = ResolveFormat(ctx.args(), path);
  if (!format.ok()) return ctx.FailUsage(format.status());
  metadata.set_format(*format);
  if (ctx.args().Has("labels") || ctx.args().Has("scale") || ctx.args().Has("label-last-column")) {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "--labels, --label-last-column and --scale apply to IDX/.npy/.npz files only"));
  }
  if (std::optional<std::string> features = ctx.args().Get("features")) {
    absl::StatusOr<int64_t> k = ParseInt("--features", *features, 1, 1 << 24);
    if (!k.ok()) return ctx.FailUsage(k.status());
    metadata.set_num_features(static_cast<int>(*k));
  } else if (*format == agt::v1::DATASET_FORMAT_FLOAT64) {
    return ctx.FailUsage(absl::InvalidArgumentError(
        "--features K is required with --format float64 (each row is K features and a label)"));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return ctx.FailUsage(absl::NotFoundError(absl::StrCat("cannot read dataset file ", path)));
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  metadata.set_request_id(ctx.RequestId());
  absl::StatusOr<agt::v1::UploadDatasetResponse> response =
      ctx.CallIdempotent([&] { return (*client)->UploadDatasetFile(metadata, path); });
  return PrintDatasetResponse(ctx, response);
}

int List(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::ListDatasetsResponse> listed =
      ListAllPages<agt::v1::ListDatasetsResponse>(
          agt::v1::ListDatasetsRequest(),
          [&](const agt::v1::ListDatasetsRequest& r) { return (*client)->ListDatasets(r); });
  if (!listed.ok()) return ctx.Fail(listed.status());
  const agt::v1::ListDatasetsResponse& all = *listed;
  if (ctx.json()) {
    ctx.out() << ToJson(all);
    return kExitOk;
  }
  if (ctx.quiet()) {
    for (const auto& d : all.datasets()) ctx.out() << d.id() << "\n";
    return kExitOk;
  }
  Table table({"ID", "NAME", "ROWS", "FEATURES", "CLASSES", "SIZE", "CREATED"});
  for (const auto& d : all.datasets()) {
    table.AddRow({d.id(), d.name(), absl::StrCat(d.num_rows()), absl::StrCat(d.num_features()),
                  absl::StrCat(d.num_classes()), FormatBytes(d.size_bytes()),
                  FormatTimestamp(d.created())});
  }
  ctx.out() << table.Render();
  return kExitOk;
}

int Get(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::GetDatasetRequest request;
  request.set_dataset_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::GetDatasetResponse> response = (*client)->GetDataset(request);
  return PrintDatasetResponse(ctx, response);
}

int Remove(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::DeleteDatasetRequest request;
  request.set_dataset_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::DeleteDatasetResponse> response = (*client)->DeleteDataset(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
  } else if (!ctx.quiet()) {
    ctx.out() << "deleted dataset " << request.dataset_id() << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> DatasetCommands() {
  std::vector<Command> commands;
  commands.push_back(
      Command{{"dataset", "upload"},
              "FILE [--name NAME] [--format csv|float64] [--features K] [--classes C|auto]\n"
              "       [--labels LABELS_FILE] [--label-last-column] [--scale S]",
              "upload a dataset (CSV, raw float64 rows, IDX images, NumPy .npy/.npz)",
              "CSV: an optional header row, then one example per line, features then the label.\n"
              "float64: rows of K features followed by the label, little-endian, no header\n"
              "(--features K is required). The format follows the file's extension (.f64, .bin,\n"
              ".raw = float64) unless --format says otherwise. --classes: 0 = regression targets,\n"
              "2 = binary 0/1, C = classes 0..C-1, auto (default) = inferred from the labels.\n"
              "The file is streamed in 1 MiB chunks under one --timeout (raise it for large\n"
              "files on slow links). Prints the stored dataset (with --quiet: its id).\n"
              "IDX (*-ubyte, .idx, optionally .gz) and NumPy (.npy, .npz) files are converted\n"
              "here to float64 rows with the sample shape set from the file: IDX/.npy images\n"
              "[N, H, W] become [1, H, W] samples, [N, C, H, W] stay, [N, D] are flat. Labels:\n"
              "--labels FILE (IDX or .npy vector), --label-last-column (an [N, D+1] .npy), or an\n"
              ".npz's members x/y (or features/labels). uint8 data is divided by 255 (pixels in\n"
              "[0, 1]) unless --scale S says another divisor (--scale 1 keeps 0..255).\n",
              {{"name", true, 0, "NAME", "name for people (default: the file's name)"},
               {"format", true, 0, "FORMAT", "csv or float64 (default: from the extension)"},
               {"features", true, 0, "K", "float64 only: features per row"},
               {"classes", true, 0, "C", "0, 2, C or auto (default auto)"},
               {"labels", true, 0, "FILE", "IDX/.npy labels for an IDX/.npy features file"},
               {"label-last-column", false, 0, "", ".npy: the last column is the label"},
               {"scale", true, 0, "S", "divide the values by S (default 255 for uint8)"}},
              1,
              1,
              Upload});
  commands.push_back(Command{{"dataset", "list"}, "", "list your datasets", "", {}, 0, 0, List});
  commands.push_back(
      Command{{"dataset", "get"}, "DATASET_ID", "show one dataset", "", {}, 1, 1, Get});
  commands.push_back(Command{{"dataset", "rm"},
                             "DATASET_ID",
                             "delete a dataset (models trained on it stay)",
                             "Fails while a queued or running job uses the dataset.\n",
                             {},
                             1,
                             1,
                             Remove});
  return commands;
}

}  // namespace agt::client
