#include "server/service/status_mapping.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "server/observability/log.h"

namespace agt::server {

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (status.code() == absl::StatusCode::kInternal || status.code() == absl::StatusCode::kUnknown) {
    Log(LogLevel::kError, "internal_error",
        {{"method", std::string(rpc)}, {"error", status.ToString()}});
    return grpc::Status(code, absl::StrCat(rpc, ": internal server error (see the server log)"));
  }
  return grpc::Status(code, std::string(status.message()));
}

}  // namespace agt::server
