// Runs golden cases of the reference implementation (format: tests/data/
// goldens/README.md) with the core, and compares the results with the
// reference's expected.json and trace.json.
//
// A case directory holds case.json, train.csv, test.csv, init.json and
// optionally expected.json and trace.json. Every run of case.json trains from
// init.json with its own perturbation model; a run's keys override the case's
// keys of the same name; missing optional keys take the README's defaults.
// Mapping onto the core (TrainConfig): mode unlearning -> removal, n =
// k_unlearn; privacy -> substitution, n = k_private (needs clip_gamma);
// poisoning -> bounded poisoning with Budget{k_poison, label_k_poison},
// epsilon, labels {enabled = label_k_poison > 0, target_class =
// poison_target_idx (if >= 0), nu = label_epsilon}, paired = paired_poison.
//
// Nothing here knows the shipped cases by name: any directory of the format
// works. Unknown keys in case.json are reported as warnings (they cannot
// change what this runner computes); unsupported values (an optimizer other
// than SGD/SGDM, a clip_method other than clamp, a bound_model other than
// interval) are errors, never silently ignored.
#ifndef AGT_CORE_CLI_GOLDEN_H_
#define AGT_CORE_CLI_GOLDEN_H_

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/cuda/backends.h"
#include "core/train/train.h"

namespace agt::cli {

struct GoldenOptions {
  // Run only this run (empty: every run). NotFound if the case has no such run.
  std::string run;
  // Record the parameters after every step under runs[NAME]["trace"] in the
  // layout of trace.json.
  bool trace = false;
  // Worker threads (0 = hardware concurrency) for training, parsing
  // train.csv, the certificates' row chunks and formatting the result's
  // arrays; unless 1, a second thread also reads test.csv beside train.csv
  // and computes the backdoor certificate beside the plain one. Results do
  // not depend on it.
  int threads = 0;
  // The compute backend (core/cuda/backends.h); results agree across
  // backends bit for bit.
  BackendChoice backend = BackendChoice::kAuto;
  // Receives one line per finished run (progress for people); may be empty.
  std::function<void(const std::string&)> log;
  // Receives the wall seconds of each phase as it ends ("read case.json",
  // "load CSVs", per run "NAME: setup", "NAME: training", "NAME:
  // certificates"); may be empty.
  std::function<void(const std::string& phase, double seconds)> timing;
};

// One run of a case, resolved: its name and the core configuration.
struct GoldenRun {
  std::string name;
  TrainConfig config;
  int num_classes = 0;  // 0 = regression
};

// Resolves run `index` of a parsed case.json. Errors name the run and key.
// Warnings (unknown keys, n_train mismatches) are appended to `warnings`.
// A case with a frozen prefix (`frozen`) takes its fixed parameters from
// init.json's "frozen" list: pass the parsed init.json; without it the model
// of such a case is returned unvalidated, with no frozen parameters.
absl::StatusOr<GoldenRun> ResolveGoldenRun(const nlohmann::json& case_json, size_t index,
                                           std::vector<std::string>* warnings,
                                           const nlohmann::json* init_json = nullptr);

// Runs the case in `dir`. The result has the layout of expected.json:
// {"case": NAME, "warnings": [...], "runs": {NAME: {nominal, lower, upper,
// total_width, width_per_tensor, max_width, steps, seconds, test{...},
// [test_backdoor{...}], [trace]}}} with test holding the per-row arrays
// (stable, logits_nominal, logits_lower, logits_upper) as well.
absl::StatusOr<nlohmann::json> RunGoldenCase(const std::string& dir, const GoldenOptions& options);

// Tolerances of the README: parameters, bounds, widths, logits and MSEs agree
// when |a - b| <= rtol * max(|a|, |b|) + atol; accuracies within `accuracy`;
// stable flags exactly except on ambiguous rows, those with a decision
// quantity (binary: a logit or logit bound; multi-class: a difference of
// logit bounds or of softmax bounds) within `ambiguous` of 0. Accuracies and
// stable fractions may differ by (ambiguous rows) / N more.
struct GoldenTolerances {
  double rtol = 1e-9;
  double atol = 1e-12;
  double accuracy = 1e-7;
  double ambiguous = 1e-9;
};

struct RunComparison {
  std::string name;
  bool pass = true;
  std::vector<std::string> failures;  // one line each, for people
  double max_rel_parameters = 0.0;    // nominal, lower, upper
  double max_rel_widths = 0.0;        // total_width, width_per_tensor, max_width
  double max_rel_logits = 0.0;
  double max_rel_mse = 0.0;
  double max_accuracy_diff = 0.0;
  int stable_mismatches = 0;  // on rows that are not ambiguous
  int ambiguous_rows = 0;
  // Trace: the first step (1-based) whose parameters differ beyond the
  // tolerance, 0 if every traced step agrees, -1 if no trace was compared.
  int first_trace_divergence = -1;
  int trace_steps = 0;
};

struct GoldenReport {
  bool pass = true;
  std::vector<RunComparison> runs;
  // A readable table, one line per run, and the failures below it.
  std::string Format() const;
};

// Compares a RunGoldenCase result with expected.json (and trace.json when
// `trace` is non-null and the result has traces). Every run of `expected`
// must be in the result; keys absent from `expected` (older cases) are not
// compared.
GoldenReport CompareGolden(const nlohmann::json& result, const nlohmann::json& expected,
                           const nlohmann::json* trace = nullptr,
                           const GoldenTolerances& tolerances = {});

}  // namespace agt::cli

#endif  // AGT_CORE_CLI_GOLDEN_H_
