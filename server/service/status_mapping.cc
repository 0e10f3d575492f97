#include "server/service/status_mapping.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "google/rpc/error_details.pb.h"
#include "server/observability/log.h"

namespace agt::server {
namespace {

// Descriptions repeat the message; capped so that a long message does not
// push the trailers towards gRPC's metadata size limit (8 KiB by default).
constexpr size_t kMaxDescription = 1024;

std::string Description(absl::string_view message) {
  if (message.size() <= kMaxDescription) return std::string(message);
  return absl::StrCat(message.substr(0, kMaxDescription), "...");
}

bool IsFieldStart(char c) { return absl::ascii_islower(c) || c == '_'; }
bool IsFieldChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

}  // namespace

std::string LeadingFieldPath(absl::string_view message) {
  // name ( '[' digits ']' )* ( '.' name ( '[' digits ']' )* )*  then ": "
  size_t i = 0;
  while (true) {
    if (i >= message.size() || !IsFieldStart(message[i])) return "";
    while (i < message.size() && IsFieldChar(message[i])) ++i;
    while (i < message.size() && message[i] == '[') {
      const size_t digits = ++i;
      while (i < message.size() && absl::ascii_isdigit(message[i])) ++i;
      if (i == digits || i >= message.size() || message[i] != ']') return "";
      ++i;
    }
    if (i < message.size() && message[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  if (message.substr(i, 2) != ": ") return "";
  return std::string(message.substr(0, i));
}

google::rpc::Status RichStatus(const absl::Status& status, absl::string_view rpc) {
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(status.code()));
  rich.set_message(std::string(status.message()));
  const StatusDetails details = DetailsOf(status);
  std::string field = details.field;
  if (field.empty() && status.code() == absl::StatusCode::kInvalidArgument) {
    field = LeadingFieldPath(status.message());
  }

  google::rpc::ErrorInfo info;
  info.set_domain(kErrorDomain);
  info.set_reason(details.reason.empty() ? DefaultReason(status.code(), !field.empty())
                                         : details.reason);
  auto& metadata = *info.mutable_metadata();
  for (const auto& [key, value] : details.metadata) metadata[key] = value;
  metadata["method"] = std::string(rpc);
  rich.add_details()->PackFrom(info);

  if (!field.empty()) {
    google::rpc::BadRequest bad;
    google::rpc::BadRequest::FieldViolation* violation = bad.add_field_violations();
    violation->set_field(field);
    violation->set_description(Description(status.message()));
    rich.add_details()->PackFrom(bad);
  }
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    google::rpc::QuotaFailure quota;
    google::rpc::QuotaFailure::Violation* violation = quota.add_violations();
    violation->set_subject(details.quota_subject.empty() ? "server" : details.quota_subject);
    violation->set_description(Description(status.message()));
    rich.add_details()->PackFrom(quota);
  }
  return rich;
}

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (status.code() == absl::StatusCode::kInternal || status.code() == absl::StatusCode::kUnknown) {
    Log(LogLevel::kError, "internal_error",
        {{"method", std::string(rpc)}, {"error", status.ToString()}});
    // Only the reason: the internal status's field, quota and ids stay in the log.
    const absl::Status safe =
        WithReason(absl::Status(status.code(),
                                absl::StrCat(rpc, ": internal server error (see the server log)")),
                   "INTERNAL");
    return grpc::Status(code, std::string(safe.message()),
                        RichStatus(safe, rpc).SerializeAsString());
  }
  return grpc::Status(code, std::string(status.message()),
                      RichStatus(status, rpc).SerializeAsString());
}

}  // namespace agt::server
