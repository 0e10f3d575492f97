// Tokens file parsing, token hashing and comparison, the per-RPC role table,
// and the loopback rule of local mode.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/artifacts.pb.h"
#include "agt/v1/datasets.pb.h"
#include "agt/v1/models.pb.h"
#include "agt/v1/privacy.pb.h"
#include "agt/v1/training.pb.h"
#include "agt/v1/unlearning.pb.h"
#include "google/protobuf/descriptor.h"
#include "server/auth/listen_address.h"
#include "server/auth/permissions.h"
#include "server/auth/tokens.h"

namespace agt::server {
namespace {

std::string HexOf(const std::string& token) { return HashToHex(HashToken(token)); }

std::string Bearer(const std::string& token) { return "Bearer " + token; }

TEST(TokenHashTest, MatchesTheSha256TestVector) {
  // FIPS 180-2, appendix B.1.
  EXPECT_EQ(HexOf("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenHashTest, ConstantTimeEqualComparesEveryByte) {
  const TokenHash a = HashToken("one");
  TokenHash b = a;
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  b[31] ^= 1;
  EXPECT_FALSE(ConstantTimeEqual(a, b));
  b = a;
  b[0] ^= 0x80;
  EXPECT_FALSE(ConstantTimeEqual(a, b));
}

TEST(TokenTableTest, ParsesCommentsBlankLinesLabelsAndUpperCaseHex) {
  std::string upper = HexOf("t2");
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  const std::string text = absl::StrCat("# tokens\n\n", HexOf("t1"), " admin acme  Ops team \n",
                                        "   # indented comment\n", upper, "\tquerier\tbeta\r\n");
  absl::StatusOr<TokenTable> table = TokenTable::Parse(text, "tokens.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_FALSE(table->local_mode());
  EXPECT_EQ(table->size(), 2u);

  const std::string b1 = Bearer("t1");
  absl::StatusOr<Principal> p1 = table->Authenticate(&b1);
  ASSERT_TRUE(p1.ok()) << p1.status();
  EXPECT_EQ(p1->tenant, "acme");
  EXPECT_EQ(p1->role, Role::kAdmin);
  EXPECT_EQ(p1->label, "Ops team");

  const std::string b2 = "bearer   t2";
  absl::StatusOr<Principal> p2 = table->Authenticate(&b2);
  ASSERT_TRUE(p2.ok()) << p2.status();
  EXPECT_EQ(p2->tenant, "beta");
  EXPECT_EQ(p2->role, Role::kQuerier);
  EXPECT_EQ(p2->label, "");
}

struct BadLine {
  std::string line;
  std::string expected;  // a fragment of the message
};

TEST(TokenTableTest, ParseErrorsNameSourceLineAndProblem) {
  const std::string good = absl::StrCat(HexOf("ok"), " trainer acme\n");
  const std::vector<BadLine> cases = {
      {absl::StrCat(HexOf("x"), " trainer\n"), "got 2 field(s)"},
      {"abc trainer acme\n", "64 hex digits"},
      {absl::StrCat("g", HexOf("x").substr(1), " trainer acme\n"), "column 1"},
      {absl::StrCat(HexOf("x"), " root acme\n"), "unknown role 'root'"},
      {absl::StrCat(HexOf("x"), " querier ac/me\n"), "tenant 'ac/me'"},
      {absl::StrCat(HexOf("x"), " querier ", std::string(65, 't'), "\n"), "1..64"},
      {absl::StrCat(HexOf("ok"), " querier other\n"), "duplicate token hash"},
  };
  for (const BadLine& c : cases) {
    // The bad line is line 3: a comment, a good line, then it.
    const std::string text = absl::StrCat("# header\n", good, c.line);
    absl::StatusOr<TokenTable> table = TokenTable::Parse(text, "tok.txt");
    ASSERT_FALSE(table.ok()) << c.line;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(table.status().message().find("tok.txt:3: "), std::string::npos) << table.status();
    EXPECT_NE(table.status().message().find(c.expected), std::string::npos) << table.status();
  }
}

TEST(TokenTableTest, AFileWithoutTokensIsAnError) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse("# nothing\n\n", "empty.txt");
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("no tokens"), std::string::npos);
}

TEST(TokenTableTest, LoadReadsAFileAndReportsAMissingOne) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / absl::StrCat("agt_tokens_", getpid(), ".txt");
  {
    std::ofstream out(path);
    out << HexOf("secret") << " trainer acme\n";
  }
  absl::StatusOr<TokenTable> table = TokenTable::Load(path.string());
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 1u);
  std::filesystem::remove(path);
  absl::StatusOr<TokenTable> missing = TokenTable::Load(path.string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenTableTest, AuthenticateRejectsMissingMalformedAndUnknownTokens) {
  absl::StatusOr<TokenTable> table =
      TokenTable::Parse(absl::StrCat(HexOf("secret"), " trainer acme\n"), "t");
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->Authenticate(nullptr).status().code(), absl::StatusCode::kUnauthenticated);
  for (const std::string& value :
       {std::string("secret"), std::string("Basic secret"), std::string("Bearer "),
        std::string("Bearer secre"), std::string("Bearer secret2"), std::string("")}) {
    absl::StatusOr<Principal> p = table->Authenticate(&value);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << "'" << value << "'";
  }
  const std::string ok = Bearer("secret");
  EXPECT_TRUE(table->Authenticate(&ok).ok());
}

TEST(TokenTableTest, LocalModeMakesEveryCallerTheLocalAdmin) {
  const TokenTable table = TokenTable::Local();
  EXPECT_TRUE(table.local_mode());
  const std::string junk = "whatever";
  for (const std::string* value : {static_cast<const std::string*>(nullptr), &junk}) {
    absl::StatusOr<Principal> p = table.Authenticate(value);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->tenant, kLocalTenant);
    EXPECT_EQ(p->role, Role::kAdmin);
  }
}

