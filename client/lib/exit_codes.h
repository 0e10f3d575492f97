// agtctl's exit codes, the contract scripts rely on (also in `agtctl --help`).
//
//   0  success
//   1  server or runtime error (unreachable server, deadline, internal error,
//      failed precondition such as deleting a dataset a job still uses,
//      RESOURCE_EXHAUSTED such as a private prediction past the privacy budget)
//   2  usage error: bad flags or arguments, an unreadable or invalid input
//      file, or a request the server rejected as INVALID_ARGUMENT or
//      OUT_OF_RANGE
//   3  not found: an unknown (or another tenant's) dataset, job or model id
//   4  not allowed: missing or wrong token (UNAUTHENTICATED) or a role
//      without the right (PERMISSION_DENIED)
//   5  the job ended FAILED or CANCELLED (train --wait, jobs watch)
//
// Thread-safety: pure functions.
#ifndef AGT_CLIENT_LIB_EXIT_CODES_H_
#define AGT_CLIENT_LIB_EXIT_CODES_H_

#include "absl/status/status.h"

namespace agt::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitNotAllowed = 4;
inline constexpr int kExitJobNotSucceeded = 5;

// The exit code for a failed call or a local error (kExitOk for OK).
int ExitCodeFor(const absl::Status& status);

}  // namespace agt::client

#endif  // AGT_CLIENT_LIB_EXIT_CODES_H_
