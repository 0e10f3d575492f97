// Bearer tokens, roles and tenants: who a caller is.
//
// Tokens file (agt-server --tokens FILE). One token per line:
//
//   <sha256-hex-of-token> <role> <tenant> [label ...]
//
// - sha256-hex: the SHA-256 of the token's bytes as 64 hex digits (case
//   ignored). The plaintext token is never stored; `agt-server hash-token`
//   prints a line for a token read from stdin.
// - role: admin | trainer | querier | private-querier (see permissions.h for
//   what each may do).
// - tenant: 1..64 characters of [A-Za-z0-9_.-]; a token sees only its
//   tenant's datasets, jobs and models.
// - label: optional free text for people (the rest of the line), e.g. who
//   holds the token.
// Fields are separated by spaces or tabs. Blank lines and lines whose first
// non-blank character is '#' are ignored. A hash may appear only once. Every
// parse error names the source and the 1-based line.
//
// Presented tokens arrive as the gRPC metadata `authorization: Bearer
// <token>`; they are hashed and compared with every entry in constant time
// (the comparison does not stop at the first differing byte or the first
// matching entry), so timing reveals neither a prefix nor a position.
//
// Without a tokens file the server runs in local single-user mode: every call
// is the principal {tenant "local", role admin} (and main.cc refuses to
// listen on anything but loopback, listen_address.h).
//
// Thread-safety: a TokenTable is immutable after construction; all const
// methods may be called concurrently.
#ifndef AGT_SERVER_AUTH_TOKENS_H_
#define AGT_SERVER_AUTH_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agt::server {

enum class Role { kAdmin, kTrainer, kQuerier, kPrivateQuerier };

// "admin", "trainer", "querier", "private-querier".
std::string RoleName(Role role);
// Exact, lower-case names; InvalidArgument naming the value otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Tenant names: 1..64 characters of [A-Za-z0-9_.-].
bool IsValidTenant(absl::string_view tenant);

// The tenant of local single-user mode.
inline constexpr char kLocalTenant[] = "local";

// An authenticated caller.
struct Principal {
  std::string tenant;
  Role role = Role::kQuerier;
  std::string label;  // from the tokens file; empty in local mode
};

// The name ledgers record a caller under (deletion requests, privacy
// budgets): the token's label, or its tenant when the label is empty.
std::string ClientName(const Principal& principal);

using TokenHash = std::array<uint8_t, 32>;

// SHA-256 of the token's bytes.
TokenHash HashToken(absl::string_view token);
// 64 lower-case hex digits.
std::string HashToHex(const TokenHash& hash);
// Equal iff a == b; the time taken does not depend on where they differ.
bool ConstantTimeEqual(const TokenHash& a, const TokenHash& b);

class TokenTable {
 public:
  struct Entry {
    TokenHash hash{};
    Role role = Role::kQuerier;
    std::string tenant;
    std::string label;
  };

  // Local single-user mode: no tokens, every call is {kLocalTenant, admin}.
  static TokenTable Local();
  // Parses the format above; `source` names the text in errors
  // ("tokens.txt:3: ..."). A file without any token is an error (it would
  // lock everybody out; omit --tokens for local mode instead).
  static absl::StatusOr<TokenTable> Parse(absl::string_view text, absl::string_view source);
  // Reads and parses a file; NotFound when it cannot be read.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  bool local_mode() const { return local_mode_; }
  size_t size() const { return entries_.size(); }

  // Authenticates the value of the `authorization` metadata (nullptr when the
  // caller sent none). Local mode accepts anything, including no metadata.
  // Otherwise: Unauthenticated when it is missing, not "Bearer <token>"
  // (scheme case-insensitive), or matches no entry.
  absl::StatusOr<Principal> Authenticate(const std::string* authorization) const;

 private:
  TokenTable() = default;

  bool local_mode_ = false;
  std::vector<Entry> entries_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_AUTH_TOKENS_H_
