// Checks on request fields shared by the services: ids, page sizes and page
// tokens. Every error is InvalidArgument naming the field, the value (or its
// length) and the limit.
//
// Thread-safety: pure functions.
#ifndef AGT_SERVER_SERVICE_REQUEST_CHECKS_H_
#define AGT_SERVER_SERVICE_REQUEST_CHECKS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace agt::server {

// The API's documented default page size ("default 100, at most 1000";
// the most is the store's kMaxPageSize). The service always passes the
// store an explicit size, so the API's default is the one that applies.
inline constexpr int kApiDefaultPageSize = 100;
inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxPageTokenLength = 1024;

// Required, 1..kMaxIdLength printable ASCII characters without spaces. Ids
// that pass may still be unknown (the store answers NotFound).
absl::Status CheckId(absl::string_view id, absl::string_view field);

// page_size 0 -> kApiDefaultPageSize; above kMaxPageSize -> kMaxPageSize;
// negative -> InvalidArgument.
absl::StatusOr<int> ResolvePageSize(int requested, absl::string_view field);

// At most kMaxPageTokenLength bytes; its content is checked by the store.
absl::Status CheckPageToken(absl::string_view token, absl::string_view field);

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_REQUEST_CHECKS_H_
