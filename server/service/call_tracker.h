// Counts the gRPC calls in progress, so that shutdown can wait for them to
// finish (up to a grace period) and then stop the server at once.
//
// Why: grpc::Server::Shutdown(deadline) also waits for connected clients to
// drop their connections, which idle clients never do; with a deadline it
// would therefore always take the whole grace period. The server instead
// waits here for its own calls to end and then shuts gRPC down with an
// expired deadline.
//
// CallTracker::Factory is installed as a server interceptor: one counting
// interceptor per call, created when the call starts and destroyed when it
// ends, for every service (health and reflection included).
//
// Thread-safety: all methods may be called concurrently.
#ifndef AGT_SERVER_SERVICE_CALL_TRACKER_H_
#define AGT_SERVER_SERVICE_CALL_TRACKER_H_

#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

namespace agt::server {

class CallTracker {
 public:
  CallTracker() = default;
  CallTracker(const CallTracker&) = delete;
  CallTracker& operator=(const CallTracker&) = delete;

  void Enter();
  void Leave();
  int64_t active() const;
  // Waits until no call is active or `deadline` passes; true iff idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);

  // An interceptor factory bound to this tracker (which must outlive the
  // server it is installed in).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Factory();

 private:
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int64_t active_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_CALL_TRACKER_H_
