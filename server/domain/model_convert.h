// Conversions between the core / store types and the public API messages
// (package agt.v1). The service layer uses these so that no internal type
// leaks into a response and no proto type reaches the core.
//
// Conventions: enum conversions *ToProto are total; *FromProto return
// InvalidArgument naming `field` for UNSPECIFIED (unless a default is stated)
// or unknown numbers. Parameters follow the flat layout of core/model/model.h
// (per dense layer: weight out x in row-major, then bias). Timestamps are Unix
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
#include "core/certify/certify.h"
#include "core/interval/interval.h"
#include "core/loss/loss.h"
#include "core/model/model.h"
#include "core/train/train.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/store/store.h"

namespace agt::server {

// ---- architectures and parameters
agt::v1::ModelArchitecture ArchitectureToProto(const agt::ModelSpec& spec);
// Maps layer by layer (a layer with no kind set is an error naming
// `field`.layers[i]) and runs ModelSpec::Validate.
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

// UNSPECIFIED maps to kRump (the documented default).
agt::v1::BoundMethod BoundMethodToProto(agt::MatMulMethod method);
absl::StatusOr<agt::MatMulMethod> BoundMethodFromProto(agt::v1::BoundMethod method,
                                                       absl::string_view field);

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

// The job with its spec parsed from record.spec (DataLoss if the stored spec
// does not parse).
absl::StatusOr<agt::v1::Job> JobToProto(const JobRecord& record);
// A watch event: state, progress, error, model id.
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
