// Authentication and authorization of one gRPC call: reads the
// `authorization` metadata, authenticates it against the token table
// (auth/tokens.h) and checks the per-RPC permission table
// (auth/permissions.h). Every service method calls Check first.
//
// Ownership: holds a pointer to the TokenTable, which must outlive it.
// Thread-safety: Check may be called concurrently.
#ifndef AGT_SERVER_SERVICE_CALL_AUTH_H_
#define AGT_SERVER_SERVICE_CALL_AUTH_H_

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/tokens.h"

namespace agt::server {

class CallAuth {
 public:
  explicit CallAuth(const TokenTable* tokens) : tokens_(tokens) {}

  // The caller of `method` ("/agt.v1.Service/Method"): Unauthenticated for
  // missing, repeated or unknown credentials; PermissionDenied when the role
  // may not call the method.
  absl::StatusOr<Principal> Check(const grpc::ServerContextBase& context,
                                  absl::string_view method) const;

 private:
  const TokenTable* const tokens_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_CALL_AUTH_H_
