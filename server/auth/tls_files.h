// TLS certificate files for --tls-cert / --tls-key, read and checked before
// they reach gRPC (which otherwise only reports a failed bind).
//
// The certificate file holds a PEM chain, the server's certificate first;
// the key file a PEM private key (unencrypted) that must belong to that
// first certificate. Errors name the flag, the path and the problem:
// NotFound for an unreadable file, InvalidArgument for content.
//
// Thread-safety: pure function.
#ifndef AGT_SERVER_AUTH_TLS_FILES_H_
#define AGT_SERVER_AUTH_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace agt::server {

struct TlsFiles {
  std::string cert_chain_pem;
  std::string private_key_pem;
};

absl::StatusOr<TlsFiles> LoadTlsFiles(const std::string& cert_path, const std::string& key_path);

}  // namespace agt::server

#endif  // AGT_SERVER_AUTH_TLS_FILES_H_
