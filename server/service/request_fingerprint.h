// What an idempotent request's fingerprint is made of (store/store.h,
// RequestTag): the request message without its request_id, in protobuf's
// deterministic serialization, so that a retry of the same request gives
// the same bytes (and so the same hash) and any other content does not.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_SERVICE_REQUEST_FINGERPRINT_H_
#define AGT_SERVER_SERVICE_REQUEST_FINGERPRINT_H_

#include <string>

#include "google/protobuf/message.h"

namespace agt::server {

// `message` serialized deterministically (map entries ordered; the same
// message always gives the same bytes within one build).
std::string DeterministicBytes(const google::protobuf::Message& message);

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_REQUEST_FINGERPRINT_H_
