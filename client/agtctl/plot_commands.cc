// agtctl plot certified | width: pictures of a stored model, as SVG (or PNG
// through rsvg-convert), drawn by client/lib/plot.h.
//
// - certified: CertifyDataset of the model on a stored labelled dataset;
//   classification: worst-case (certified) accuracy, nominal accuracy and
//   stable fraction vs the budget n, on [0, 1]; regression: nominal, best-
//   and worst-case MSE vs n.
// - width: GetTrainingHistory of a job (or of the job that trained a model);
//   total bound width vs iteration, one line per budget, log y axis (a
//   budget of width 0, n = 0, is listed as not drawn).
#include <map>
#include <ostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/agtctl/agtctl.h"
#include "client/agtctl/output.h"
#include "client/lib/exit_codes.h"
#include "client/lib/format.h"
#include "client/lib/plot.h"
#include "nlohmann/json.hpp"

namespace agt::client {
namespace {

constexpr int kWidth = 800;
constexpr int kHeight = 500;

// Writes the chart and reports it (path; with --json {"file", "format",
// "series"}).
int WriteChart(CommandContext& ctx, const plot::Chart& chart, const std::string& path) {
  absl::StatusOr<std::string> svg = plot::RenderSvg(chart);
  if (!svg.ok()) return ctx.Fail(svg.status());
  if (absl::Status s = plot::WritePlot(*svg, path, chart.width, chart.height); !s.ok()) {
    return s.code() == absl::StatusCode::kInvalidArgument ? ctx.FailUsage(s) : ctx.Fail(s);
  }
  const std::string format = absl::EndsWithIgnoreCase(path, ".png") ? "png" : "svg";
  if (ctx.json()) {
    nlohmann::json out = {{"file", path},
                          {"format", format},
                          {"title", chart.title},
                          {"series", static_cast<int>(chart.series.size())}};
    ctx.out() << out.dump(2) << "\n";
  } else if (ctx.quiet()) {
    ctx.out() << path << "\n";
  } else {
    ctx.out() << "wrote " << path << " (" << format << ", " << chart.title << ", "
              << chart.series.size() << " series)\n";
  }
  return kExitOk;
}

std::string OutPath(const CommandContext& ctx) { return ctx.args().Get("out").value_or(""); }

int PlotCertified(CommandContext& ctx) {
  const std::string path = OutPath(ctx);
  auto model_id = ctx.args().Get("model");
  auto dataset_id = ctx.args().Get("dataset");
  if (!model_id || !dataset_id || path.empty()) {
    return ctx.FailUsage(absl::InvalidArgumentError("--model, --dataset and -o FILE are required"));
  }
  agt::v1::CertifyDatasetRequest request;
  request.set_model_id(*model_id);
  request.set_dataset_id(*dataset_id);
  if (auto v = ctx.args().Get("test-epsilon")) {
    absl::StatusOr<double> eps = ParseDouble("--test-epsilon", *v, 0, 1e300);
    if (!eps.ok()) return ctx.FailUsage(eps.status());
    request.set_test_epsilon(*eps);
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  agt::v1::GetModelRequest get;
  get.set_model_id(*model_id);
  absl::StatusOr<agt::v1::GetModelResponse> model = (*client)->GetModel(get);
  if (!model.ok()) return ctx.Fail(model.status());
  absl::StatusOr<agt::v1::CertifyDatasetResponse> cert = (*client)->CertifyDataset(request);
  if (!cert.ok()) return ctx.Fail(cert.status());

  const bool regression = model->model().num_classes() == 0;
  plot::Chart chart;
  chart.markers = true;
  chart.width = kWidth;
  chart.height = kHeight;
  chart.title = regression ? "Certified MSE bounds vs budget n" : "Certified accuracy vs budget n";
  chart.subtitle = absl::StrCat(
      "model ", model->model().id(), ", dataset ", *dataset_id, " (", cert->num_rows(), " rows",
      request.test_epsilon() > 0 ? absl::StrFormat(", test epsilon %g", request.test_epsilon())
                                 : "",
      "), ", PerturbationName(model->model().perturbation().kind()), " budgets");
  chart.x.label = "budget n (perturbed rows per batch)";
  std::vector<plot::Series> series(3);
  if (regression) {
    chart.y.label = "mean squared error";
    series[0].label = "worst case (certified upper bound)";
    series[1].label = "nominal model";
    series[2].label = "best case (certified lower bound)";
  } else {
    chart.y.label = "fraction of rows";
    chart.y.min = 0.0;
    chart.y.max = 1.0;
    series[0].label = "certified accuracy (worst case)";
    series[1].label = "nominal accuracy";
    series[2].label = "stable fraction";
  }
  for (const agt::v1::DatasetCertificate& c : cert->budgets()) {
    const double n = c.budget().n();
    for (plot::Series& s : series) s.x.push_back(n);
    if (regression) {
      series[0].y.push_back(c.mse_worst());
      series[1].y.push_back(c.mse_nominal());
      series[2].y.push_back(c.mse_best());
    } else {
      series[0].y.push_back(c.accuracy_worst());
      series[1].y.push_back(c.accuracy_nominal());
      series[2].y.push_back(c.stable_fraction());
    }
  }
  chart.series = std::move(series);
  PrintWarnings(ctx.err(), absl::StrCat("model ", model->model().id()), model->model().warnings());
  return WriteChart(ctx, chart, path);
}

int PlotWidth(CommandContext& ctx) {
  const std::string path = OutPath(ctx);
  auto job_id = ctx.args().Get("job");
  auto model_id = ctx.args().Get("model");
  if (job_id.has_value() == model_id.has_value() || path.empty()) {
    return ctx.FailUsage(
        absl::InvalidArgumentError("give exactly one of --job JOB_ID or --model MODEL_ID, and -o "
                                   "FILE"));
  }
  agt::v1::GetTrainingHistoryRequest request;
  if (job_id) {
    request.set_job_id(*job_id);
  } else {
    request.set_model_id(*model_id);
  }
  absl::StatusOr<const Client*> client = ctx.client();
  if (!client.ok()) return ctx.FailUsage(client.status());
  absl::StatusOr<agt::v1::GetTrainingHistoryResponse> history =
      (*client)->GetTrainingHistory(request);
  if (!history.ok()) return ctx.Fail(history.status());
  if (history->points().empty()) {
    return ctx.Fail(absl::FailedPreconditionError(
        absl::StrCat("job ", history->job_id(), " has no recorded iteration yet")));
  }
  plot::Chart chart;
  chart.width = kWidth;
  chart.height = kHeight;
  chart.markers = history->points_size() <= 30;
  chart.title = "Bound width over training";
  chart.subtitle = absl::StrCat("job ", history->job_id(), ": ", history->points_size(),
                                " recorded of ", history->total_iterations(), " iterations (",
                                history->stride() == 1 ? std::string("every one")
                                                       : absl::StrCat("one in ", history->stride()),
                                ")");
  chart.x.label = "iteration";
  chart.y.label = "total bound width (sum of upper - lower)";
  chart.y.log = true;
  for (int j = 0; j < history->budgets_size(); ++j) {
    plot::Series s;
    s.label = BudgetLabel(history->budgets(j));
    for (const agt::v1::TrainingHistoryPoint& p : history->points()) {
      s.x.push_back(static_cast<double>(p.iteration()));
      s.y.push_back(j < p.total_width_size() ? p.total_width(j) : 0.0);
    }
    chart.series.push_back(std::move(s));
  }
  return WriteChart(ctx, chart, path);
}

}  // namespace

std::vector<Command> PlotCommands() {
  std::vector<Command> commands;
  commands.push_back(
      Command{{"plot", "certified"},
              "--model ID --dataset ID [--test-epsilon E] -o FILE",
              "plot certified accuracy, nominal accuracy and stable fraction vs the budget n",
              "Certifies the stored labelled dataset against the model (CertifyDataset) and draws\n"
              "one line per figure over the model's budgets n, on [0, 1]. For a regression model:\n"
              "worst-case, nominal and best-case MSE. FILE ends in .svg, or .png (converted with\n"
              "rsvg-convert from Debian's librsvg2-bin). Example:\n"
              "  agtctl plot certified --model mdl-... --dataset ds-... -o certified.svg\n",
              {{"model", true, 0, "ID", "the model"},
               {"dataset", true, 0, "ID", "a stored labelled dataset with the model's features"},
               {"test-epsilon", true, 0, "E", "also let every input move within this l-inf radius"},
               {"out", true, 'o', "FILE", "the picture to write (.svg or .png)"}},
              0,
              0,
              PlotCertified});
  commands.push_back(
      Command{{"plot", "width"},
              "--job ID | --model ID -o FILE",
              "plot the total bound width per budget over training iterations (log scale)",
              "Reads the job's stored width history (GetTrainingHistory: at most 1024 points\n"
              "spread over the whole run) and draws one line per budget n; a zero width (n = 0)\n"
              "cannot be drawn on the log axis and is listed as not drawn. Example:\n"
              "  agtctl plot width --model mdl-... -o width.png\n",
              {{"job", true, 0, "ID", "the job"},
               {"model", true, 0, "ID", "the model (its training job)"},
               {"out", true, 'o', "FILE", "the picture to write (.svg or .png)"}},
              0,
              0,
              PlotWidth});
  return commands;
}

}  // namespace agt::client
