// Conversions between the core / store types and the public API messages
// (package agt.v1). The service layer uses these so that no internal type
// leaks into a response and no proto type reaches the core.
//
// Conventions: enum conversions *ToProto are total; *FromProto return
// InvalidArgument naming `field` for UNSPECIFIED (unless a default is stated)
// or unknown numbers. Parameters follow the flat layout of core/model/model.h
// (per dense or conv2d layer: weight out x in row-major, then bias). Timestamps are Unix
// epoch milliseconds; 0 means "not set" and leaves the Timestamp field unset.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_DOMAIN_MODEL_CONVERT_H_
#define AGT_SERVER_DOMAIN_MODEL_CONVERT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agt/v1/common.pb.h"
#include "agt/v1/datasets.pb.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/training.pb.h"
#include "core/bounds/bound_method.h"
#include "core/certify/certify.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/store/store.h"

namespace agt::server {

// ---- architectures and parameters
// The largest dimension of an input shape or a dataset's sample shape.
inline constexpr int kMaxShapeDimension = 65535;
// The most values one input sample may have (prod of its shape).
inline constexpr int64_t kMaxShapeValues = int64_t{1} << 20;
// Conv2d channels, kernel sizes, strides and paddings are at most this.
inline constexpr int kMaxConvHyperParameter = 4096;

// Every layer kind of the core (dense, conv2d, relu, flatten), the input
// shape (when the spec has one) and the frozen prefix
// with its parameters. What CheckServedModelSpec (store/blob.h) refuses is
// returned as its error, never mis-encoded.
absl::StatusOr<agt::v1::ModelArchitecture> ArchitectureToProto(const agt::ModelSpec& spec);
// Maps layer by layer (a layer with no kind set is an error naming
// `field`.layers[i], likewise `field`.frozen.layers[i]), checks conv2d
// hyper-parameters (at most kMaxConvHyperParameter), the input shape (rank 1
// or 3, dimensions in [1, kMaxShapeDimension], kMaxShapeValues values) and that the
// frozen parameters are finite, and runs ModelSpec::Validate (chaining by
// shape, the frozen parameter count). Conv2d strides 0 read as 1.
absl::StatusOr<agt::ModelSpec> ArchitectureFromProto(const agt::v1::ModelArchitecture& arch,
                                                     absl::string_view field = "architecture");

// Requires flat.size() == spec.NumParameters() (aborts otherwise: a
// programmer error, stored models always match).
agt::v1::Parameters ParametersToProto(const agt::ModelSpec& spec, const agt::Vector& flat);
// Checks one entry per dense layer, weight rows/cols/values and bias sizes,
// and finiteness; errors name `field`.layers[i].
absl::StatusOr<agt::Vector> ParametersFromProto(const agt::ModelSpec& spec,
                                                const agt::v1::Parameters& params,
                                                absl::string_view field = "parameters");

// ---- enums
agt::v1::Loss LossToProto(agt::LossKind loss);
absl::StatusOr<agt::LossKind> LossFromProto(agt::v1::Loss loss, absl::string_view field);

agt::v1::PerturbationKind PerturbationKindToProto(agt::PerturbationKind kind);
absl::StatusOr<agt::PerturbationKind> PerturbationKindFromProto(agt::v1::PerturbationKind kind,
                                                                absl::string_view field);

// Bound options. UNSPECIFIED maps to the documented defaults (IBP, Rump,
// round to nearest); *ToProto always give explicit values.
agt::v1::BoundMethod BoundMethodToProto(agt::BoundMethod method);
agt::v1::IntervalProduct IntervalProductToProto(agt::MatMulMethod product);
absl::StatusOr<agt::MatMulMethod> IntervalProductFromProto(agt::v1::IntervalProduct product,
                                                           absl::string_view field);
agt::v1::RoundingMode RoundingModeToProto(agt::RoundingMode mode);
absl::StatusOr<agt::RoundingMode> RoundingModeFromProto(agt::v1::RoundingMode mode,
                                                        absl::string_view field);
// A spec's bound_method, interval_product and rounding as the core's
// BoundOptions. The legacy bound_method values INTERVAL_EXACT / INTERVAL_NGUYEN
// (from before interval_product) mean IBP with that product; with a different
// explicit interval_product they are InvalidArgument naming both fields.
// Fields are named `root`.bound_method etc.
absl::StatusOr<agt::BoundOptions> BoundOptionsFromProto(const agt::v1::TrainingJobSpec& spec,
                                                        absl::string_view root = "spec");
// Rewrites a legacy bound_method value into the current form (BOUND_METHOD_IBP
// plus interval_product), leaving every other spec unchanged. Precondition:
// BoundOptionsFromProto(*spec) is ok.
void UpgradeLegacyBoundMethod(agt::v1::TrainingJobSpec* spec);

// UNSPECIFIED maps to kMargin (the documented default).
agt::v1::StabilityRule StabilityRuleToProto(agt::StabilityRule rule);
absl::StatusOr<agt::StabilityRule> StabilityRuleFromProto(agt::v1::StabilityRule rule,
                                                          absl::string_view field);

agt::v1::JobState JobStateToProto(JobState state);
// UNSPECIFIED is an error here; callers for which it means "all" check first.
absl::StatusOr<JobState> JobStateFromProto(agt::v1::JobState state, absl::string_view field);

// ---- records
google::protobuf::Timestamp MillisToTimestamp(int64_t unix_ms);
agt::v1::Budget BudgetToProto(const agt::Budget& budget);
agt::v1::JobProgress ProgressToProto(const JobProgressRecord& progress);
agt::v1::Dataset DatasetToProto(const DatasetRecord& record);
agt::v1::JobWarning JobWarningToProto(const JobWarningRecord& warning);
// The history's points (ids, budgets, total_iterations and max_points are
// the caller's).
void WidthHistoryToProto(const WidthHistoryRecord& history,
                         agt::v1::GetTrainingHistoryResponse* out);

// The job with its spec parsed from record.spec (DataLoss if the stored spec
// does not parse).
absl::StatusOr<agt::v1::Job> JobToProto(const JobRecord& record);
// A watch event: state, progress, error, model id, warnings.
agt::v1::JobEvent JobEventFromRecord(const JobRecord& record);

// The model summary: architecture, degree, features, classes, nominal
// parameters, one BudgetSummary per box (in budget order), and loss,
// perturbation and momentum_caveat from the stored spec (DataLoss if it does
// not parse).
absl::StatusOr<agt::v1::Model> ModelToProto(const ModelRecord& record);
// ModelToProto plus every box as lower/upper Parameters.
absl::StatusOr<agt::v1::ExportModelResponse> ExportModelToProto(const ModelRecord& record);

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_MODEL_CONVERT_H_
