#include "client/lib/error_details.h"

#include <utility>

#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace agt::client {

absl::Status WithRpcStatus(absl::Status status, absl::string_view serialized) {
  if (status.ok() || serialized.empty()) return status;
  status.SetPayload(kRpcStatusUrl, absl::Cord(serialized));
  return status;
}

std::optional<ErrorDetails> ErrorDetailsOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kRpcStatusUrl);
  if (!payload.has_value()) return std::nullopt;
  google::rpc::Status rich;
  if (!rich.ParseFromString(std::string(*payload))) return std::nullopt;
  ErrorDetails details;
  for (const google::protobuf::Any& any : rich.details()) {
    // Unknown detail types (other servers, newer ones) are skipped.
    if (google::rpc::ErrorInfo info; any.UnpackTo(&info)) {
      details.reason = info.reason();
      details.domain = info.domain();
      details.metadata.insert(info.metadata().begin(), info.metadata().end());
    } else if (google::rpc::BadRequest bad; any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        details.field_violations.push_back({v.field(), v.description()});
      }
    } else if (google::rpc::QuotaFailure quota; any.UnpackTo(&quota)) {
      for (const auto& v : quota.violations()) {
        details.quota_violations.push_back({v.subject(), v.description()});
      }
    }
  }
  return details;
}

}  // namespace agt::client
