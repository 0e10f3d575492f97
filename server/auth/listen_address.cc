#include "server/auth/listen_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace agt::server {

std::string ListenAddress::ToString() const { return WithPort(port); }

std::string ListenAddress::WithPort(int other_port) const {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", other_port);
  return absl::StrCat(host, ":", other_port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen '", text, "': ", why, " (expected HOST:PORT or [IPv6]:PORT)"));
  };
  ListenAddress address;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("missing ']'");
    address.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing ':PORT'");
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("missing ':PORT'");
    address.host = std::string(text.substr(0, colon));
    if (absl::StrContains(address.host, ':')) return bad("IPv6 hosts need brackets");
    port_text = text.substr(colon + 1);
  }
  if (address.host.empty()) return bad("empty host");
  int port = -1;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535 ||
      !absl::ascii_isdigit(static_cast<unsigned char>(port_text[0]))) {
    return bad(absl::StrCat("port '", port_text, "' must be an integer in 0..65535"));
  }
  address.port = port;
  return address;
}

bool IsLoopbackHost(absl::string_view host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status CheckListenAllowed(const ListenAddress& address, bool local_mode) {
  if (!local_mode || IsLoopbackHost(address.host)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to listen on ", address.ToString(),
      " without --tokens: local single-user mode (every caller is admin) is loopback only; "
      "pass --tokens FILE or listen on 127.0.0.1"));
}

}  // namespace agt::server
