// TLS: the real server with --tls-cert/--tls-key (a self-signed certificate
// made here with OpenSSL) serves TLS clients that trust the certificate and
// refuses plaintext clients; bearer tokens work over TLS.
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "tests/server/e2e_util.h"

namespace agt::e2e {
namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

// A self-signed certificate for DNS:localhost and IP:127.0.0.1, valid for a
// day, and its private key, both PEM.
bool MakeSelfSigned(std::string* cert_pem, std::string* key_pem) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) return false;
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  bool ok =
      san != nullptr && X509_add_ext(cert, san, -1) == 1 && X509_sign(cert, key, EVP_sha256()) > 0;
  X509_EXTENSION_free(san);
  BIO* cert_bio = BIO_new(BIO_s_mem());
  BIO* key_bio = BIO_new(BIO_s_mem());
  ok = ok && PEM_write_bio_X509(cert_bio, cert) == 1 &&
       PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (ok) {
    *cert_pem = BioText(cert_bio);
    *key_pem = BioText(key_bio);
  }
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

TEST(TlsE2eTest, ServesTlsClientsWithTokensAndRefusesPlaintext) {
  TempDir dir;
  std::string cert, key;
  ASSERT_TRUE(MakeSelfSigned(&cert, &key));
  WriteFile(dir.File("cert.pem"), cert);
  WriteFile(dir.File("key.pem"), key);
  WriteFile(dir.File("tokens"), TokenLine("tls-token", "trainer", "acme"));
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      ServerArgs(dir.File("tls.db"), {"--tls-cert", dir.File("cert.pem"), "--tls-key",
                                      dir.File("key.pem"), "--tokens", dir.File("tokens")}),
      dir.File("server.log")))
      << server.Stderr();

  grpc::SslCredentialsOptions options;
  options.pem_root_certs = cert;
  auto channel = grpc::CreateChannel(server.address(), grpc::SslCredentials(options));
  auto datasets = agt::v1::DatasetService::NewStub(channel);
  agt::v1::ListDatasetsResponse list;
  const grpc::Status over_tls = datasets->ListDatasets(Ctx("tls-token").get(), {}, &list);
  EXPECT_TRUE(over_tls.ok()) << over_tls.error_message();
  EXPECT_EQ(datasets->ListDatasets(Ctx("wrong").get(), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  auto plain = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto plain_datasets = agt::v1::DatasetService::NewStub(plain);
  const grpc::Status plaintext =
      plain_datasets->ListDatasets(Ctx("tls-token", std::chrono::seconds(3)).get(), {}, &list);
  EXPECT_FALSE(plaintext.ok());
  EXPECT_EQ(server.Signal(SIGTERM), 0);
}

TEST(TlsE2eTest, UnreadableOrMismatchedTlsFilesAreStartupErrors) {
  TempDir dir;
  std::string cert, key, other_cert, other_key;
  ASSERT_TRUE(MakeSelfSigned(&cert, &key));
  ASSERT_TRUE(MakeSelfSigned(&other_cert, &other_key));
  WriteFile(dir.File("cert.pem"), cert);
  WriteFile(dir.File("other_key.pem"), other_key);
  std::string out, err;
  EXPECT_EQ(RunServerCommand({"--listen", "127.0.0.1:0", "--db", dir.File("a.db"), "--tls-cert",
                              dir.File("cert.pem"), "--tls-key", dir.File("missing.pem")},
                             "", &out, &err, dir),
            2);
  EXPECT_NE(err.find("--tls-key"), std::string::npos) << err;
  // A key that does not belong to the certificate.
  EXPECT_EQ(RunServerCommand({"--listen", "127.0.0.1:0", "--db", dir.File("a.db"), "--tls-cert",
                              dir.File("cert.pem"), "--tls-key", dir.File("other_key.pem")},
                             "", &out, &err, dir),
            2);
  EXPECT_NE(err.find("does not match the certificate"), std::string::npos) << err;
  EXPECT_EQ(out.find("listening on"), std::string::npos);
  // Not PEM at all.
  WriteFile(dir.File("garbage.pem"), "garbage\n");
  EXPECT_EQ(RunServerCommand({"--listen", "127.0.0.1:0", "--db", dir.File("a.db"), "--tls-cert",
                              dir.File("garbage.pem"), "--tls-key", dir.File("other_key.pem")},
                             "", &out, &err, dir),
            2);
  EXPECT_NE(err.find("--tls-cert: '"), std::string::npos) << err;
  EXPECT_NE(err.find("holds no PEM certificate"), std::string::npos) << err;
  EXPECT_EQ(RunServerCommand({"--listen", "127.0.0.1:0", "--db", dir.File("a.db"), "--tls-cert",
                              dir.File("cert.pem"), "--tls-key", dir.File("garbage.pem")},
                             "", &out, &err, dir),
            2);
  EXPECT_NE(err.find("holds no unencrypted PEM private key"), std::string::npos) << err;
}

}  // namespace
}  // namespace agt::e2e
