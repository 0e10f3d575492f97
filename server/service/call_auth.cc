#include "server/service/call_auth.h"

#include <string>

#include "server/auth/permissions.h"

namespace agt::server {

absl::StatusOr<Principal> CallAuth::Check(const grpc::ServerContextBase& context,
                                          absl::string_view method) const {
  const auto& metadata = context.client_metadata();
  const auto range = metadata.equal_range("authorization");
  std::string value;
  bool present = false;
  for (auto it = range.first; it != range.second; ++it) {
    if (present) {
      return absl::UnauthenticatedError("authorization metadata sent more than once");
    }
    value.assign(it->second.data(), it->second.size());
    present = true;
  }
  absl::StatusOr<Principal> principal = tokens_->Authenticate(present ? &value : nullptr);
  if (!principal.ok()) return principal.status();
  absl::Status allowed = Authorize(*principal, method);
  if (!allowed.ok()) return allowed;
  return principal;
}

}  // namespace agt::server
