// absl::Status <-> grpc::Status for the service layer.
//
// The canonical codes of Abseil and gRPC are the same numbers, so the mapping
// keeps the code and the message. Two cases are adjusted on the way out:
// Internal and Unknown keep their code but their message is logged to stderr
// and replaced by a generic one with the RPC's name, so server internals do
// not leak to clients; everything else (InvalidArgument, NotFound, ...) is
// meant for the caller and passes through unchanged.
//
// Thread-safety: pure functions (stderr writes are line-atomic).
#ifndef AGT_SERVER_SERVICE_STATUS_MAPPING_H_
#define AGT_SERVER_SERVICE_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace agt::server {

// `rpc` names the call in the generic message of internal errors.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc);

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_STATUS_MAPPING_H_
