#include "core/cli/commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agt/version.h"
#include "core/certify/certify.h"
#include "core/cli/config.h"
#include "core/cli/golden.h"
#include "core/cli/results.h"
#include "core/common/decimal.h"
#include "core/train/train.h"

#ifdef AGT_WITH_ONNX
#include "core/onnx/export.h"
#endif

namespace agt::cli {

using nlohmann::json;

namespace {

constexpr char kVersion[] = "agt " AGT_VERSION_STRING " (commit " AGT_GIT_COMMIT ")";

constexpr char kMainHelp[] = R"(agt: Abstract Gradient Training (AGT), offline tool.

Trains a model together with certified parameter bounds (one box per budget of
a perturbation model: removal/unlearning, substitution/privacy, bounded
poisoning), certifies predictions with them, and replays golden cases of the
reference implementation.

usage: agt <command> [arguments] [options]

commands:
  train CONFIG.json      certified training from a JSON config; writes a results JSON
  certify RESULTS.json DATA.csv
                         certificates for every row of a CSV, per budget
  golden CASE_DIR        run a golden case (case.json, train.csv, ...) and compare
                         it with its expected.json
  generate moons|blobs   write a built-in dataset (half-moons, Gaussian blobs) as CSV
  export-onnx RESULTS.json OUT.onnx
                         write the trained model (frozen prefix + trained layers,
                         nominal parameters) as ONNX

options:
  -h, --help             this help; `agt <command> --help` for a command's help
  --version              print the version

exit codes: 0 success, 1 runtime failure, 2 usage or input error.
)";

constexpr char kTrainHelp[] =
    R"(usage: agt train CONFIG.json [--out RESULTS.json] [--threads N] [--backend B] [--quiet]

Runs AGT (paper Algorithm 1) as the config describes: one nominal SGD
trajectory and, per budget, a parameter box containing every parameter vector
that training on a perturbed dataset could reach. Writes one results JSON with
the config, the model layout, the nominal parameters, per budget the box
(lower/upper, in the goldens' init.json layout), its total and max width, and
test certificates when the config names a test set. The config schema is
documented in core/cli/CONFIG.md; unknown keys are errors.

options:
  --out RESULTS.json   where to write the results (default: CONFIG's name with
                       .results.json, in the current directory)
  --threads N          worker threads (default 0 = all cores); results do not
                       depend on it
  --backend B          auto (default: cuda when a GPU is visible, else cpu),
                       cpu, cuda (an error without a GPU), or host-engine (the
                       CUDA backend's device code run on the CPU, for checks);
                       results agree bit for bit; the results file records it
  --quiet              no progress on stderr
  -h, --help           this help

Progress (step/total, epoch, loss, total bound width per budget, ETA) goes to
stderr unless --quiet. Exit codes: 0 success, 1 training or writing failed,
2 bad arguments, config or data.
)";

constexpr char kCertifyHelp[] =
    R"(usage: agt certify RESULTS.json DATA.csv [--epsilon E] [--stability RULE] [--points] [--json]

Certifies every row of DATA.csv (features, label last; the same polynomial
expansion as training is applied) with each parameter box of RESULTS.json
(written by agt train), and prints per budget: classification: nominal,
certified (worst-case) and best-case accuracy and the stable fraction;
regression: nominal, worst- and best-case MSE. A row is stable at a budget
when every model in that budget's box predicts its nominal class.

options:
  --epsilon E   also let every input move within an l-infinity ball of radius E
                (backdoor certificate; in the model's input space, after the
                polynomial expansion); default 0
  --stability RULE
                multi-class stability rule: margin (default; every margin
                z_c - z_j of the nominal class c has a positive lower bound
                through the last layer: sound and never looser) or softmax
                (the reference implementation's rule on softmax bounds)
  --points      also list, per row, the label, the nominal prediction, the
                logit bounds per budget and the largest budget at which the
                row is stable
  --json        print one JSON object instead of tables (for scripts)
  -h, --help    this help

Exit codes: 0 success, 1 failure, 2 bad arguments, results or data.
)";

constexpr char kGenerateHelp[] =
    R"(usage: agt generate moons|blobs --out FILE.csv [--n N] [--seed S] [options]

Writes a built-in dataset as CSV (header x0..x{d-1},y; values printed so that
they read back bit for bit), the same rows `agt train` gets from a
"generator" config entry:
  moons   two interleaving half circles, labels 0/1 (2 features)
  blobs   isotropic Gaussian blobs, labels 0..classes-1

options:
  --out FILE.csv     where to write (required)
  --n N              rows (default 1000)
  --seed S           generator seed (default 0)
  --noise X          moons: Gaussian noise stddev (default 0.1)
  --dim D            blobs: features (default 2)
  --classes C        blobs: classes (default 3)
  --stddev X         blobs: cluster stddev (default 1.0)
  --center-box X     blobs: centres drawn in [-X, X] (default 10)
  -h, --help         this help

Exit codes: 0 success, 1 the file could not be written, 2 bad arguments.
)";

constexpr char kGoldenHelp[] =
    R"(usage: agt golden CASE_DIR [--out RESULT.json] [--run NAME] [--trace] [--threads N]
                  [--backend B] [--timings] [--quiet]

Runs every run of a golden case directory (case.json, train.csv, test.csv,
init.json; format: tests/data/goldens/README.md) and writes RESULT.json in the
layout of the format's expected.json: per run nominal/lower/upper parameters,
total_width, width_per_tensor, max_width, steps, test certificates (and
test_backdoor for poisoning runs with epsilon > 0). When the directory holds
expected.json, prints per run the largest relative differences of
parameters/bounds, widths, logits and MSEs, accuracy differences, the stable
flags that differ, and PASS/FAIL against the README's tolerances.

options:
  --out RESULT.json   write the result here (default: do not write)
  --run NAME          only this run
  --trace             record the parameters after every step; with trace.json
                      in the directory, report the first step that diverges
  --threads N         worker threads (default 0 = all cores)
  --backend B         auto (default), cpu, cuda or host-engine (agt train --help)
  --timings           print the wall time of each phase on stderr (reading,
                      per run setup, training, certificates; writing)
  --quiet             no per-run progress on stderr
  -h, --help          this help

Exit codes: 0 success (and PASS when expected.json exists), 1 FAIL or a
runtime failure, 2 bad arguments or a malformed case.
)";

