// The machine-readable part of a failed call: the google.rpc details the
// server sends with every error (grpc-status-details-bin, see
// server/service/status_mapping.h), decoded.
//
// FromGrpcStatus (client.h) keeps the serialized google.rpc.Status on the
// absl::Status it returns, as a payload under kRpcStatusUrl, so the details
// travel with the status through code that only knows absl; ErrorDetailsOf
// reads them back. Errors made by gRPC itself (server unreachable, a
// deadline that expired in transport, a message over the size limit) and by
// servers that send no details have none.
//
// Thread-safety: pure functions on values.
#ifndef AGT_CLIENT_LIB_ERROR_DETAILS_H_
#define AGT_CLIENT_LIB_ERROR_DETAILS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace agt::client {

inline constexpr char kRpcStatusUrl[] = "type.googleapis.com/google.rpc.Status";

struct FieldViolation {
  std::string field;  // "spec.batch_size"
  std::string description;
};

struct QuotaViolation {
  std::string subject;  // "tenant:alice/dataset:ds-x", "server"
  std::string description;
};

// The ErrorInfo, BadRequest and QuotaFailure of one error; a detail the
// server did not send is empty.
struct ErrorDetails {
  std::string reason;  // "INVALID_FIELD", "PRIVACY_BUDGET_EXHAUSTED", ...
  std::string domain;  // "agt.v1"
  std::map<std::string, std::string> metadata;
  std::vector<FieldViolation> field_violations;
  std::vector<QuotaViolation> quota_violations;
};

// `status` with `serialized` (a google.rpc.Status) attached; unchanged when
// `serialized` is empty or `status` is OK.
absl::Status WithRpcStatus(absl::Status status, absl::string_view serialized);

// The details attached by WithRpcStatus; nullopt when there are none or they
// do not parse.
std::optional<ErrorDetails> ErrorDetailsOf(const absl::Status& status);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_ERROR_DETAILS_H_
