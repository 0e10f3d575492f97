#include "server/service/request_checks.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"

namespace agt::server {

absl::Status CheckId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": required")), field);
  if (id.size() > kMaxIdLength) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(
                         field, ": ", id.size(), " characters exceed the limit of ", kMaxIdLength)),
                     field);
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c <= 0x20 || c >= 0x7f) {
      return WithField(absl::InvalidArgumentError(absl::StrCat(
                           field, ": character ", i + 1,
                           " is not printable ASCII (ids look like 'ds-3f2a9c')")),
                       field);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ResolvePageSize(int requested, absl::string_view field) {
  if (requested < 0) {
    return WithField(
        absl::InvalidArgumentError(absl::StrCat(field, ": ", requested, " must be >= 0 (0 = default ",
                                                kApiDefaultPageSize, ", at most ", kMaxPageSize,
                                                ")")),
        field);
  }
  if (requested == 0) return kApiDefaultPageSize;
  return requested > kMaxPageSize ? kMaxPageSize : requested;
}

absl::Status CheckPageToken(absl::string_view token, absl::string_view field) {
  if (token.size() > kMaxPageTokenLength) {
    return WithField(absl::InvalidArgumentError(absl::StrCat(
                         field, ": ", token.size(), " bytes exceed the limit of ",
                         kMaxPageTokenLength)),
                     field);
  }
  return absl::OkStatus();
}

}  // namespace agt::server