constexpr char kExportOnnxHelp[] =
    R"(usage: agt export-onnx RESULTS.json OUT.onnx [--float32]

Writes the model of a results file (from `agt train`) as an ONNX model: the
frozen prefix with its fixed parameters and the trained layers with their
nominal parameters, opset 13, input "input" [N, C, H, W] or [N, D], output
"logits" [N, classes] (core/onnx/README.md). The certified boxes stay in the
results file.

options:
  --float32     float32 initializers (rounded to nearest; input and output
                float32 too); default float64, the parameters exactly
  -h, --help    this help

exit codes: 0 written, 1 the file could not be written, 2 bad arguments or an
unreadable results file, or an agt built without ONNX support.
)";

// ---------------------------------------------------------------------------
// Argument parsing.

struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  bool help = false;
};

// `value_options` take a value (--out X or --out=X); `flag_options` do not.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::set<std::string>& value_options,
                                     const std::set<std::string>& flag_options) {
  ParsedArgs parsed;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      parsed.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      parsed.help = true;
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    if (const size_t eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    if (value_options.count(name) > 0) {
      if (!value.has_value()) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
        }
        value = args[++i];
      }
      parsed.values[name] = *value;
    } else if (flag_options.count(name) > 0) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
      }
      parsed.flags.insert(name);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", name));
    }
  }
  return parsed;
}

int UsageError(std::ostream& err, const std::string& command, absl::string_view message) {
  err << "agt " << command << ": " << message << "\n"
      << "(see: agt " << command << " --help)\n";
  return kExitUsage;
}

// Exit code for a failed status: input problems are usage errors.
int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

int StatusError(std::ostream& err, const std::string& command, const absl::Status& s) {
  err << "agt " << command << ": " << s.message() << "\n";
  return ExitCodeFor(s);
}

absl::Status ParseBackend(const ParsedArgs& args, BackendChoice* backend) {
  auto it = args.values.find("--backend");
  if (it == args.values.end()) return absl::OkStatus();
  absl::StatusOr<BackendChoice> choice = ParseBackendChoice(it->second);
  if (!choice.ok())
    return absl::InvalidArgumentError(absl::StrCat("--backend: ", choice.status().message()));
  *backend = *choice;
  return absl::OkStatus();
}

absl::Status ParseThreads(const ParsedArgs& args, int* threads) {
  auto it = args.values.find("--threads");
  if (it == args.values.end()) return absl::OkStatus();
  if (!absl::SimpleAtoi(it->second, threads) || *threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: expected a non-negative integer, got \"", it->second, "\""));
  }
  return absl::OkStatus();
}

