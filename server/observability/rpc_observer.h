// One gRPC server interceptor that observes every call (sync, callback and
// streaming; our services, health and reflection): it gives the call a
// request id, logs one line when the call ends (log.h), counts it in the
// metrics (metrics.h) and, for the methods that release or decide something
// about training data, writes the audit record (audit_log.h).
//
// Request id: the client's `x-request-id` metadata when it is 1..128
// characters of [A-Za-z0-9._:-], else 16 hex digits the server draws; it is
// returned to the client in the initial and in the trailing metadata under
// the same key, and it is in the call's log line and audit record.
//
// Who: the interceptor authenticates the call's `authorization` metadata
// against the token table itself (a SHA-256 and a table look-up) so that the
// services keep their own checks (call_auth.h) and know nothing of logging;
// a call whose credentials do not authenticate is logged without a tenant.
//
// Replays: a service that answers a retried request_id from its stored
// answer adds the trailing metadata key kReplayedMetadataKey ("1"); the
// interceptor records it (a replayed privacy release charges nothing, a
// replayed deletion accepts nothing new) and removes the key before the
// trailers reach the client.
//
// Ownership: the token table, metrics and audit log (the last two may be
// null) must outlive the server the factory is installed in.
// Thread-safety: gRPC creates one interceptor per call; the factory and the
// objects it points to are shared by all calls and thread-safe.
#ifndef AGT_SERVER_OBSERVABILITY_RPC_OBSERVER_H_
#define AGT_SERVER_OBSERVABILITY_RPC_OBSERVER_H_

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/auth/tokens.h"
#include "server/observability/audit_log.h"
#include "server/observability/metrics.h"

namespace agt::server {

inline constexpr char kRequestIdMetadataKey[] = "x-request-id";
inline constexpr char kReplayedMetadataKey[] = "agt-internal-replayed";

// The budgets of a tenant's model in its order (empty when unknown), so a
// certificate's audit record can say "stable at n = 4" rather than an index.
using ModelBudgetLookup =
    std::function<std::vector<MetricsBudget>(const std::string& tenant, const std::string& model)>;

struct RpcObserverOptions {
  const TokenTable* tokens = nullptr;  // required
  Metrics* metrics = nullptr;          // null: no metrics
  AuditLog* audit = nullptr;           // null: no audit records
  ModelBudgetLookup model_budgets;     // optional
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcObserver(
    RpcObserverOptions options);

// Whether `id` may be used as a request id as given (see above).
bool IsValidRequestId(const std::string& id);

// "OK", "CANCELLED", ... "UNAUTHENTICATED".
const char* StatusCodeName(int code);

}  // namespace agt::server

#endif  // AGT_SERVER_OBSERVABILITY_RPC_OBSERVER_H_
