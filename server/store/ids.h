// Record ids and listing page tokens.
//
// Ids are a prefix ("ds-", "job-", "mdl-") and 20 lowercase hex characters of
// 80 random bits from the operating system (getrandom(2)), so they cannot be
// guessed or enumerated from other ids. Page tokens are opaque to clients: a
// URL-safe base64 string naming the listing kind and the position after which
// the next page starts. A token that does not decode, or that belongs to
// another kind of listing, is InvalidArgument.
//
// Thread-safety: all functions may be called concurrently.
#ifndef AGT_SERVER_STORE_IDS_H_
#define AGT_SERVER_STORE_IDS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::server {

inline constexpr absl::string_view kDatasetIdPrefix = "ds-";
inline constexpr absl::string_view kJobIdPrefix = "job-";
inline constexpr absl::string_view kModelIdPrefix = "mdl-";
inline constexpr absl::string_view kArtifactIdPrefix = "art-";
inline constexpr int kIdRandomHexChars = 20;

// prefix + 20 random hex characters. Internal error only if the OS refuses
// to provide random bytes.
absl::StatusOr<std::string> NewRandomId(absl::string_view prefix);

// Fills `out` with `size` bytes from the OS random source.
absl::Status OsRandomBytes(void* out, size_t size);

// The listings a token can belong to.
enum class PageKind : char {
  kDatasets = 'd',
  kJobs = 'j',
  kModels = 'm',
  kDeletions = 'x',
  kArtifacts = 'a'
};

// A token for "continue after position `after`" in a listing of `kind`.
std::string EncodePageToken(PageKind kind, int64_t after);
// The position in a token from EncodePageToken(kind, ...); an empty token is
// position 0 (the start).
absl::StatusOr<int64_t> DecodePageToken(PageKind kind, absl::string_view token);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_IDS_H_