std::string FormatSeconds(double s) {
  if (s < 60) return absl::StrFormat("%.0fs", s);
  if (s < 3600)
    return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return absl::StrFormat("%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
}

// ---------------------------------------------------------------------------
// train

// Prints progress lines: the first step, then at most one a second, then the last.
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& err, const TrainConfig& config)
      : err_(err), config_(config), start_(std::chrono::steady_clock::now()), last_(start_) {}

  void operator()(const ProgressEvent& ev) {
    const auto now = std::chrono::steady_clock::now();
    const double since_last = std::chrono::duration<double>(now - last_).count();
    if (ev.iteration != 1 && ev.iteration != ev.total_iterations && since_last < 1.0) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double eta = ev.iteration > 0
                           ? elapsed / static_cast<double>(ev.iteration) *
                                 static_cast<double>(ev.total_iterations - ev.iteration)
                           : 0.0;
    std::string widths;
    for (size_t j = 0; j < ev.total_width.size() && j < config_.budgets.size(); ++j) {
      absl::StrAppendFormat(&widths, " %s:%.4g",
                            BudgetLabel(config_.budgets[j], config_.perturbation),
                            ev.total_width[j]);
    }
    err_ << absl::StrFormat(
        "step %d/%d  epoch %d/%d  loss %.5g  lr %.4g  width%s  elapsed %s  eta %s\n", ev.iteration,
        ev.total_iterations, ev.epoch + 1, config_.epochs, ev.nominal_loss, ev.learning_rate,
        widths, FormatSeconds(elapsed), FormatSeconds(eta));
    err_.flush();
  }

 private:
  std::ostream& err_;
  const TrainConfig& config_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

std::string DefaultResultsPath(const std::string& config_path) {
  std::filesystem::path p(config_path);
  return p.stem().string() + ".results.json";
}

// A JSON number (or JsonNumber's "inf"/"nan" string) for people.
std::string Num(const json& v) {
  if (v.is_number()) return absl::StrFormat("%.6g", v.get<double>());
  return v.is_string() ? v.get<std::string>() : v.dump();
}

void PrintCertificateLine(std::ostream& out, const std::string& label, const json& cert) {
  if (cert.contains("accuracy_worst")) {
    out << absl::StrFormat(
        "  %-24s certified acc %.4f  nominal acc %.4f  best acc %.4f  stable %.4f\n", label,
        cert["accuracy_worst"].get<double>(), cert["accuracy_nominal"].get<double>(),
        cert["accuracy_best"].get<double>(), cert["stable_fraction"].get<double>());
  } else {
    out << absl::StrFormat("  %-24s mse nominal %s  worst %s  best %s\n", label,
                           Num(cert["mse_nominal"]), Num(cert["mse_worst"]), Num(cert["mse_best"]));
  }
}

}  // namespace

