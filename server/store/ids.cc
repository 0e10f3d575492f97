#include "server/store/ids.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace agt::server {
namespace {

constexpr char kPageTokenVersion = 1;
constexpr size_t kPageTokenBytes = 10;     // version, kind, 8-byte position
constexpr size_t kMaxPageTokenChars = 64;  // far above any token we issue

absl::string_view KindName(PageKind kind) {
  switch (kind) {
    case PageKind::kDatasets:
      return "datasets";
    case PageKind::kJobs:
      return "jobs";
    case PageKind::kModels:
      return "models";
    case PageKind::kDeletions:
      return "deletions";
    case PageKind::kArtifacts:
      return "model artifacts";
  }
  return "unknown";
}

}  // namespace

absl::Status OsRandomBytes(void* out, size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = getrandom(p + done, size - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom failed: ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewRandomId(absl::string_view prefix) {
  unsigned char bytes[kIdRandomHexChars / 2];
  if (absl::Status s = OsRandomBytes(bytes, sizeof(bytes)); !s.ok()) return s;
  return absl::StrCat(prefix, absl::BytesToHexString(absl::string_view(
                                  reinterpret_cast<char*>(bytes), sizeof(bytes))));
}

std::string EncodePageToken(PageKind kind, int64_t after) {
  std::string raw;
  raw.push_back(kPageTokenVersion);
  raw.push_back(static_cast<char>(kind));
  const uint64_t u = static_cast<uint64_t>(after);
  for (int i = 7; i >= 0; --i) raw.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<int64_t> DecodePageToken(PageKind kind, absl::string_view token) {
  if (token.empty()) return 0;
  auto invalid = [&]() {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", absl::CHexEscape(token.substr(0, kMaxPageTokenChars)),
                     "\" is not a page token of this ", KindName(kind),
                     " listing; pass the next_page_token of the previous page or an empty one"));
  };
  if (token.size() > kMaxPageTokenChars) return invalid();
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.size() != kPageTokenBytes ||
      raw[0] != kPageTokenVersion || raw[1] != static_cast<char>(kind)) {
    return invalid();
  }
  uint64_t u = 0;
  for (size_t i = 2; i < kPageTokenBytes; ++i) {
    u = (u << 8) | static_cast<unsigned char>(raw[i]);
  }
  if (u > static_cast<uint64_t>(INT64_MAX)) return invalid();
  return static_cast<int64_t>(u);
}

}  // namespace agt::server