TEST(RoleTest, NamesRoundTripAndUnknownNamesFail) {
  for (Role role : {Role::kAdmin, Role::kTrainer, Role::kQuerier, Role::kPrivateQuerier}) {
    absl::StatusOr<Role> parsed = ParseRole(RoleName(role));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(RoleName(Role::kPrivateQuerier), "private-querier");
  EXPECT_FALSE(ParseRole("Admin").ok());
  EXPECT_FALSE(ParseRole("").ok());
}

TEST(PermissionsTest, QuerierReadsAndCertifiesButNeverWrites) {
  const Principal querier{"acme", Role::kQuerier, ""};
  EXPECT_TRUE(Authorize(querier, "/agt.v1.DatasetService/ListDatasets").ok());
  EXPECT_TRUE(Authorize(querier, "/agt.v1.TrainingService/WatchJob").ok());
  EXPECT_TRUE(Authorize(querier, "/agt.v1.ModelService/CertifyPredictions").ok());
  for (const char* method :
       {"/agt.v1.DatasetService/UploadDataset", "/agt.v1.DatasetService/DeleteDataset",
        "/agt.v1.TrainingService/SubmitTrainingJob", "/agt.v1.TrainingService/CancelJob"}) {
    absl::Status status = Authorize(querier, method);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << method;
    EXPECT_NE(status.message().find("querier"), std::string::npos);
    EXPECT_NE(status.message().find(method), std::string::npos);
  }
}

TEST(PermissionsTest, QuerierMayAskForPrivatePredictions) {
  const Principal querier{"acme", Role::kQuerier, ""};
  EXPECT_TRUE(Authorize(querier, "/agt.v1.PrivacyService/PrivatePredict").ok());
  EXPECT_TRUE(Authorize(querier, "/agt.v1.PrivacyService/GetPrivacyBudget").ok());
}

TEST(PermissionsTest, PrivateQuerierMayCallOnlyThePrivacyService) {
  const Principal p{"acme", Role::kPrivateQuerier, "app"};
  int allowed = 0;
  for (const RpcPermission& row : RpcPermissionTable()) {
    const absl::Status status = Authorize(p, row.method);
    const bool privacy = absl::StartsWith(row.method, "/agt.v1.PrivacyService/");
    EXPECT_EQ(status.ok(), privacy) << row.method;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
      EXPECT_NE(status.message().find("private-querier"), std::string::npos) << status.message();
    }
    allowed += status.ok();
  }
  EXPECT_EQ(allowed, 2);
}

