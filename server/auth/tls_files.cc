#include "server/auth/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace agt::server {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace

absl::StatusOr<TlsFiles> LoadTlsFiles(const std::string& cert_path, const std::string& key_path) {
  TlsFiles files;
  absl::StatusOr<std::string> cert = ReadFile(cert_path, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(key_path, "--tls-key");
  if (!key.ok()) return key.status();

  std::unique_ptr<X509, X509Free> leaf(
      PEM_read_bio_X509(MemoryBio(*cert).get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: '", cert_path, "' holds no PEM certificate"));
  }
  // An empty passphrase callback: encrypted keys fail instead of prompting.
  std::unique_ptr<EVP_PKEY, KeyFree> private_key(PEM_read_bio_PrivateKey(
      MemoryBio(*key).get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (private_key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: '", key_path, "' holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(leaf.get(), private_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: '", key_path, "' does not match the certificate in '", cert_path, "'"));
  }
  files.cert_chain_pem = *std::move(cert);
  files.private_key_pem = *std::move(key);
  return files;
}

}  // namespace agt::server