int RunTrain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string cmd = "train";
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, {"--out", "--threads", "--backend"}, {"--quiet"});
  if (!parsed.ok()) return UsageError(err, cmd, parsed.status().message());
  if (parsed->help) {
    out << kTrainHelp;
    return kExitOk;
  }
  if (parsed->positional.size() != 1) {
    return UsageError(err, cmd,
                      parsed->positional.empty()
                          ? "missing CONFIG.json"
                          : "expected one config file, got several arguments");
  }
  int threads = 0;
  if (absl::Status s = ParseThreads(*parsed, &threads); !s.ok()) {
    return UsageError(err, cmd, s.message());
  }
  BackendChoice backend_choice = BackendChoice::kAuto;
  if (absl::Status s = ParseBackend(*parsed, &backend_choice); !s.ok()) {
    return UsageError(err, cmd, s.message());
  }
  const bool quiet = parsed->flags.count("--quiet") > 0;
  const std::string config_path = parsed->positional[0];
  const std::string out_path =
      parsed->values.count("--out") > 0 ? parsed->values["--out"] : DefaultResultsPath(config_path);

  absl::StatusOr<RunConfig> config = LoadRunConfig(config_path);
  if (!config.ok()) return StatusError(err, cmd, config.status());
  absl::StatusOr<PreparedRun> run = PrepareRun(*config, threads);
  if (!run.ok()) return StatusError(err, cmd, run.status());
  run->train.threads = threads;

  absl::StatusOr<std::unique_ptr<ComputeBackend>> backend = MakeBackend(backend_choice, threads);
  if (!backend.ok()) return StatusError(err, cmd, backend.status());
  const std::string backend_name = (*backend)->name();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(run->train, run->train_data, run->init, *std::move(backend));
  if (!trainer.ok()) {
    return StatusError(err, cmd,
                       absl::Status(trainer.status().code(),
                                    absl::StrCat(config_path, ": ", trainer.status().message())));
  }
  const TrainConfig& tc = run->train;
  if (!quiet) {
    std::vector<std::string> budgets;
    for (const Budget& b : tc.budgets) budgets.push_back(BudgetLabel(b, tc.perturbation));
    err << absl::StrFormat(
        "model %s, %d parameters, loss %s; %s perturbation, budgets {%s}\n"
        "%d training rows: %d batches of %d per epoch, %d epochs = %d steps; backend %s\n",
        tc.model.Describe(), tc.model.NumParameters(), LossKindName(tc.loss),
        PerturbationKindName(tc.perturbation.kind), absl::StrJoin(budgets, ", "),
        run->train_data.size(), (*trainer)->batches_per_epoch(), tc.batch_size, tc.epochs,
        (*trainer)->total_steps(), backend_name);
    if ((*trainer)->dropped_rows_per_epoch() > 0) {
      err << absl::StrFormat(
          "note: the last %d rows of every epoch are dropped (an incomplete "
          "batch; certificates assume fixed, full batches)\n",
          (*trainer)->dropped_rows_per_epoch());
    }
  }
  TrainCallbacks callbacks;
  ProgressPrinter printer(err, tc);
  if (!quiet) callbacks.progress = [&printer](const ProgressEvent& ev) { printer(ev); };
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TrainResult> result = (*trainer)->Run(callbacks);
  if (!result.ok()) {
    err << "agt train: training failed: " << result.status().message() << "\n";
    return kExitFailure;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ResultsInput in;
  in.config = config->json;
  in.config_path = config_path;
  in.train = tc;
  in.num_classes = run->train_data.num_classes;
  in.input_dim = run->raw_dim;
  in.polynomial_degree = config->polynomial_degree;
  in.result = &*result;
  in.test = run->test_data.has_value() ? &*run->test_data : nullptr;
  in.test_source = !config->dataset.test_csv.empty()
                       ? config->dataset.test_csv
                       : absl::StrCat("test_fraction ", config->dataset.test_fraction);
  in.train_rows = run->train_data.size();
  in.seconds = seconds;
  in.backend = backend_name;
  const json results = MakeResultsJson(in);
  if (absl::Status s = WriteJsonFile(results, out_path, 1, threads); !s.ok()) {
    err << "agt train: " << s.message() << "\n";
    return kExitFailure;
  }
  for (const json& b : results["budgets"]) {
    if (!b["finite"].get<bool>()) {
      err << "warning: the bounds at " << b["label"].get<std::string>()
          << " are not finite (the bounds diverged): no point is certified at this budget; "
             "try a smaller learning rate, budget or clip_gamma\n";
    }
  }
  if (!quiet) {
    err << absl::StrFormat("trained in %s\n", FormatSeconds(seconds));
    for (const json& b : results["budgets"]) {
      err << absl::StrFormat("  %-24s total width %s  max width %s\n",
                             b["label"].get<std::string>(), Num(b["total_width"]),
                             Num(b["max_width"]));
    }
    if (in.test != nullptr) {
      err << absl::StrFormat("test set (%d rows):\n", in.test->size());
      for (const json& b : results["budgets"]) {
        PrintCertificateLine(err, b["label"].get<std::string>(), b["test"]);
      }
    }
  }
  out << "wrote " << out_path << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------
// certify

namespace {

struct BudgetCertificate {
  LogitBounds logits;
  std::optional<ClassificationCertificate> classification;
  std::optional<RegressionCertificate> regression;
};

json RowJson(const Matrix& m, Index i) {
  json row = json::array();
  for (Index j = 0; j < m.cols(); ++j) row.push_back(JsonNumber(m(i, j)));
  return row;
}

}  // namespace

int RunCertify(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string cmd = "certify";
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, {"--epsilon", "--stability"}, {"--json", "--points"});
  if (!parsed.ok()) return UsageError(err, cmd, parsed.status().message());
  if (parsed->help) {
    out << kCertifyHelp;
    return kExitOk;
  }
  if (parsed->positional.size() != 2) {
    return UsageError(err, cmd, "expected RESULTS.json and DATA.csv");
  }
  double epsilon = 0.0;
  if (auto it = parsed->values.find("--epsilon"); it != parsed->values.end()) {
    if (!ParseFiniteDecimal(it->second, &epsilon) || epsilon < 0) {
      return UsageError(err, cmd,
                        absl::StrCat("--epsilon: must be a number >= 0, got \"", it->second, "\""));
    }
  }
  StabilityRule rule = StabilityRule::kMargin;
  if (auto it = parsed->values.find("--stability"); it != parsed->values.end()) {
    if (it->second == "softmax") {
      rule = StabilityRule::kSoftmax;
    } else if (it->second != "margin") {
      return UsageError(
          err, cmd,
          absl::StrCat("--stability: expected margin or softmax, got \"", it->second, "\""));
    }
  }
  const bool as_json = parsed->flags.count("--json") > 0;
  const bool points = parsed->flags.count("--points") > 0;
  const std::string& results_path = parsed->positional[0];
  const std::string& data_path = parsed->positional[1];

  absl::StatusOr<TrainedModel> model = ReadResults(results_path);
  if (!model.ok()) return StatusError(err, cmd, model.status());
  CsvOptions options;
  options.num_classes = model->num_classes;
  absl::StatusOr<Dataset> data = ReadCsv(data_path, options);
  if (!data.ok()) return StatusError(err, cmd, data.status());
  if (data->dim() != model->input_dim) {
    return StatusError(err, cmd,
                       absl::InvalidArgumentError(absl::StrCat(
                           data_path, ": has ", data->dim(),
                           " feature columns, the model was trained on ", model->input_dim)));
  }
  Matrix x = model->polynomial_degree > 1 ? PolynomialFeatures(data->x, model->polynomial_degree)
                                          : data->x;
  const bool classification = IsClassification(model->loss);
  const size_t nb = model->budgets.size();
  std::vector<BudgetCertificate> certs(nb);
  for (size_t j = 0; j < nb; ++j) {
    certs[j].logits =
        LogitBoundsWidened(model->spec, model->nominal, model->boxes[j], x, epsilon,
                           model->bounds.interval.product, rule == StabilityRule::kMargin);
    if (classification) {
      certs[j].classification = CertifyClassification(certs[j].logits, data->y, rule);
    } else {
      certs[j].regression = CertifyRegression(certs[j].logits, data->y);
    }
  }
  // Largest stable budget per row, over the budgets sorted by size.
  const std::vector<int> order = BudgetOrder(model->budgets, model->perturbation);
  std::vector<int> largest(data->size(), -1);
  if (classification) {
    std::vector<std::vector<bool>> stable_sorted;
    for (int j : order) stable_sorted.push_back(certs[j].classification->stable);
    largest = LargestStableBudget(stable_sorted);
    for (int& l : largest) l = l >= 0 ? order[l] : -1;
  }
  const std::vector<int> predicted =
      classification ? PredictClasses(certs[0].logits.nominal) : std::vector<int>();

  if (as_json) {
    json j;
    j["results"] = results_path;
    j["data"] = data_path;
    j["rows"] = data->size();
    j["epsilon"] = epsilon;
    j["loss"] = LossKindName(model->loss);
    j["perturbation"] = PerturbationToJson(model->perturbation);
    j["budgets"] = json::array();
    for (size_t b = 0; b < nb; ++b) {
      json e = BudgetToJson(model->budgets[b], model->perturbation);
      if (classification) {
        const ClassificationCertificate& c = *certs[b].classification;
        e["accuracy_nominal"] = c.accuracy_nominal;
        e["accuracy_worst"] = c.accuracy_worst;
        e["accuracy_best"] = c.accuracy_best;
        e["stable_fraction"] = c.stable_fraction;
      } else {
        const RegressionCertificate& r = *certs[b].regression;
        e["mse_nominal"] = JsonNumber(r.mse_nominal);
        e["mse_worst"] = JsonNumber(r.mse_worst);
        e["mse_best"] = JsonNumber(r.mse_best);
      }
      j["budgets"].push_back(std::move(e));
    }
    if (points) {
      j["points"] = json::array();
      for (Index i = 0; i < data->size(); ++i) {
        json p;
        p["row"] = i;
        p["label"] = data->y[i];
        p["logits_nominal"] = RowJson(certs[0].logits.nominal, i);
        json lower = json::array(), upper = json::array(), stable = json::array();
        for (size_t b = 0; b < nb; ++b) {
          lower.push_back(RowJson(certs[b].logits.bounds.lower, i));
          upper.push_back(RowJson(certs[b].logits.bounds.upper, i));
          if (classification)
            stable.push_back(static_cast<bool>(certs[b].classification->stable[i]));
        }
        p["logits_lower"] = std::move(lower);
        p["logits_upper"] = std::move(upper);
        if (classification) {
          p["prediction"] = predicted[i];
          p["stable"] = std::move(stable);
          p["largest_stable_budget"] =
              largest[i] >= 0 ? BudgetToJson(model->budgets[largest[i]], model->perturbation)
                              : json(nullptr);
        } else {
          p["prediction"] = certs[0].logits.nominal(i, 0);
        }
        j["points"].push_back(std::move(p));
      }
    }
    out << j.dump(1) << "\n";
    return kExitOk;
  }

  out << absl::StrFormat("%s: model %s, loss %s, %s perturbation; %d rows of %s%s\n", results_path,
                         model->spec.Describe(), LossKindName(model->loss),
                         PerturbationKindName(model->perturbation.kind), data->size(), data_path,
                         epsilon > 0 ? absl::StrFormat(", inputs within +-%g", epsilon) : "");
  if (classification) {
    out << absl::StrFormat("%-26s %13s %12s %9s %8s\n", "budget", "certified acc", "nominal acc",
                           "best acc", "stable");
    for (size_t b = 0; b < nb; ++b) {
      const ClassificationCertificate& c = *certs[b].classification;
      out << absl::StrFormat("%-26s %13.4f %12.4f %9.4f %8.4f\n",
                             BudgetLabel(model->budgets[b], model->perturbation), c.accuracy_worst,
                             c.accuracy_nominal, c.accuracy_best, c.stable_fraction);
    }
  } else {
    out << absl::StrFormat("%-26s %12s %12s %12s\n", "budget", "mse nominal", "mse worst",
                           "mse best");
    for (size_t b = 0; b < nb; ++b) {
      const RegressionCertificate& r = *certs[b].regression;
      out << absl::StrFormat("%-26s %12.6g %12.6g %12.6g\n",
                             BudgetLabel(model->budgets[b], model->perturbation), r.mse_nominal,
                             r.mse_worst, r.mse_best);
    }
  }
  if (points) {
    out << "\n"
        << absl::StrFormat("%6s %8s %10s %12s %-22s", "row", "label", "prediction", "output",
                           "largest stable budget");
    for (size_t b = 0; b < nb; ++b) {
      out << "  "
          << absl::StrFormat("%-25s", absl::StrCat("bounds ", BudgetLabel(model->budgets[b],
                                                                          model->perturbation)));
    }
    out << "\n";
    for (Index i = 0; i < data->size(); ++i) {
      // The output shown: the logit of the predicted class (the only one for
      // binary and regression models).
      const int col = classification && certs[0].logits.nominal.cols() > 1 ? predicted[i] : 0;
      std::string pred = classification ? absl::StrCat(predicted[i])
                                        : absl::StrFormat("%.5g", certs[0].logits.nominal(i, 0));
      std::string stable = "-";
      if (classification) {
        stable =
            largest[i] >= 0 ? BudgetLabel(model->budgets[largest[i]], model->perturbation) : "none";
      }
      out << absl::StrFormat("%6d %8g %10s %12.5g %-22s", i, data->y[i], pred,
                             certs[0].logits.nominal(i, col), stable);
      for (size_t b = 0; b < nb; ++b) {
        out << "  "
            << absl::StrFormat("[%11.5g, %11.5g]", certs[b].logits.bounds.lower(i, col),
                               certs[b].logits.bounds.upper(i, col));
      }
      out << "\n";
    }
  }
  out << "budgets count perturbed rows per batch; certificates hold under the paper's "
         "assumptions (fixed data order, initialisation and hyper-parameters).\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------
// golden

int RunGolden(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string cmd = "golden";
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, {"--out", "--run", "--threads", "--backend"},
                                                {"--trace", "--timings", "--quiet"});
  if (!parsed.ok()) return UsageError(err, cmd, parsed.status().message());
  if (parsed->help) {
    out << kGoldenHelp;
    return kExitOk;
  }
  if (parsed->positional.size() != 1) return UsageError(err, cmd, "expected one CASE_DIR");
  const std::string dir = parsed->positional[0];
  GoldenOptions options;
  if (absl::Status s = ParseThreads(*parsed, &options.threads); !s.ok()) {
    return UsageError(err, cmd, s.message());
  }
  if (absl::Status s = ParseBackend(*parsed, &options.backend); !s.ok()) {
    return UsageError(err, cmd, s.message());
  }
  if (auto it = parsed->values.find("--run"); it != parsed->values.end()) options.run = it->second;
  options.trace = parsed->flags.count("--trace") > 0;
  const bool timings = parsed->flags.count("--timings") > 0;
  if (timings) {
    options.timing = [&err](const std::string& phase, double seconds) {
      err << absl::StrFormat("timing: %-44s %7.3f s\n", phase, seconds);
    };
  }
  if (parsed->flags.count("--quiet") == 0) {
    options.log = [&err](const std::string& line) { err << line << "\n"; };
  }
  if (!std::filesystem::is_directory(dir)) {
    return StatusError(err, cmd, absl::NotFoundError(absl::StrCat(dir, ": not a directory")));
  }
  absl::StatusOr<json> result = RunGoldenCase(dir, options);
  if (!result.ok()) return StatusError(err, cmd, result.status());
  for (const json& w : (*result)["warnings"]) err << "warning: " << w.get<std::string>() << "\n";
  if (auto it = parsed->values.find("--out"); it != parsed->values.end()) {
    const auto write_start = std::chrono::steady_clock::now();
    if (absl::Status s = WriteJsonFile(*result, it->second, 1, options.threads); !s.ok()) {
      err << "agt golden: " << s.message() << "\n";
      return kExitFailure;
    }
    if (timings) {
      options.timing(
          absl::StrCat("write ", it->second),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count());
    }
    out << "wrote " << it->second << "\n";
  }
  const std::filesystem::path expected_path = std::filesystem::path(dir) / "expected.json";
  if (!std::filesystem::exists(expected_path)) {
    out << "no expected.json: nothing to compare\n";
    return kExitOk;
  }
  absl::StatusOr<json> expected = ReadJsonFile(expected_path.string());
  if (!expected.ok()) return StatusError(err, cmd, expected.status());
  if (!options.run.empty() && expected->contains("runs")) {
    json only = json::object();
    if ((*expected)["runs"].contains(options.run)) {
      only[options.run] = (*expected)["runs"][options.run];
    }
    (*expected)["runs"] = std::move(only);
  }
  std::optional<json> trace;
  const std::filesystem::path trace_path = std::filesystem::path(dir) / "trace.json";
  if (options.trace && std::filesystem::exists(trace_path)) {
    absl::StatusOr<json> t = ReadJsonFile(trace_path.string());
    if (!t.ok()) return StatusError(err, cmd, t.status());
    trace = *std::move(t);
  }
  const GoldenReport report = CompareGolden(*result, *expected, trace ? &*trace : nullptr);
  out << report.Format();
  return report.pass ? kExitOk : kExitFailure;
}

