// agtctl certify (points from a CSV, or a stored labelled dataset) and
// agtctl health.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/arrays.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/inputs.h"
#include "nlohmann/json.hpp"

namespace agt::client {
namespace {

constexpr int64_t kDefaultRowsPerCall = 1000;

struct CertifyOptions {
  double epsilon = 0;
  agt::v1::StabilityRule rule = agt::v1::STABILITY_RULE_UNSPECIFIED;
  int64_t rows_per_call = kDefaultRowsPerCall;
};

absl::StatusOr<CertifyOptions> ReadOptions(const ParsedArgs& args) {
  CertifyOptions options;
  if (auto v = args.Get("epsilon")) {
    absl::StatusOr<double> eps = ParseDouble("--epsilon", *v, 0, 1e300);
    if (!eps.ok()) return eps.status();
    options.epsilon = *eps;
  }
  if (auto v = args.Get("stability")) {
    if (*v == "margin") {
      options.rule = agt::v1::STABILITY_RULE_MARGIN;
    } else if (*v == "softmax") {
      options.rule = agt::v1::STABILITY_RULE_SOFTMAX;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--stability '", *v, "' is not margin or softmax"));
    }
  }
  if (auto v = args.Get("batch")) {
    absl::StatusOr<int64_t> n = ParseInt("--batch", *v, 1, 1000000);
    if (!n.ok()) return n.status();
    options.rows_per_call = *n;
  }
  return options;
}

// Rows [begin, end) of `inputs` as a Matrix.
agt::v1::Matrix Slice(const agt::v1::Matrix& inputs, int64_t begin, int64_t end) {
  agt::v1::Matrix part;
  part.set_rows(end - begin);
  part.set_cols(inputs.cols());
  part.mutable_values()->Add(inputs.values().begin() + begin * inputs.cols(),
                             inputs.values().begin() + end * inputs.cols());
  return part;
}

std::string FormatRowInputs(const agt::v1::Matrix& inputs, int64_t row) {
  std::string out;
  const int64_t shown = std::min<int64_t>(inputs.cols(), 4);
  for (int64_t c = 0; c < shown; ++c) {
    absl::StrAppend(&out, c > 0 ? "," : "",
                    FormatNumber(inputs.values(row * inputs.cols() + c), 3));
  }
  if (inputs.cols() > shown) absl::StrAppend(&out, " ...");
  return out;
}

void PrintPointTable(std::ostream& out, const agt::v1::Model& model, const InputRows& rows,
                     const agt::v1::CertifyPredictionsResponse& response) {
  const bool labelled = !rows.labels.empty();
  std::vector<std::string> headers = {"ROW", "INPUT"};
  if (labelled) headers.push_back("LABEL");
  headers.push_back("PRED");
  const bool single_logit =
      response.points_size() > 0 && response.points(0).nominal_logits_size() == 1;
  if (single_logit) headers.push_back("LOGIT");
  for (const auto& b : model.budgets()) headers.push_back(BudgetLabel(b.budget()));
  headers.push_back("LARGEST STABLE");
  Table table(headers);
  const int budgets = model.budgets_size();
  std::vector<int> stable_count(budgets, 0), correct_count(budgets, 0);
  for (int i = 0; i < response.points_size(); ++i) {
    const agt::v1::PointCertificate& p = response.points(i);
    std::vector<std::string> cells = {absl::StrCat(i), FormatRowInputs(rows.inputs, i)};
    if (labelled) cells.push_back(FormatNumber(rows.labels[i]));
    cells.push_back(absl::StrCat(p.predicted_class()));
    if (single_logit) cells.push_back(FormatNumber(p.nominal_logits(0)));
    for (int b = 0; b < budgets; ++b) {
      const bool stable = b < p.stable_size() && p.stable(b);
      const bool correct = b < p.correct_size() && p.correct(b);
      stable_count[b] += stable;
      correct_count[b] += correct;
      if (labelled) {
        cells.push_back(correct ? "correct" : (stable ? "stable" : "-"));
      } else {
        cells.push_back(stable ? "stable" : "-");
      }
    }
    const int largest = p.largest_stable_budget();
    cells.push_back(largest >= 0 && largest < budgets ? BudgetLabel(model.budgets(largest).budget())
                                                      : "none");
    table.AddRow(std::move(cells));
  }
  out << table.Render() << "\n";
  Table summary(labelled ? std::vector<std::string>{"BUDGET", "STABLE", "CORRECT"}
                         : std::vector<std::string>{"BUDGET", "STABLE"});
  const int n = response.points_size();
  for (int b = 0; b < budgets; ++b) {
    std::vector<std::string> cells = {BudgetLabel(model.budgets(b).budget()),
                                      absl::StrCat(stable_count[b], "/", n)};
    if (labelled) cells.push_back(absl::StrCat(correct_count[b], "/", n));
    summary.AddRow(std::move(cells));
  }
  out << summary.Render();
  if (!response.guarantee().empty()) out << "\n" << WrapText(response.guarantee(), 100);
}

int CertifyPoints(CommandContext& ctx, const Client& client, const agt::v1::Model& model,
                  const CertifyOptions& options, const InputRows& input_rows) {
  const std::string& path = ctx.positionals()[1];
  const bool labelled = ctx.args().Has("labels");
  const InputRows* rows = &input_rows;
  if (model.input_features() > 0 && rows->inputs.cols() != model.input_features()) {
    std::string hint = !labelled && rows->inputs.cols() == model.input_features() + 1
                           ? " (pass --labels if the last column is the label)"
                           : "";
    return ctx.FailUsage(absl::InvalidArgumentError(
        absl::StrCat(path, ": ", rows->inputs.cols(), " input columns, but model ", model.id(),
                     " takes ", model.input_features(), " input features", hint)));
  }
  agt::v1::CertifyPredictionsResponse all;
  const int64_t total = rows->inputs.rows();
  for (int64_t begin = 0; begin < total; begin += options.rows_per_call) {
    const int64_t end = std::min(total, begin + options.rows_per_call);
    agt::v1::CertifyPredictionsRequest request;
    request.set_model_id(model.id());
    *request.mutable_inputs() = Slice(rows->inputs, begin, end);
    request.set_test_epsilon(options.epsilon);
    request.set_stability_rule(options.rule);
    if (labelled) {
      request.mutable_labels()->Add(rows->labels.begin() + begin, rows->labels.begin() + end);
    }
    absl::StatusOr<agt::v1::CertifyPredictionsResponse> response =
        client.CertifyPredictions(request);
    if (!response.ok()) return ctx.Fail(response.status());
    for (auto& p : *response->mutable_points()) *all.add_points() = std::move(p);
    all.set_guarantee(response->guarantee());
    *all.mutable_budgets() = response->budgets();
  }
  if (all.points_size() != total) {
    return ctx.Fail(absl::InternalError(absl::StrCat("server returned ", all.points_size(),
                                                     " certificates for ", total, " inputs")));
  }
  if (ctx.json()) {
    // The calls' answers as one CertifyPredictionsResponse: points in input order.
    ctx.out() << ToJson(all);
  } else if (ctx.quiet()) {
    for (const auto& p : all.points()) {
      const int largest = p.largest_stable_budget();
      ctx.out() << (largest >= 0 && largest < model.budgets_size()
                        ? absl::StrCat(model.budgets(largest).budget().n())
                        : std::string("none"))
                << "\n";
    }
  } else {
    PrintPointTable(ctx.out(), model, *rows, all);
  }
  return kExitOk;
}

int CertifyStoredDataset(CommandContext& ctx, const Client& client, const agt::v1::Model& model,
                         const CertifyOptions& options) {
  agt::v1::CertifyDatasetRequest request;
  request.set_model_id(model.id());
  request.set_dataset_id(*ctx.args().Get("dataset"));
  request.set_test_epsilon(options.epsilon);
  request.set_stability_rule(options.rule);
  absl::StatusOr<agt::v1::CertifyDatasetResponse> response = client.CertifyDataset(request);
  if (!response.ok()) return ctx.Fail(response.status());
  if (ctx.json()) {
    ctx.out() << ToJson(*response);
    return kExitOk;
  }
  const bool regression = model.loss() == agt::v1::LOSS_MSE;
  Table table(
      regression
          ? std::vector<std::string>{"BUDGET", "MSE NOMINAL", "MSE BEST", "MSE WORST"}
          : std::vector<std::string>{"BUDGET", "ACC NOMINAL", "ACC WORST", "ACC BEST", "STABLE"});
  for (const agt::v1::DatasetCertificate& c : response->budgets()) {
    if (regression) {
      table.AddRow({BudgetLabel(c.budget()), FormatNumber(c.mse_nominal()),
                    FormatNumber(c.mse_best()), FormatNumber(c.mse_worst())});
    } else {
      table.AddRow({BudgetLabel(c.budget()), FormatNumber(c.accuracy_nominal()),
                    FormatNumber(c.accuracy_worst()), FormatNumber(c.accuracy_best()),
                    FormatNumber(c.stable_fraction())});
    }
  }
  ctx.out() << response->num_rows() << " rows of dataset " << request.dataset_id() << "\n\n"
            << table.Render();
  if (!response->guarantee().empty()) ctx.out() << "\n" << WrapText(response->guarantee(), 100);
  return kExitOk;
}

int Certify(CommandContext& ctx) {
  const bool from_dataset = ctx.args().Has("dataset");
  const bool from_csv = ctx.positionals().size() == 2;
  if (from_dataset == from_csv) {
    return ctx.FailUsage(
        absl::InvalidArgumentError("give either INPUTS.csv or --dataset DATASET_ID (exactly one)"));
  }
  if (from_dataset && ctx.args().Has("labels")) {
    return ctx.FailUsage(
        absl::InvalidArgumentError("--labels applies to INPUTS.csv, not to --dataset"));
  }
  absl::StatusOr<CertifyOptions> options = ReadOptions(ctx.args());
  if (!options.ok()) return ctx.FailUsage(options.status());
  // Local input first: a bad file costs no round trip.
  absl::StatusOr<InputRows> rows;
  if (from_csv) {
    rows = ReadQueryInputs(ctx.positionals()[1], ctx.args().Has("labels"));
    if (!rows.ok()) return ctx.FailUsage(rows.status());
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::GetModelRequest get;
  get.set_model_id(ctx.positionals()[0]);
  absl::StatusOr<agt::v1::GetModelResponse> model = (*client)->GetModel(get);
  if (!model.ok()) return ctx.Fail(model.status());
  if (from_dataset) return CertifyStoredDataset(ctx, **client, model->model(), *options);
  return CertifyPoints(ctx, **client, model->model(), *options, *rows);
}

int Health(CommandContext& ctx) {
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<HealthStatus> status = (*client)->CheckHealth(ctx.args().GetOr("service", ""));
  if (!status.ok()) return ctx.Fail(status.status());
  if (ctx.json()) {
    ctx.out() << nlohmann::json({{"status", HealthStatusName(*status)}}).dump() << "\n";
  } else if (!ctx.quiet()) {
    ctx.out() << HealthStatusName(*status) << "\n";
  }
  return *status == HealthStatus::kServing ? kExitOk : kExitError;
}

}  // namespace

std::vector<Command> CertifyCommands() {
  std::vector<Command> commands;
  commands.push_back(Command{
      {"certify"},
      "MODEL_ID (INPUTS.csv [--labels] | --dataset DATASET_ID) [--epsilon E] "
      "[--stability margin|softmax]",
      "certify predictions of a trained model for a batch of inputs, or a labelled dataset",
      "INPUTS.csv: one point per row (raw features, before polynomial expansion), an\n"
      "optional header; with --labels the last column is the label and the table says\n"
      "which predictions are certified correct. Per point: prediction, stable (or correct)\n"
      "per budget, and the largest budget at which the prediction is certified; then the\n"
      "count per budget. With --quiet: the largest stable n per point ('none' if none).\n"
      "--dataset: certified accuracy (or MSE bounds) per budget over a stored dataset.\n"
      "Certificates hold under the paper's assumptions (fixed data order, initialisation\n"
      "and hyper-parameters; budgets count rows per batch).\n",
      {{"labels", false, 0, "", "the last CSV column is the label"},
       {"dataset", true, 0, "DATASET_ID", "certify a stored labelled dataset instead"},
       {"epsilon", true, 0, "E", "test-time l-infinity radius (backdoor certificates)"},
       {"stability", true, 0, "RULE", "margin (default, sound) or softmax (the reference's)"},
       {"batch", true, 0, "ROWS", "rows per request (default 1000)"}},
      1,
      2,
      Certify});
  commands.push_back(Command{{"health"},
                             "[--service NAME]",
                             "check that the server is serving (exit 0 iff SERVING)",
                             "Uses the standard grpc.health.v1 service; needs no token.\n",
                             {{"service", true, 0, "NAME", "a service name (default: the server)"}},
                             0,
                             0,
                             Health});
  return commands;
}

}  // namespace agt::client