TEST(PermissionsTest, ClientNameIsTheLabelOrTheTenant) {
  EXPECT_EQ(ClientName({"acme", Role::kQuerier, "app one"}), "app one");
  EXPECT_EQ(ClientName({"acme", Role::kQuerier, ""}), "acme");
}

TEST(PermissionsTest, AdminAndTrainerMayCallEveryRpc) {
  for (Role role : {Role::kAdmin, Role::kTrainer}) {
    const Principal p{"acme", role, ""};
    for (const RpcPermission& row : RpcPermissionTable()) {
      EXPECT_TRUE(Authorize(p, row.method).ok()) << RoleName(role) << " " << row.method;
    }
  }
}

TEST(PermissionsTest, UnknownMethodsAreDeniedToEveryRole) {
  for (Role role : {Role::kAdmin, Role::kTrainer, Role::kQuerier, Role::kPrivateQuerier}) {
    absl::Status status = Authorize({"acme", role, ""}, "/agt.v1.ModelService/DropAll");
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  }
}

TEST(PermissionsTest, TheTableCoversExactlyTheRpcsOfTheProtos) {
  // Touch each file's descriptor so the generated pool has it.
  (void)agt::v1::UploadDatasetRequest::descriptor();
  (void)agt::v1::SubmitTrainingJobRequest::descriptor();
  (void)agt::v1::GetModelRequest::descriptor();
  (void)agt::v1::RequestDeletionRequest::descriptor();
  (void)agt::v1::PrivatePredictRequest::descriptor();
  (void)agt::v1::UploadModelArtifactRequest::descriptor();
  std::set<std::string> from_protos;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* service :
       {"agt.v1.DatasetService", "agt.v1.TrainingService", "agt.v1.ModelService",
        "agt.v1.UnlearningService", "agt.v1.PrivacyService", "agt.v1.ModelArtifactService"}) {
    const google::protobuf::ServiceDescriptor* descriptor = pool->FindServiceByName(service);
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      from_protos.insert(absl::StrCat("/", service, "/", descriptor->method(i)->name()));
    }
  }
  std::set<std::string> from_table;
  for (const RpcPermission& row : RpcPermissionTable()) from_table.insert(row.method);
  EXPECT_EQ(from_table, from_protos);
  EXPECT_EQ(from_table.size(), RpcPermissionTable().size()) << "duplicate rows";
}

TEST(ListenAddressTest, ParsesHostsPortsAndBracketedIpv6) {
  absl::StatusOr<ListenAddress> a = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(a->WithPort(4242), "127.0.0.1:4242");
  absl::StatusOr<ListenAddress> b = ParseListenAddress("[::1]:50051");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 50051);
  EXPECT_EQ(b->ToString(), "[::1]:50051");
  for (const char* bad : {"127.0.0.1", ":80", "host:", "host:65536", "host:-1", "host:8x", "::1:80",
                          "[::1]80", "[::1:80", "host:+5"}) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    if (!parsed.ok()) {
      EXPECT_NE(parsed.status().message().find(bad), std::string::npos);
    }
  }
}

TEST(ListenAddressTest, LoopbackDetection) {
  for (const char* host :
       {"127.0.0.1", "127.255.3.4", "localhost", "LocalHost", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "192.168.1.1", "example.com",
                           "localhost.evil.com", "::2", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(ListenAddressTest, LocalModeRefusesNonLoopbackAddresses) {
  const ListenAddress any{"0.0.0.0", 8080};
  const ListenAddress loop{"127.0.0.1", 8080};
  EXPECT_EQ(CheckListenAllowed(any, /*local_mode=*/true).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckListenAllowed(loop, true).ok());
  EXPECT_TRUE(CheckListenAllowed(any, /*local_mode=*/false).ok());
}

}  // namespace
}  // namespace agt::server