// ---------------------------------------------------------------------------
// generate

int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string cmd = "generate";
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(
      args, {"--out", "--n", "--seed", "--noise", "--dim", "--classes", "--stddev", "--center-box"},
      {});
  if (!parsed.ok()) return UsageError(err, cmd, parsed.status().message());
  if (parsed->help) {
    out << kGenerateHelp;
    return kExitOk;
  }
  if (parsed->positional.size() != 1) return UsageError(err, cmd, "expected moons or blobs");
  const std::string kind = parsed->positional[0];
  if (kind != "moons" && kind != "blobs") {
    return UsageError(err, cmd,
                      absl::StrCat("unknown dataset \"", kind, "\" (expected moons or blobs)"));
  }
  auto out_it = parsed->values.find("--out");
  if (out_it == parsed->values.end()) return UsageError(err, cmd, "--out FILE.csv is required");
  // Reads an option as a number within [lo, hi], or its default.
  std::string problem;
  auto number = [&](const std::string& name, double def, double lo, double hi) {
    auto it = parsed->values.find(name);
    if (it == parsed->values.end()) return def;
    double v = 0;
    if (!ParseFiniteDecimal(it->second, &v) || !(v >= lo && v <= hi)) {
      if (problem.empty()) {
        problem = absl::StrCat(name, ": must be a number in [", lo, ", ", hi, "], got \"",
                               it->second, "\"");
      }
      return def;
    }
    return v;
  };
  const int n = static_cast<int>(number("--n", 1000, 2, 1e8));
  const uint64_t seed = static_cast<uint64_t>(number("--seed", 0, 0, 1e15));
  Dataset data;
  if (kind == "moons") {
    const double noise = number("--noise", 0.1, 0, 1e6);
    if (problem.empty()) data = MakeMoons(n, noise, seed);
  } else {
    const int dim = static_cast<int>(number("--dim", 2, 1, 1e5));
    const int classes = static_cast<int>(number("--classes", 3, 2, 1e4));
    const double stddev = number("--stddev", 1.0, 0, 1e6);
    const double box = number("--center-box", 10.0, 0, 1e6);
    if (problem.empty()) data = MakeBlobs(n, dim, classes, stddev, box, seed);
  }
  if (!problem.empty()) return UsageError(err, cmd, problem);
  if (absl::Status s = WriteCsv(data, out_it->second); !s.ok()) {
    err << "agt generate: " << s.message() << "\n";
    return kExitFailure;
  }
  out << "wrote " << data.size() << " rows of " << kind << " (" << data.dim() << " features, "
      << data.num_classes << " classes) to " << out_it->second << "\n";
  return kExitOk;
}

