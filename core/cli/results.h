// The results file of `agt train` (read back by `agt certify`) and the
// certificate summaries that train, certify and golden all report.
//
// A results file is one JSON object (format "agt-results", version 1): the
// config as given, the resolved model, loss, classes, feature expansion,
// perturbation model and budgets, the nominal parameters, and per budget the
// parameter box [lower, upper] (parameters in the goldens' init.json layout),
// its total and max width and, when a test set existed, test certificates.
// See core/cli/CONFIG.md for the field list.
//
// Soundness: the boxes are what training produced; the certificates here are
// sound exactly when those boxes are (see certify/certify.h).
#ifndef AGT_CORE_CLI_RESULTS_H_
#define AGT_CORE_CLI_RESULTS_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/bounds/bound_method.h"
#include "core/certify/certify.h"
#include "core/data/dataset.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"

namespace agt::cli {

inline constexpr char kResultsFormat[] = "agt-results";
inline constexpr int kResultsVersion = 1;

// What `agt certify` needs from a results file.
struct TrainedModel {
  ModelSpec spec;
  LossKind loss = LossKind::kBinaryCrossEntropy;
  int num_classes = 2;        // 0 = regression
  int input_dim = 0;          // CSV feature columns before expansion
  int polynomial_degree = 1;  // applied to CSV features before the model
  BoundOptions bounds;
  PerturbationModel perturbation;
  std::vector<Budget> budgets;
  Vector nominal;
  std::vector<ParameterBox> boxes;  // one per budget
};

// ComputeLogitBounds with NaN bounds (from infinite parameter bounds of a
// diverged training: inf - inf) widened to [-inf, +inf], so that such rows
// are never reported stable.
// With margins (multi-class), also the margin bounds StabilityRule::kMargin needs.
LogitBounds LogitBoundsWidened(const ModelSpec& spec, const Vector& nominal,
                               const ParameterBox& box, const Eigen::Ref<const Matrix>& x,
                               double test_epsilon, MatMulMethod matmul, bool margins = false,
                               int threads = 1);

// Certificates of one parameter box on one labelled set. `rows` adds the
// per-row arrays (stable flags, nominal / lower / upper logits).
// Classification: accuracy_nominal, accuracy_worst, accuracy_best,
// stable_fraction [, stable, logits_nominal, logits_lower, logits_upper].
// Regression: mse_nominal, mse_worst, mse_best [, logits_*].
// test_epsilon > 0 also lets every input move within that l-infinity radius
// (backdoor certificates; the radius is in the model's input space).
// `rule` decides multi-class stability (kSoftmax: the reference's rule, for
// golden comparisons; kMargin: tighter and sound); a multi-class result says
// which rule made it in "stability_rule". threads: ComputeLogitBounds's
// (the same result for every count).
nlohmann::json CertificateJson(const ModelSpec& spec, LossKind loss, const Vector& nominal,
                               const ParameterBox& box, const Dataset& data, MatMulMethod matmul,
                               double test_epsilon, bool rows,
                               StabilityRule rule = StabilityRule::kSoftmax, int threads = 1);

// "softmax" / "margin".
std::string StabilityRuleName(StabilityRule rule);

// Matrix to nested JSON arrays (row-major), values written with JsonNumber.
nlohmann::json MatrixToJson(const Matrix& m);

// Describes a budget for people: "n=5", "features=2 labels=1".
std::string BudgetLabel(const Budget& budget, const PerturbationModel& perturbation);
nlohmann::json BudgetToJson(const Budget& budget, const PerturbationModel& perturbation);
nlohmann::json PerturbationToJson(const PerturbationModel& perturbation);

// Everything `agt train` writes besides the config.
struct ResultsInput {
  nlohmann::json config;  // as given
  std::string config_path;
  TrainConfig train;
  int num_classes = 0;
  int input_dim = 0;
  int polynomial_degree = 1;
  const TrainResult* result = nullptr;
  const Dataset* test = nullptr;  // optional
  std::string test_source;
  int64_t train_rows = 0;
  double seconds = 0.0;
  std::string backend;  // the compute backend that ran ("cpu", "cuda", ...)
};

nlohmann::json MakeResultsJson(const ResultsInput& input);

// Parses a results file's JSON (shapes checked). Messages name the field.
absl::StatusOr<TrainedModel> TrainedModelFromJson(const nlohmann::json& results);
// Reads and parses a results file; messages start with the file name.
absl::StatusOr<TrainedModel> ReadResults(const std::string& path);

// Indices of `budgets` ordered from the smallest to the largest effective
// budget (ties broken by n, then label_n), for LargestStableBudget.
std::vector<int> BudgetOrder(const std::vector<Budget>& budgets,
                             const PerturbationModel& perturbation);

}  // namespace agt::cli

#endif  // AGT_CORE_CLI_RESULTS_H_
