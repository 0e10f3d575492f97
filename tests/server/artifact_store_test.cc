// ArtifactStore on a real SQLite file and on the tests' PostgreSQL server
// (postgres_fixture.h; every case but the raw SQLite corruption runs on
// both): records round-trip, tenants are
// scoped (another tenant's id is NotFound, like an unknown one), listings
// page in creation order, the bytes are checked against their SHA-256 on
// read (a corrupted blob is DataLoss), and deletion removes the record.
#include "server/store/artifact_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/blob.h"
#include "server/store/store.h"
#include "tests/server/postgres_fixture.h"

namespace agt::server {
namespace {

namespace fs = std::filesystem;

using testing_pg::Engine;

class ArtifactStoreTest : public testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    std::string name =
        absl::StrCat("artifact_store_", testing::UnitTest::GetInstance()->random_seed(), "_",
                     testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                     ::getpid());
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string skip;
    path_ = testing_pg::FreshStoreTarget(GetParam(), dir_.string(), &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<ArtifactStore>> artifacts = ArtifactStore::Open(path_);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = *std::move(artifacts);
  }
  void TearDown() override {
    artifacts_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  ArtifactRecord Insert(const std::string& tenant, const std::string& content) {
    ArtifactRecord r;
    r.tenant = tenant;
    r.name = "net.onnx";
    r.format = 1;
    r.summary = std::string("summary\0bytes", 13);
    absl::StatusOr<ArtifactRecord> stored = artifacts_->Insert(r, content);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *stored : ArtifactRecord{};
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
};

TEST_P(ArtifactStoreTest, RecordsAndBytesRoundTripWithinTheirTenant) {
  const std::string content("\x08\x07\x00\xff onnx bytes", 16);
  const ArtifactRecord stored = Insert("acme", content);
  EXPECT_EQ(stored.id.rfind("art-", 0), 0u) << stored.id;
  EXPECT_EQ(stored.size_bytes, 16);
  EXPECT_EQ(stored.sha256, Sha256Hex(content));
  absl::StatusOr<ArtifactRecord> got = artifacts_->Get("acme", stored.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->summary, std::string("summary\0bytes", 13));
  EXPECT_EQ(got->name, "net.onnx");
  EXPECT_EQ(got->created_ms, stored.created_ms);
  absl::StatusOr<std::string> bytes = artifacts_->LoadContent("acme", stored.id);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, content);

  EXPECT_EQ(artifacts_->Get("beta", stored.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts_->LoadContent("beta", stored.id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts_->Delete("beta", stored.id).code(), absl::StatusCode::kNotFound);
  absl::StatusOr<Page<ArtifactRecord>> foreign = artifacts_->List("beta", 0, "");
  ASSERT_TRUE(foreign.ok());
  EXPECT_TRUE(foreign->items.empty());
}

TEST_P(ArtifactStoreTest, ListingsPageInCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Insert("acme", absl::StrCat("file ", i)).id);
  Insert("beta", "other tenant");
  std::vector<std::string> seen;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<Page<ArtifactRecord>> listed = artifacts_->List("acme", 2, token);
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_LE(listed->items.size(), 2u);
    for (const ArtifactRecord& r : listed->items) seen.push_back(r.id);
    token = listed->next_page_token;
    if (token.empty()) break;
  }
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(artifacts_->List("acme", -1, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(artifacts_->List("acme", 1, "not-a-token").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ArtifactStoreTest, CorruptedBytesAreDataLossAndDeletionRemovesTheRecord) {
  if (GetParam() != Engine::kSqlite) GTEST_SKIP() << "alters the SQLite file directly";
  const ArtifactRecord stored = Insert("acme", "the original bytes");
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    sqlite3_busy_timeout(raw, 5000);
    const std::string sql = absl::StrCat(
        "UPDATE model_artifacts SET content = CAST('the altered  bytes' AS BLOB) WHERE id = '",
        stored.id, "'");
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  absl::StatusOr<std::string> bytes = artifacts_->LoadContent("acme", stored.id);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kDataLoss) << bytes.status();
  EXPECT_NE(bytes.status().message().find(stored.sha256), std::string::npos);

  ASSERT_TRUE(artifacts_->Delete("acme", stored.id).ok());
  EXPECT_EQ(artifacts_->Get("acme", stored.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(artifacts_->Delete("acme", stored.id).code(), absl::StatusCode::kNotFound);
}

TEST_P(ArtifactStoreTest, ReopeningKeepsTheArtifacts) {
  const ArtifactRecord stored = Insert("acme", "kept across restarts");
  artifacts_.reset();
  store_.reset();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<ArtifactStore>> artifacts = ArtifactStore::Open(path_);
  ASSERT_TRUE(artifacts.ok()) << artifacts.status();
  absl::StatusOr<std::string> bytes = (*artifacts)->LoadContent("acme", stored.id);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "kept across restarts");
}

INSTANTIATE_TEST_SUITE_P(Engines, ArtifactStoreTest,
                         testing::Values(Engine::kSqlite, Engine::kPostgres),
                         testing_pg::EngineName);

}  // namespace
}  // namespace agt::server