// ---------------------------------------------------------------------------
// export-onnx

int RunExportOnnx(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string cmd = "export-onnx";
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, {}, {"--float32"});
  if (!parsed.ok()) return UsageError(err, cmd, parsed.status().message());
  if (parsed->help) {
    out << kExportOnnxHelp;
    return kExitOk;
  }
  if (parsed->positional.size() != 2)
    return UsageError(err, cmd, "expected RESULTS.json and OUT.onnx");
#ifdef AGT_WITH_ONNX
  const std::string& results_path = parsed->positional[0];
  const std::string& onnx_path = parsed->positional[1];
  absl::StatusOr<TrainedModel> model = ReadResults(results_path);
  if (!model.ok()) return StatusError(err, cmd, model.status());
  onnx::ExportOptions options;
  options.float32 = parsed->flags.count("--float32") > 0;
  options.producer_version = AGT_VERSION_STRING;
  absl::StatusOr<std::string> bytes = onnx::ExportOnnx(model->spec, model->nominal, options);
  if (!bytes.ok()) {
    return StatusError(
        err, cmd,
        absl::InvalidArgumentError(absl::StrCat(results_path, ": ", bytes.status().message())));
  }
  if (model->polynomial_degree > 1) {
    err << "agt export-onnx: note: the model's inputs are polynomial features of degree "
        << model->polynomial_degree << "; the ONNX model takes the expanded features\n";
  }
  const std::string tmp = onnx_path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    file.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!file) {
      err << "agt export-onnx: " << onnx_path << ": cannot write\n";
      std::remove(tmp.c_str());
      return kExitFailure;
    }
  }
  if (std::rename(tmp.c_str(), onnx_path.c_str()) != 0) {
    err << "agt export-onnx: " << onnx_path << ": cannot write\n";
    std::remove(tmp.c_str());
    return kExitFailure;
  }
  out << "wrote " << onnx_path << ": " << model->spec.Describe() << ", "
      << model->spec.frozen.layers.size() << " frozen layer(s), " << model->spec.NumParameters()
      << " trained parameters, " << (options.float32 ? "float32" : "float64") << ", "
      << bytes->size() << " bytes\n";
  return kExitOk;
#else
  (void)out;
  return StatusError(
      err, cmd,
      absl::UnimplementedError("this agt was built without ONNX support (-DAGT_WITH_ONNX=OFF)"));
#endif
}

// ---------------------------------------------------------------------------

int RunAgt(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kMainHelp;
    return kExitUsage;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "-h" || command == "--help") {
    out << kMainHelp;
    return kExitOk;
  }
  if (command == "help") {
    if (rest.empty()) {
      out << kMainHelp;
      return kExitOk;
    }
    return RunAgt({rest[0], "--help"}, out, err);
  }
  if (command == "--version") {
    out << kVersion << "\n";
    return kExitOk;
  }
  if (command == "train") return RunTrain(rest, out, err);
  if (command == "certify") return RunCertify(rest, out, err);
  if (command == "golden") return RunGolden(rest, out, err);
  if (command == "generate") return RunGenerate(rest, out, err);
  if (command == "export-onnx") return RunExportOnnx(rest, out, err);
  err << "agt: unknown command \"" << command
      << "\" (expected train, certify, golden, generate or export-onnx; see "
      << "agt --help)\n";
  return kExitUsage;
}

}  // namespace agt::cli
