// Training job specifications: validation of an agt.v1.TrainingJobSpec as it
// arrives over the API, and its translation into the core's TrainConfig.
//
// Contract: every field is checked before anything reaches the core. An
// invalid spec gives InvalidArgument whose message starts with the field path
// ("spec.budgets[2].n: ...") and names the value and the limit, e.g.
// "spec.optimizer.learning_rate: must be > 0, got -1". The rules of the
// training configuration itself (optimizer, clipping, perturbation, budgets
// against the batch size, the model against the data) are the core's
// (TrainConfig::ValidateTraining / Validate, core/train/config.h), the same
// that the `agt` tool applies; their messages name the core's field, which is
// the spec's field under "spec.". Checked here are only what the proto form
// and the server add: required fields and enum values, the label oneof, the
// server's limits (kMax* below), and the dataset the spec refers to. A spec
// accepted by ResolveJobSpec is accepted by Trainer::Create for the dataset
// it was resolved against.
//
// Proto3 defaults: polynomial_degree 0 means 1 (no expansion); bound_method,
// interval_product and rounding UNSPECIFIED mean IBP, Rump and round to
// nearest (the legacy bound_method values INTERVAL_EXACT / INTERVAL_NGUYEN
// mean IBP with that product, see BoundOptionsFromProto); clip_gamma 0 means
// no clipping. Unknown enum numbers (from newer clients) and UNSPECIFIED
// loss / perturbation kind are errors.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_DOMAIN_JOB_SPEC_H_
#define AGT_SERVER_DOMAIN_JOB_SPEC_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agt/v1/training.pb.h"
#include "core/cuda/backends.h"
#include "core/train/train.h"
#include "server/store/store.h"

namespace agt::server {

// Limits on what one job may ask for (the server's resources, not maths).
inline constexpr int kMaxPolynomialDegree = 6;
inline constexpr int kMaxDenseLayers = 16;         // dense layers in the model
inline constexpr int kMaxArchitectureLayers = 32;  // dense + ReLU entries
inline constexpr int kMaxLayerWidth = 4096;        // every dense in/out except the input width
inline constexpr int kMaxInputWidth = 1 << 20;     // model input width after expansion
// Values one layer may produce per sample (a conv2d's C x H x W output).
inline constexpr int64_t kMaxActivationValues = int64_t{1} << 20;
inline constexpr int64_t kMaxParameters = 5'000'000;
inline constexpr int kMaxEpochs = 10'000;
inline constexpr int kMaxBudgets = 64;
inline constexpr int64_t kMaxTotalSteps = 100'000'000;  // epochs x batches per epoch
inline constexpr int kMaxJobNameLength = 256;

// A spec resolved against its dataset: the core's config plus what the
// server stores next to the trained model.
struct ResolvedJob {
  agt::TrainConfig config;  // threads/fragment_size left at 0 (automatic)
  int polynomial_degree = 1;
  int input_features = 0;  // raw features per row, before polynomial expansion
  // Classes of the model's predictions: 0 = regression (MSE), 2 = binary
  // (binary cross-entropy, hinge), C = cross-entropy over C classes.
  int num_classes = 0;
  // True when the spec uses momentum (optimizer.momentum > 0), whose bounds
  // follow the reference's rule and are not established as sound.
  bool momentum_caveat = false;
  // The trained layers' initial parameters when the spec gives them
  // (architecture.initial_parameters, filled from a model artifact at
  // submit); nullopt: agt::InitParameters of the seed.
  std::optional<agt::Vector> initial_parameters;
};

// Checks everything that needs no dataset: name, dataset_id present, degree,
// architecture XOR hidden_widths and their widths/counts, loss, epochs (at
// most kMaxEpochs), bound options, the perturbation's kind and label oneof,
// at most kMaxBudgets budgets, then TrainConfig::ValidateTraining on the
// mapped spec (batch size, optimizer, clipping, perturbation, budgets).
absl::Status ValidateJobSpecShape(const agt::v1::TrainingJobSpec& spec);

// The compute backend a spec asks for (spec.backend; UNSPECIFIED: the
// server's default). The value was checked by ValidateJobSpecShape.
agt::BackendChoice BackendChoiceOf(agt::v1::ComputeBackend backend,
                                   agt::BackendChoice server_default);

// ValidateJobSpecShape, then the checks against the dataset (spec.dataset_id
// must equal dataset.id; input width after polynomial expansion; a model
// whose input_shape is [C, H, W] needs a dataset of that sample_shape (a flat
// model takes any dataset whose rows have its input width, images read in
// C-order), and a model with an image input or a frozen prefix needs
// polynomial_degree 1; loss vs the
// dataset's num_classes; batch_size <= dataset.num_rows; total steps;
// parameter count), then the mapping onto agt::TrainConfig and
// TrainConfig::Validate (the label target class against the dataset's
// classes, and removed_rows against its rows and every budget against every
// batch left, among its rules: "spec.removed_rows[i]: ...").
// Builds an MLP from hidden_widths as input -> hidden... -> outputs with ReLU
// between dense layers, outputs = num_classes for cross-entropy, else 1.
absl::StatusOr<ResolvedJob> ResolveJobSpec(const agt::v1::TrainingJobSpec& spec,
                                           const DatasetRecord& dataset);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_JOB_SPEC_H_
