// The --listen address and the local-mode rule that goes with it.
//
// Accepted forms: "HOST:PORT" with HOST a name or IPv4 address, and
// "[IPv6]:PORT"; PORT 0..65535 (0 = any free port). Loopback hosts are
// "localhost", 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.0.0.0/104. Without
// a tokens file every caller would be the local admin, so the server then
// listens on loopback only (CheckListenAllowed).
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_AUTH_LISTEN_ADDRESS_H_
#define AGT_SERVER_AUTH_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::server {

struct ListenAddress {
  std::string host;  // without brackets for IPv6
  int port = 0;

  // "host:port", or "[host]:port" when the host contains ':'.
  std::string ToString() const;
  // The same with another port (e.g. the one the server actually bound).
  std::string WithPort(int port) const;
};

// InvalidArgument naming the value and the problem.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

bool IsLoopbackHost(absl::string_view host);

// OK unless local_mode and the host is not loopback (FailedPrecondition that
// says to pass --tokens or listen on 127.0.0.1).
absl::Status CheckListenAllowed(const ListenAddress& address, bool local_mode);

}  // namespace agt::server

#endif  // AGT_SERVER_AUTH_LISTEN_ADDRESS_H_
