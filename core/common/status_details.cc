#include "core/common/status_details.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace agt {
namespace {

// Payload type URLs. Private to this file: readers go through DetailsOf.
constexpr char kReasonUrl[] = "type.agt.v1/reason";
constexpr char kFieldUrl[] = "type.agt.v1/field";
constexpr char kQuotaUrl[] = "type.agt.v1/quota_subject";
constexpr char kMetadataUrlPrefix[] = "type.agt.v1/metadata/";

absl::Status WithPayload(absl::Status status, absl::string_view url, absl::string_view value) {
  if (status.ok()) return status;
  status.SetPayload(url, absl::Cord(value));
  return status;
}

std::string PayloadText(const absl::Status& status, absl::string_view url) {
  const auto payload = status.GetPayload(url);
  return payload.has_value() ? std::string(*payload) : std::string();
}

}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  return WithPayload(std::move(status), kReasonUrl, reason);
}

absl::Status WithField(absl::Status status, absl::string_view field) {
  return WithPayload(std::move(status), kFieldUrl, field);
}

absl::Status WithQuota(absl::Status status, absl::string_view subject) {
  return WithPayload(std::move(status), kQuotaUrl, subject);
}

absl::Status WithMetadata(absl::Status status, absl::string_view key, absl::string_view value) {
  return WithPayload(std::move(status), absl::StrCat(kMetadataUrlPrefix, key), value);
}

absl::Status WithMessage(const absl::Status& status, absl::string_view message) {
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

StatusDetails DetailsOf(const absl::Status& status) {
  StatusDetails details;
  details.reason = PayloadText(status, kReasonUrl);
  details.field = PayloadText(status, kFieldUrl);
  details.quota_subject = PayloadText(status, kQuotaUrl);
  status.ForEachPayload([&details](absl::string_view url, const absl::Cord& payload) {
    if (absl::StartsWith(url, kMetadataUrlPrefix)) {
      details.metadata.emplace_back(std::string(url.substr(sizeof(kMetadataUrlPrefix) - 1)),
                                    std::string(payload));
    }
  });
  std::sort(details.metadata.begin(), details.metadata.end());
  return details;
}

std::string DefaultReason(absl::StatusCode code, bool has_field) {
  if (code == absl::StatusCode::kInvalidArgument && has_field) return kReasonInvalidField;
  if (code == absl::StatusCode::kUnknown) return "INTERNAL";
  return absl::StatusCodeToString(code);
}

}  // namespace agt
