#include "server/auth/tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace agt::server {
namespace {

constexpr size_t kMaxTenantLength = 64;

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<TokenHash> ParseHashHex(absl::string_view hex) {
  TokenHash hash{};
  if (hex.size() != 2 * hash.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token hash must be 64 hex digits (SHA-256), got ", hex.size(), " characters"));
  }
  for (size_t i = 0; i < hash.size(); ++i) {
    const int hi = HexDigitValue(hex[2 * i]);
    const int lo = HexDigitValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("token hash has a non-hex character at column ", 2 * i + (hi < 0 ? 1 : 2)));
    }
    hash[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return hash;
}

// Splits on runs of spaces and tabs.
std::vector<absl::string_view> Fields(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

}  // namespace

std::string ClientName(const Principal& principal) {
  return principal.label.empty() ? principal.tenant : principal.label;
}

std::string RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kTrainer:
      return "trainer";
    case Role::kQuerier:
      return "querier";
    case Role::kPrivateQuerier:
      return "private-querier";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kAdmin, Role::kTrainer, Role::kQuerier, Role::kPrivateQuerier}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown role '", name, "' (expected admin, trainer, querier or private-querier)"));
}

bool IsValidTenant(absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > kMaxTenantLength) return false;
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

TokenHash HashToken(absl::string_view token) {
  TokenHash hash{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), hash.data());
  return hash;
}

std::string HashToHex(const TokenHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * hash.size());
  for (uint8_t byte : hash) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

bool ConstantTimeEqual(const TokenHash& a, const TokenHash& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

TokenTable TokenTable::Local() {
  TokenTable table;
  table.local_mode_ = true;
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text, absl::string_view source) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripTrailingAsciiWhitespace(line);
    const absl::string_view content = absl::StripLeadingAsciiWhitespace(line);
    if (content.empty() || content[0] == '#') continue;
    const auto where = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_number, ": ", message));
    };
    const std::vector<absl::string_view> fields = Fields(content);
    if (fields.size() < 3) {
      return where(absl::StrCat("expected '<sha256-hex> <role> <tenant> [label]', got ",
                                fields.size(), " field(s)"));
    }
    Entry entry;
    absl::StatusOr<TokenHash> hash = ParseHashHex(fields[0]);
    if (!hash.ok()) return where(hash.status().message());
    entry.hash = *hash;
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return where(role.status().message());
    entry.role = *role;
    if (!IsValidTenant(fields[2])) {
      return where(
          absl::StrCat("tenant '", fields[2], "' must be 1..64 characters of [A-Za-z0-9_.-]"));
    }
    entry.tenant = std::string(fields[2]);
    if (fields.size() > 3) {
      // The label is the rest of the line, spacing kept.
      const size_t start = static_cast<size_t>(fields[3].data() - content.data());
      entry.label = std::string(content.substr(start));
    }
    for (const Entry& other : table.entries_) {
      if (ConstantTimeEqual(other.hash, entry.hash)) {
        return where("duplicate token hash (each token may appear once)");
      }
    }
    table.entries_.push_back(std::move(entry));
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no tokens (omit --tokens for local single-user mode)"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read tokens file '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<Principal> TokenTable::Authenticate(const std::string* authorization) const {
  if (local_mode_) return Principal{kLocalTenant, Role::kAdmin, ""};
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        "missing credentials: send the metadata 'authorization: Bearer <token>'");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  const absl::string_view token = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  const TokenHash presented = HashToken(token);
  // Visit every entry whatever matches, so timing does not reveal which did.
  const Entry* match = nullptr;
  for (const Entry& entry : entries_) {
    const bool equal = ConstantTimeEqual(entry.hash, presented);
    if (equal && match == nullptr) match = &entry;
  }
  if (match == nullptr) return absl::UnauthenticatedError("unknown bearer token");
  return Principal{match->tenant, match->role, match->label};
}

}  // namespace agt::server
