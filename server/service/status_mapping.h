// absl::Status -> grpc::Status for the service layer.
//
// The canonical codes of Abseil and gRPC are the same numbers, so the mapping
// keeps the code and the message. Internal and Unknown keep their code but
// their message is logged to stderr and replaced by a generic one with the
// RPC's name, so server internals do not leak to clients; everything else
// (InvalidArgument, NotFound, ...) is meant for the caller and passes through
// unchanged.
//
// Every error also carries a serialized google.rpc.Status as its binary
// details (the `grpc-status-details-bin` trailer): the same code and
// message, and
//   - always an ErrorInfo: domain "agt.v1", the status's reason
//     (core/common/status_details.h; its code's default when none was set)
//     and its metadata, plus "method" (the RPC's full name);
//   - a BadRequest with one field violation when the status names a field
//     (WithField), or, for INVALID_ARGUMENT without one, when its message
//     starts with a field path and ": " ("spec.epochs: must be ..."), the
//     convention of every validation message here;
//   - a QuotaFailure with one violation for every RESOURCE_EXHAUSTED: the
//     status's quota subject ("server" when none was set) and its message.
// Descriptions are the message, cut at 1 KiB (the trailers stay well under
// gRPC's metadata size limit).
// Internal and Unknown carry only the ErrorInfo (reason INTERNAL).
//
// Thread-safety: pure functions (stderr writes are line-atomic).
#ifndef AGT_SERVER_SERVICE_STATUS_MAPPING_H_
#define AGT_SERVER_SERVICE_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/rpc/status.pb.h"

namespace agt::server {

// The ErrorInfo domain of every error agt-server returns.
inline constexpr char kErrorDomain[] = "agt.v1";

// `rpc` names the call in the generic message of internal errors and in
// the ErrorInfo's "method" metadata.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc);

// The google.rpc.Status that ToGrpcStatus serializes, for an error that is
// already client-safe (ToGrpcStatus replaces internal messages first).
google::rpc::Status RichStatus(const absl::Status& status, absl::string_view rpc);

// The field path a validation message starts with ("spec.batch_size" of
// "spec.batch_size: 0 must be >= 1"), or "" when it starts otherwise.
std::string LeadingFieldPath(absl::string_view message);

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_STATUS_MAPPING_H_
