// "Stop when the call is cancelled or past its deadline": what a long handler
// asks between chunks of work. The deadline is the caller's, or, for a call
// that set none (or a later one), the server's default (--default-deadline)
// counted from when the handler began. gRPC cancels a call when its client
// goes away, when the client's deadline passes and when the server shuts
// down past its grace period (grpc::Server::Shutdown(deadline)); the handler
// notices at its next Check.
//
// Thread-safety: Check may be called from any thread while the call lives;
// the context must outlive the budget.
#ifndef AGT_SERVER_SERVICE_CALL_BUDGET_H_
#define AGT_SERVER_SERVICE_CALL_BUDGET_H_

#include <grpcpp/server_context.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace agt::server {

class CallBudget {
 public:
  // default_deadline <= 0: no server default (only the caller's deadline).
  CallBudget(const grpc::ServerContextBase& context, std::chrono::milliseconds default_deadline)
      : context_(&context), default_ms_(default_deadline.count()) {
    const auto now = std::chrono::system_clock::now();
    deadline_ = context.deadline();
    if (default_ms_ > 0) deadline_ = std::min(deadline_, now + default_deadline);
    own_deadline_ = default_ms_ > 0 && deadline_ == now + default_deadline;
  }

  // OK while the call may go on; Cancelled once gRPC cancelled it (the
  // client went away or the server is shutting down); DeadlineExceeded past
  // the deadline, naming it.
  absl::Status Check() const {
    if (std::chrono::system_clock::now() >= deadline_) {
      return absl::DeadlineExceededError(
          own_deadline_ ? absl::StrCat("the call ran past the server's default deadline of ",
                                       default_ms_, " ms (--default-deadline); work stopped")
                        : "the call's deadline passed; work stopped");
    }
    if (context_->IsCancelled()) {
      return absl::CancelledError("the call was cancelled (client gone or server shutting down)");
    }
    return absl::OkStatus();
  }

  std::function<absl::Status()> AsKeepGoing() const {
    return [this] { return Check(); };
  }

 private:
  const grpc::ServerContextBase* context_;
  int64_t default_ms_;
  std::chrono::system_clock::time_point deadline_;
  bool own_deadline_ = false;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_CALL_BUDGET_H_
