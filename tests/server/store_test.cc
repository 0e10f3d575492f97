// The store (server/store/store.h) on both engines: StoreTest runs every case
// on an SQLite file in a fresh temporary directory and on a fresh schema of a
// real PostgreSQL server the test starts (postgres_fixture.h; skipped when
// PostgreSQL is not installed): exact round trips, persistence across
// reopen, tenant isolation, pagination, the job state machine, concurrent
// claims. SqliteStoreTest covers what only a file has (WAL, user_version,
// migrations from old files, atomicity and corruption seen through a second
// raw sqlite3 connection that plays the part of the disk).
#include "server/store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agt/v1/training.pb.h"
#include "core/privacy/budget.h"
#include "server/domain/ledgers.h"
#include "server/store/blob.h"
#include "tests/server/postgres_fixture.h"

namespace agt::server {
namespace {

namespace fs = std::filesystem;

constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t Bits(double x) { return std::bit_cast<uint64_t>(x); }

void ExpectSameBits(const Vector& a, const Vector& b) {
  ASSERT_EQ(a.size(), b.size());
  for (Index i = 0; i < a.size(); ++i) EXPECT_EQ(Bits(a[i]), Bits(b[i])) << "index " << i;
}

// A second connection to the same file, outside the Store.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  int64_t Int(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
    const int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  }
  std::string Text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
    const void* p = sqlite3_column_blob(st, 0);
    std::string v(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    sqlite3_finalize(st);
    return v;
  }
  // Flips one bit of a blob column in one row, as a bad disk sector would.
  void FlipByte(const std::string& table, const std::string& column, const std::string& where,
                size_t offset_from_end) {
    std::string blob = Text(absl::StrCat("SELECT ", column, " FROM ", table, " WHERE ", where));
    ASSERT_GT(blob.size(), offset_from_end);
    blob[blob.size() - 1 - offset_from_end] ^= 0x10;
    sqlite3_stmt* st = nullptr;
    const std::string sql = absl::StrCat("UPDATE ", table, " SET ", column, " = ? WHERE ", where);
    ASSERT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    sqlite3_bind_blob(st, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE) << sql;
    EXPECT_EQ(sqlite3_changes(db_), 1) << sql;
    sqlite3_finalize(st);
  }

 private:
  sqlite3* db_ = nullptr;
};

agt::Dataset MakeData(int rows, int dim, int classes, double offset = 0.0) {
  agt::Dataset d;
  d.x = Matrix(rows, dim);
  d.y = Vector(rows);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < dim; ++c) d.x(r, c) = offset + r * 0.25 - c * 1.5;
    d.y[r] = classes > 0 ? r % classes : r * 0.5;
  }
  d.num_classes = classes;
  return d;
}

// A parameter box whose bounds include values a lossy store would change.
ParameterBox AwkwardBox(Index size, double scale) {
  ParameterBox box{Vector::Constant(size, -scale), Vector::Constant(size, scale)};
  box.lower[0] = -kInf;
  box.upper[size - 1] = kInf;
  box.lower[1] = -0.0;
  box.upper[1] = std::numeric_limits<double>::denorm_min();
  return box;
}

agt::TrainState MakeState(int64_t step, Index params, int budgets) {
  agt::TrainState s;
  s.step = step;
  s.nominal = Vector::LinSpaced(params, -1.0, 1.0) * static_cast<double>(step);
  for (int b = 0; b < budgets; ++b) s.boxes.push_back(AwkwardBox(params, 1.0 + b + step));
  s.velocity_nominal = Vector::Constant(params, -0.0);
  s.velocity_lower.assign(budgets, Vector::Constant(params, 1e-310));
  s.velocity_upper.assign(budgets, Vector::Constant(params, -2.5));
  return s;
}

JobProgressRecord MakeProgress(int64_t iteration) {
  JobProgressRecord p;
  p.iteration = iteration;
  p.total_iterations = 100;
  p.epoch = static_cast<int>(iteration / 10);
  p.nominal_loss = 0.5 / (1 + iteration);
  p.total_width = {0.1 * iteration, -0.0, kInf};
  p.eta_seconds = 12.5;
  return p;
}

ModelRecord MakeModel(Index params, int budgets) {
  ModelRecord m;
  m.name = "mlp";
  m.architecture = ModelSpec::Mlp({2, 3, 1});
  m.polynomial_degree = 2;
  m.input_features = 2;
  m.num_classes = 2;
  m.nominal = Vector::LinSpaced(params, -3.0, 3.0);
  m.nominal[0] = -0.0;
  for (int b = 0; b < budgets; ++b) {
    BoxRecord box;
    box.budget = {b + 1, 2 * b};
    box.box = AwkwardBox(params, 0.5 * (b + 1));
    box.total_width = b == 0 ? kInf : 1.25 * b;
    box.max_width = -0.0;
    m.boxes.push_back(box);
  }
  return m;
}

void ExpectStatus(const absl::Status& status, absl::StatusCode code,
                  const std::vector<std::string>& needles = {}) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& needle : needles) {
    EXPECT_TRUE(absl::StrContains(status.message(), needle))
        << "message \"" << status.message() << "\" lacks \"" << needle << "\"";
  }
}

bool IsLowerHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

using testing_pg::Engine;
using testing_pg::EngineName;

// path_ is the --db target: an SQLite file in a fresh directory, or a fresh
// schema on the tests' PostgreSQL server (postgres_fixture.h).
class StoreTestBase : public testing::Test {
 protected:
  virtual Engine engine() const = 0;
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string name =
        absl::StrCat("agt_store_", info->test_suite_name(), "_", info->name(), "_", ::getpid());
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string skip;
    path_ = testing_pg::FreshStoreTarget(engine(), dir_.string(), &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  DatasetRecord AddDataset(const std::string& tenant, const std::string& name = "d",
                           const agt::Dataset& data = MakeData(6, 2, 2)) {
    DatasetRecord r;
    r.tenant = tenant;
    r.name = name;
    absl::StatusOr<DatasetRecord> stored = store_->InsertDataset(r, data);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *stored : DatasetRecord();
  }

  JobRecord AddJob(const std::string& tenant, const std::string& dataset_id,
                   const std::string& name = "job") {
    JobRecord j;
    j.tenant = tenant;
    j.dataset_id = dataset_id;
    j.name = name;
    j.spec = std::string("spec\0bytes", 10) + name;
    absl::StatusOr<JobRecord> stored = store_->InsertJob(j);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *stored : JobRecord();
  }

  JobState StateOf(const JobRecord& job) {
    absl::StatusOr<JobRecord> now = store_->GetJob(job.tenant, job.id);
    EXPECT_TRUE(now.ok()) << now.status();
    return now.ok() ? now->state : JobState::kQueued;
  }

  // Claims the next job and checks it is `expected`.
  void ClaimExpecting(const JobRecord& expected) {
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    ASSERT_TRUE(claimed->has_value());
    EXPECT_EQ((*claimed)->id, expected.id);
  }

  // A SUCCEEDED job with its model; returns the model id.
  std::string AddModel(const std::string& tenant, const std::string& dataset_id) {
    const JobRecord job = AddJob(tenant, dataset_id);
    ClaimExpecting(job);
    absl::StatusOr<std::string> id = store_->CompleteJob(job.id, MakeModel(13, 3), MakeProgress(9));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// The contract of store.h, on both engines.
class StoreTest : public StoreTestBase, public testing::WithParamInterface<Engine> {
 protected:
  Engine engine() const override { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, testing::Values(Engine::kSqlite, Engine::kPostgres),
                         EngineName);

// What only an SQLite file has: WAL, PRAGMA user_version, a second raw
// connection playing the disk, migrations from old files.
class SqliteStoreTest : public StoreTestBase {
 protected:
  Engine engine() const override { return Engine::kSqlite; }
};

// ---- idempotent requests

TEST(RequestIdTest, ValidIdsAreShortAndPlain) {
  EXPECT_TRUE(ValidateRequestId("").ok());
  EXPECT_TRUE(ValidateRequestId("agtctl-2026.12.01:a_b-9").ok());
  EXPECT_TRUE(ValidateRequestId(std::string(kMaxRequestIdLength, 'x')).ok());
  const absl::Status long_id = ValidateRequestId(std::string(kMaxRequestIdLength + 1, 'x'));
  EXPECT_EQ(long_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(long_id.message(), "at most 128")) << long_id;
  for (const char* bad : {"a b", "a/b", "caf\xc3\xa9", "a\nb"}) {
    EXPECT_EQ(ValidateRequestId(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ValidateRequestId(std::string("a\0b", 3)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, AStoredAnswerIsFoundOnlyForItsTenantKindIdAndFingerprint) {
  const RequestTag tag{"retry-1", "fp-1"};
  absl::StatusOr<std::optional<std::string>> none =
      store_->FindRequest("t1", RequestKind::kSubmitJob, tag);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  {
    RawDb raw(path_);
    raw.Exec(absl::StrCat(
        "INSERT INTO requests (tenant, kind, request_id, fingerprint, response, created_ms) "
        "VALUES ('t1', 'submit_job', 'retry-1', 'fp-1', X'00ff01', ",
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count(),
        "), ('t1', 'submit_job', 'old', 'fp-1', X'01', 1)"));
  }
  absl::StatusOr<std::optional<std::string>> found =
      store_->FindRequest("t1", RequestKind::kSubmitJob, tag);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, std::string("\x00\xff\x01", 3));
  // Another tenant, another kind, or no id: nothing.
  for (const auto& [tenant, kind, t] :
       {std::tuple{std::string("t2"), RequestKind::kSubmitJob, tag},
        std::tuple{std::string("t1"), RequestKind::kUpload, tag},
        std::tuple{std::string("t1"), RequestKind::kSubmitJob, RequestTag{"", "fp-1"}}}) {
    absl::StatusOr<std::optional<std::string>> other = store_->FindRequest(tenant, kind, t);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_FALSE(other->has_value()) << tenant << " " << RequestKindName(kind);
  }
  // The same id for a different request is refused, not answered.
  absl::StatusOr<std::optional<std::string>> clash =
      store_->FindRequest("t1", RequestKind::kSubmitJob, RequestTag{"retry-1", "fp-2"});
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(clash.status().message(), "retry-1")) << clash.status();
  // Past the retention period an answer is forgotten.
  absl::StatusOr<std::optional<std::string>> old =
      store_->FindRequest("t1", RequestKind::kSubmitJob, RequestTag{"old", "fp-1"});
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_FALSE(old->has_value());
}

// ---- schema

TEST_F(SqliteStoreTest, OpenCreatesAWalFileAtTheCurrentSchemaVersion) {
  EXPECT_GE(Store::SchemaVersion(), 1);
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), Store::SchemaVersion());
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");
  for (const char* table : {"datasets", "jobs", "checkpoints", "models", "model_boxes"}) {
    EXPECT_EQ(raw.Int(absl::StrCat("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                   "name = '",
                                   table, "'")),
              1)
        << table;
  }
  EXPECT_GE(raw.Int("SELECT count(*) FROM sqlite_schema WHERE type = 'index'"), 5);
}

TEST_F(SqliteStoreTest, ReopeningMigratesNothingTwice) {
  const DatasetRecord d = AddDataset("t");
  for (int i = 0; i < 3; ++i) Reopen();
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), Store::SchemaVersion());
  EXPECT_EQ(raw.Int("SELECT count(*) FROM datasets"), 1);
  EXPECT_TRUE(store_->GetDataset("t", d.id).ok());
}

TEST_F(SqliteStoreTest, ConcurrentFirstOpensOfOneFileBothSucceed) {
  store_.reset();
  const std::string fresh = (dir_ / "fresh.db").string();
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = Store::Open(fresh).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  RawDb raw(fresh);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), Store::SchemaVersion());
}

TEST_F(SqliteStoreTest, AFileFromANewerServerIsRefusedAndLeftAlone) {
  store_.reset();
  const int newer = Store::SchemaVersion() + 1;
  {
    RawDb raw(path_);
    raw.Exec(absl::StrCat("PRAGMA user_version = ", newer));
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
  ExpectStatus(store.status(), absl::StatusCode::kFailedPrecondition,
               {absl::StrCat("version ", newer), absl::StrCat(Store::SchemaVersion())});
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), newer);
}

TEST_F(SqliteStoreTest, AnotherApplicationsDatabaseIsRefused) {
  const std::string other = (dir_ / "other.db").string();
  {
    RawDb raw(other);
    raw.Exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)");
  }
  ExpectStatus(Store::Open(other).status(), absl::StatusCode::kFailedPrecondition, {"other.db"});
  RawDb raw(other);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM sqlite_schema"), 1) << "file was modified";
}

TEST_F(SqliteStoreTest, AFileThatIsNotSqliteIsAnError) {
  const std::string junk = (dir_ / "junk.db").string();
  {
    std::ofstream out(junk);
    out << std::string(4096, 'x');
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(junk);
  EXPECT_FALSE(store.ok());
  EXPECT_TRUE(absl::StrContains(store.status().message(), "sqlite")) << store.status();
}

// ---- datasets

TEST_F(SqliteStoreTest, DatasetRoundTripIsBitExact) {
  agt::Dataset data = MakeData(5, 3, 3);
  data.x(0, 0) = -0.0;
  data.x(1, 1) = std::numeric_limits<double>::denorm_min();
  data.x(2, 2) = 0.1;
  data.x(4, 0) = -1e308;
  DatasetRecord in;
  in.tenant = "acme";
  in.name = "iris-ish";
  in.num_rows = 999;  // filled in by the store from the data
  absl::StatusOr<DatasetRecord> rec = store_->InsertDataset(in, data);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_TRUE(absl::StartsWith(rec->id, "ds-")) << rec->id;
  EXPECT_EQ(rec->id.size(), 23u);
  EXPECT_TRUE(IsLowerHex(rec->id.substr(3))) << rec->id;
  EXPECT_EQ(rec->num_rows, 5);
  EXPECT_EQ(rec->num_features, 3);
  EXPECT_EQ(rec->num_classes, 3);
  EXPECT_GT(rec->created_ms, 1600000000000);
  EXPECT_EQ(rec->checksum.size(), 64u);
  EXPECT_TRUE(IsLowerHex(rec->checksum));

  absl::StatusOr<DatasetRecord> got = store_->GetDataset("acme", rec->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "iris-ish");
  EXPECT_EQ(got->tenant, "acme");
  EXPECT_EQ(got->checksum, rec->checksum);
  EXPECT_EQ(got->size_bytes, rec->size_bytes);
  EXPECT_EQ(got->created_ms, rec->created_ms);

  absl::StatusOr<agt::Dataset> back = store_->LoadDatasetData("acme", rec->id);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->x.rows(), 5);
  ASSERT_EQ(back->x.cols(), 3);
  EXPECT_EQ(back->num_classes, 3);
  for (Index i = 0; i < data.x.size(); ++i)
    EXPECT_EQ(Bits(back->x.data()[i]), Bits(data.x.data()[i]));
  ExpectSameBits(back->y, data.y);

  // The checksum and size describe the stored blobs.
  RawDb raw(path_);
  const std::string where = absl::StrCat("WHERE id = '", rec->id, "'");
  const std::string features = raw.Text("SELECT features FROM datasets " + where);
  const std::string labels = raw.Text("SELECT labels FROM datasets " + where);
  EXPECT_EQ(rec->checksum, Sha256Hex(features + labels));
  EXPECT_EQ(rec->size_bytes, static_cast<int64_t>(features.size() + labels.size()));
}

TEST_P(StoreTest, EmptyAndRegressionDatasetsRoundTrip) {
  const DatasetRecord empty = AddDataset("t", "empty", MakeData(0, 4, 2));
  absl::StatusOr<agt::Dataset> e = store_->LoadDatasetData("t", empty.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->x.rows(), 0);
  EXPECT_EQ(e->x.cols(), 4);
  const DatasetRecord reg = AddDataset("t", "reg", MakeData(3, 1, 0));
  absl::StatusOr<agt::Dataset> r = store_->LoadDatasetData("t", reg.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_classes, 0);
  EXPECT_EQ(r->y[2], 1.0);
}

TEST_P(StoreTest, InconsistentDatasetIsRefused) {
  agt::Dataset data = MakeData(4, 2, 2);
  data.y.resize(3);
  ExpectStatus(store_->InsertDataset(DatasetRecord{}, data).status(),
               absl::StatusCode::kInvalidArgument, {"4", "3"});
}

TEST_P(StoreTest, DeleteDatasetIsBlockedByQueuedAndRunningJobs) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord queued = AddJob("t", d.id);
  ExpectStatus(store_->DeleteDataset("t", d.id), absl::StatusCode::kFailedPrecondition,
               {d.id, queued.id, "QUEUED"});
  ClaimExpecting(queued);
  ExpectStatus(store_->DeleteDataset("t", d.id), absl::StatusCode::kFailedPrecondition,
               {d.id, queued.id, "RUNNING"});
  EXPECT_TRUE(store_->GetDataset("t", d.id).ok());

  ASSERT_TRUE(store_->FailJob(queued.id, "boom").ok());
  EXPECT_TRUE(store_->DeleteDataset("t", d.id).ok());
  ExpectStatus(store_->GetDataset("t", d.id).status(), absl::StatusCode::kNotFound);
  ExpectStatus(store_->LoadDatasetData("t", d.id).status(), absl::StatusCode::kNotFound);
  ExpectStatus(store_->DeleteDataset("t", d.id), absl::StatusCode::kNotFound);
  // The finished job keeps the id of its (now deleted) dataset.
  absl::StatusOr<JobRecord> job = store_->GetJob("t", queued.id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->dataset_id, d.id);
  // A new job cannot use it.
  JobRecord again;
  again.tenant = "t";
  again.dataset_id = d.id;
  ExpectStatus(store_->InsertJob(again).status(), absl::StatusCode::kNotFound, {d.id});
}

TEST_P(StoreTest, DeleteDatasetIsAllowedAfterSuccessAndCancel) {
  const DatasetRecord d = AddDataset("t");
  const std::string model_id = AddModel("t", d.id);
  const JobRecord cancelled = AddJob("t", d.id);
  ASSERT_TRUE(store_->RequestCancel("t", cancelled.id).ok());
  EXPECT_TRUE(store_->DeleteDataset("t", d.id).ok());
  // The model outlives its dataset.
  EXPECT_TRUE(store_->GetModel("t", model_id).ok());
}

TEST_P(StoreTest, DeleteJobTakesOnlyFinishedJobsWithoutAModel) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord queued = AddJob("t", d.id, "queued");
  const JobRecord running = AddJob("t", d.id, "running");
  ClaimExpecting(queued);  // oldest first: `queued` runs now
  for (const JobRecord* job : {&queued, &running}) {
    const absl::Status refused = store_->DeleteJob("t", job->id);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_TRUE(absl::StrContains(refused.message(), job->id)) << refused;
  }
  // A failed job goes with its checkpoint.
  ASSERT_TRUE(store_->SaveCheckpoint(queued.id, MakeState(2, 13, 2), MakeProgress(2)).ok());
  ASSERT_TRUE(store_->FailJob(queued.id, "boom").ok());
  ASSERT_TRUE(store_->DeleteJob("t", queued.id).ok());
  EXPECT_EQ(store_->GetJob("t", queued.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->LoadCheckpoint(queued.id).status().code(), absl::StatusCode::kNotFound);
  // A succeeded job waits for its model.
  ClaimExpecting(running);
  absl::StatusOr<std::string> model =
      store_->CompleteJob(running.id, MakeModel(13, 2), MakeProgress(9));
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::Status blocked = store_->DeleteJob("t", running.id);
  EXPECT_EQ(blocked.code(), absl::StatusCode::kFailedPrecondition) << blocked;
  EXPECT_TRUE(absl::StrContains(blocked.message(), *model)) << blocked;
  EXPECT_EQ(store_->DeleteJob("u", running.id).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->DeleteModel("t", *model).ok());
  ASSERT_TRUE(store_->DeleteJob("t", running.id).ok());
  EXPECT_EQ(store_->DeleteJob("t", running.id).code(), absl::StatusCode::kNotFound);
  absl::StatusOr<Page<JobRecord>> left = store_->ListJobs("t", std::nullopt, 10, "");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->items.empty());
  // The dataset is free again.
  EXPECT_TRUE(store_->DeleteDataset("t", d.id).ok());
}

// ---- tenants

TEST_P(StoreTest, AnotherTenantsRecordsAreNotFoundExactlyLikeUnknownIds) {
  const DatasetRecord d = AddDataset("alpha");
  const std::string model_id = AddModel("alpha", d.id);
  const JobRecord job = AddJob("alpha", d.id);
  const std::string unknown_ds = "ds-00000000000000000000";
  const std::string unknown_job = "job-00000000000000000000";
  const std::string unknown_mdl = "mdl-00000000000000000000";

  // Same code and the same message shape for "exists elsewhere" and "never existed".
  auto expect_not_found = [](const absl::Status& s, const std::string& kind,
                             const std::string& id) {
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_EQ(s.message(), absl::StrCat(kind, " ", id, " not found"));
  };
  for (const auto& [id, unknown] : {std::pair{d.id, unknown_ds}}) {
    expect_not_found(store_->GetDataset("beta", id).status(), "dataset", id);
    expect_not_found(store_->GetDataset("beta", unknown).status(), "dataset", unknown);
    expect_not_found(store_->LoadDatasetData("beta", id).status(), "dataset", id);
    expect_not_found(store_->LoadDatasetData("beta", unknown).status(), "dataset", unknown);
    expect_not_found(store_->DeleteDataset("beta", id), "dataset", id);
    expect_not_found(store_->DeleteDataset("beta", unknown), "dataset", unknown);
  }
  expect_not_found(store_->GetJob("beta", job.id).status(), "job", job.id);
  expect_not_found(store_->GetJob("beta", unknown_job).status(), "job", unknown_job);
  expect_not_found(store_->RequestCancel("beta", job.id).status(), "job", job.id);
  expect_not_found(store_->RequestCancel("beta", unknown_job).status(), "job", unknown_job);
  expect_not_found(store_->GetModel("beta", model_id).status(), "model", model_id);
  expect_not_found(store_->GetModel("beta", unknown_mdl).status(), "model", unknown_mdl);

  // A job of beta cannot train on alpha's dataset.
  JobRecord steal;
  steal.tenant = "beta";
  steal.dataset_id = d.id;
  expect_not_found(store_->InsertJob(steal).status(), "dataset", d.id);

  // Listings show nothing of alpha's.
  absl::StatusOr<Page<DatasetRecord>> ds = store_->ListDatasets("beta", 0, "");
  absl::StatusOr<Page<JobRecord>> jobs = store_->ListJobs("beta", std::nullopt, 0, "");
  absl::StatusOr<Page<ModelRecord>> models = store_->ListModels("beta", 0, "");
  ASSERT_TRUE(ds.ok() && jobs.ok() && models.ok());
  EXPECT_TRUE(ds->items.empty());
  EXPECT_TRUE(jobs->items.empty());
  EXPECT_TRUE(models->items.empty());

  // And alpha still has everything (beta's attempts changed nothing).
  EXPECT_TRUE(store_->GetDataset("alpha", d.id).ok());
  EXPECT_EQ(StateOf(job), JobState::kQueued);
  EXPECT_TRUE(store_->GetModel("alpha", model_id).ok());
}

TEST_P(StoreTest, ListingsOfATenantSeeOnlyItsOwnRecords) {
  std::map<std::string, std::set<std::string>> mine;
  for (int i = 0; i < 6; ++i) {
    const std::string tenant = i % 2 == 0 ? "even" : "odd";
    mine[tenant].insert(AddDataset(tenant).id);
  }
  for (const auto& [tenant, ids] : mine) {
    absl::StatusOr<Page<DatasetRecord>> page = store_->ListDatasets(tenant, 0, "");
    ASSERT_TRUE(page.ok());
    std::set<std::string> listed;
    for (const DatasetRecord& r : page->items) {
      EXPECT_EQ(r.tenant, tenant);
      listed.insert(r.id);
    }
    EXPECT_EQ(listed, ids);
  }
}

// ---- pagination

TEST_F(SqliteStoreTest, DatasetSampleShapesAreStoredAndOldRowsReadAsFlat) {
  DatasetRecord in;
  in.tenant = "t";
  in.name = "images";
  in.sample_shape = {1, 2, 2};
  absl::StatusOr<DatasetRecord> stored = store_->InsertDataset(in, MakeData(5, 4, 2));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sample_shape, (std::vector<int>{1, 2, 2}));
  absl::StatusOr<DatasetRecord> got = store_->GetDataset("t", stored->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sample_shape, (std::vector<int>{1, 2, 2}));
  // No shape: [num_features].
  EXPECT_EQ(AddDataset("t").sample_shape, (std::vector<int>{2}));
  // A shape that does not hold the features is refused, nothing stored.
  in.sample_shape = {1, 3, 2};
  EXPECT_EQ(store_->InsertDataset(in, MakeData(5, 4, 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A row from before schema 9 (the column's default) reads as flat.
  store_.reset();
  {
    RawDb raw(path_);
    raw.Exec("UPDATE datasets SET sample_shape = ''");
  }
  Reopen();
  got = store_->GetDataset("t", stored->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sample_shape, (std::vector<int>{4}));
}

TEST_P(StoreTest, DatasetPagesAreInCreationOrderAndComplete) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(AddDataset("t", absl::StrCat("d", i)).id);
  AddDataset("other");
  std::vector<std::string> listed;
  std::string token;
  std::vector<size_t> sizes;
  for (int guard = 0; guard < 10; ++guard) {
    absl::StatusOr<Page<DatasetRecord>> page = store_->ListDatasets("t", 3, token);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->items.size());
    for (const DatasetRecord& r : page->items) listed.push_back(r.id);
    token = page->next_page_token;
    if (token.empty()) break;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 1}));
  EXPECT_EQ(listed, ids);
}

TEST_P(StoreTest, AnExactMultipleOfThePageSizeEndsWithoutAnEmptyPage) {
  for (int i = 0; i < 4; ++i) AddDataset("t");
  absl::StatusOr<Page<DatasetRecord>> first = store_->ListDatasets("t", 2, "");
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token.empty());
  absl::StatusOr<Page<DatasetRecord>> second = store_->ListDatasets("t", 2, first->next_page_token);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->items.size(), 2u);
  EXPECT_TRUE(second->next_page_token.empty());
}

TEST_P(StoreTest, PageTokensSurviveDeletionsInsertionsAndRestarts) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(AddDataset("t").id);
  absl::StatusOr<Page<DatasetRecord>> first = store_->ListDatasets("t", 2, "");
  ASSERT_TRUE(first.ok());
  // The last record of the first page disappears and a new one arrives.
  ASSERT_TRUE(store_->DeleteDataset("t", ids[1]).ok());
  ASSERT_TRUE(store_->DeleteDataset("t", ids[2]).ok());
  const std::string late = AddDataset("t").id;
  Reopen();
  std::vector<std::string> rest;
  std::string token = first->next_page_token;
  for (int guard = 0; guard < 10 && !token.empty(); ++guard) {
    absl::StatusOr<Page<DatasetRecord>> page = store_->ListDatasets("t", 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const DatasetRecord& r : page->items) rest.push_back(r.id);
    token = page->next_page_token;
  }
  EXPECT_EQ(rest, (std::vector<std::string>{ids[3], ids[4], ids[5], late}));
}

TEST_P(StoreTest, JobPagesFilterByState) {
  const DatasetRecord d = AddDataset("t");
  std::vector<JobRecord> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(AddJob("t", d.id, absl::StrCat("j", i)));
  ClaimExpecting(jobs[0]);
  ClaimExpecting(jobs[1]);
  ASSERT_TRUE(store_->RequestCancel("t", jobs[3].id).ok());

  auto list_all = [&](std::optional<JobState> state) {
    std::vector<std::string> ids;
    std::string token;
    for (int guard = 0; guard < 10; ++guard) {
      absl::StatusOr<Page<JobRecord>> page = store_->ListJobs("t", state, 1, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(page->items.size(), 1u);
      for (const JobRecord& j : page->items) {
        if (state.has_value()) {
          EXPECT_EQ(j.state, *state);
        }
        ids.push_back(j.id);
      }
      token = page->next_page_token;
      if (token.empty()) break;
    }
    return ids;
  };
  EXPECT_EQ(list_all(std::nullopt),
            (std::vector<std::string>{jobs[0].id, jobs[1].id, jobs[2].id, jobs[3].id, jobs[4].id}));
  EXPECT_EQ(list_all(JobState::kRunning), (std::vector<std::string>{jobs[0].id, jobs[1].id}));
  EXPECT_EQ(list_all(JobState::kQueued), (std::vector<std::string>{jobs[2].id, jobs[4].id}));
  EXPECT_EQ(list_all(JobState::kCancelled), (std::vector<std::string>{jobs[3].id}));
  EXPECT_TRUE(list_all(JobState::kSucceeded).empty());
}

TEST_P(StoreTest, ModelPagesCarryTheirBoxes) {
  const DatasetRecord d = AddDataset("t");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(AddModel("t", d.id));
  absl::StatusOr<Page<ModelRecord>> first = store_->ListModels("t", 2, "");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->items.size(), 2u);
  absl::StatusOr<Page<ModelRecord>> second = store_->ListModels("t", 2, first->next_page_token);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_TRUE(second->next_page_token.empty());
  EXPECT_EQ(first->items[0].id, ids[0]);
  EXPECT_EQ(first->items[1].id, ids[1]);
  EXPECT_EQ(second->items[0].id, ids[2]);
  for (const ModelRecord& m : first->items) EXPECT_EQ(m.boxes.size(), 3u);
}

TEST_P(StoreTest, BadPageArgumentsAreInvalidArgument) {
  const DatasetRecord d = AddDataset("t");
  AddDataset("t");
  AddJob("t", d.id);
  AddJob("t", d.id);
  absl::StatusOr<Page<DatasetRecord>> ds = store_->ListDatasets("t", 1, "");
  absl::StatusOr<Page<JobRecord>> jobs = store_->ListJobs("t", std::nullopt, 1, "");
  ASSERT_TRUE(ds.ok() && jobs.ok());
  ASSERT_FALSE(ds->next_page_token.empty());
  ASSERT_FALSE(jobs->next_page_token.empty());

  for (const std::string& token : {std::string("garbage"), std::string("!!"),
                                   ds->next_page_token + "x", std::string(1000, 'A')}) {
    ExpectStatus(store_->ListDatasets("t", 1, token).status(), absl::StatusCode::kInvalidArgument,
                 {"page_token"});
    ExpectStatus(store_->ListJobs("t", std::nullopt, 1, token).status(),
                 absl::StatusCode::kInvalidArgument, {"page_token"});
    ExpectStatus(store_->ListModels("t", 1, token).status(), absl::StatusCode::kInvalidArgument,
                 {"page_token"});
  }
  // A token is only good for the listing that issued it.
  ExpectStatus(store_->ListJobs("t", std::nullopt, 1, ds->next_page_token).status(),
               absl::StatusCode::kInvalidArgument, {"page_token"});
  ExpectStatus(store_->ListModels("t", 1, jobs->next_page_token).status(),
               absl::StatusCode::kInvalidArgument, {"page_token"});
  ExpectStatus(store_->ListDatasets("t", -1, "").status(), absl::StatusCode::kInvalidArgument,
               {"page_size", "-1"});
}

TEST_F(SqliteStoreTest, PageSizeZeroIsTheDefaultAndLargeSizesAreCapped) {
  RawDb raw(path_);
  // Bulk-insert cheap rows directly: more than both limits.
  const int rows = kMaxPageSize + 5;
  raw.Exec("BEGIN");
  for (int i = 0; i < rows; ++i) {
    raw.Exec(
        absl::StrCat("INSERT INTO datasets (id, tenant, name, num_rows, num_features, "
                     "num_classes, checksum, size_bytes, created_ms, features, labels) "
                     "VALUES ('ds-bulk",
                     i, "', 't', 'n', 0, 0, 0, '', 0, 0, x'00', x'00')"));
  }
  raw.Exec("COMMIT");
  absl::StatusOr<Page<DatasetRecord>> def = store_->ListDatasets("t", 0, "");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->items.size(), static_cast<size_t>(kDefaultPageSize));
  EXPECT_FALSE(def->next_page_token.empty());
  absl::StatusOr<Page<DatasetRecord>> big = store_->ListDatasets("t", 1 << 30, "");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->items.size(), static_cast<size_t>(kMaxPageSize));
  EXPECT_FALSE(big->next_page_token.empty());
}

// ---- jobs

TEST_P(StoreTest, TheFullJobLifecycle) {
  const DatasetRecord d = AddDataset("t");
  JobRecord in;
  in.tenant = "t";
  in.dataset_id = d.id;
  in.name = "first";
  in.spec = std::string("\x08\x01\0\xff", 4);
  in.state = JobState::kSucceeded;  // ignored: new jobs are QUEUED
  in.model_id = "mdl-forged";       // ignored
  absl::StatusOr<JobRecord> job = store_->InsertJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(absl::StartsWith(job->id, "job-")) << job->id;
  EXPECT_EQ(job->id.size(), 24u);
  EXPECT_TRUE(IsLowerHex(job->id.substr(4)));
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_TRUE(job->model_id.empty());
  EXPECT_GT(job->created_ms, 0);
  EXPECT_EQ(job->started_ms, 0);

  absl::StatusOr<JobRecord> stored = store_->GetJob("t", job->id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->spec, in.spec);
  EXPECT_EQ(stored->name, "first");
  EXPECT_EQ(stored->state, JobState::kQueued);

  absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->id, job->id);
  EXPECT_EQ((*claimed)->state, JobState::kRunning);
  EXPECT_GE((*claimed)->started_ms, job->created_ms);
  EXPECT_EQ((*claimed)->spec, in.spec);

  EXPECT_EQ((*claimed)->progress.backend, "");
  JobProgressRecord with_backend = MakeProgress(3);
  with_backend.backend = "cuda";
  ASSERT_TRUE(store_->UpdateJobProgress(job->id, with_backend, 7).ok());
  absl::StatusOr<JobRecord> running = store_->GetJob("t", job->id);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->progress.backend, "cuda");
  EXPECT_EQ(running->progress.iteration, 3);
  EXPECT_EQ(running->progress.total_iterations, 100);
  EXPECT_EQ(running->dropped_rows_per_epoch, 7);
  ASSERT_EQ(running->progress.total_width.size(), 3u);
  EXPECT_EQ(Bits(running->progress.total_width[1]), Bits(-0.0));
  EXPECT_EQ(running->progress.total_width[2], kInf);

  ASSERT_TRUE(store_->SaveCheckpoint(job->id, MakeState(5, 13, 3), MakeProgress(5)).ok());
  JobProgressRecord final_progress = MakeProgress(100);  // no backend: the stored one stays
  ModelRecord trained = MakeModel(13, 3);
  trained.backend = "cuda";
  absl::StatusOr<std::string> model_id = store_->CompleteJob(job->id, trained, final_progress);
  ASSERT_TRUE(model_id.ok()) << model_id.status();
  absl::StatusOr<ModelRecord> model = store_->GetModel("t", *model_id);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->backend, "cuda");
  EXPECT_TRUE(absl::StartsWith(*model_id, "mdl-"));
  EXPECT_EQ(model_id->size(), 24u);

  absl::StatusOr<JobRecord> done = store_->GetJob("t", job->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->model_id, *model_id);
  EXPECT_EQ(done->progress.iteration, 100);
  EXPECT_EQ(done->progress.backend, "cuda");
  EXPECT_EQ(done->dropped_rows_per_epoch, 7);
  EXPECT_GE(done->finished_ms, done->started_ms);
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(job->id);
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_FALSE(cp->has_value()) << "checkpoint kept after success";

  absl::StatusOr<std::optional<JobRecord>> none = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreTest, ProgressScalarsKeepSignInfinityAndNan) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  JobProgressRecord p = MakeProgress(1);
  p.nominal_loss = std::numeric_limits<double>::quiet_NaN();
  p.eta_seconds = -0.0;
  ASSERT_TRUE(store_->UpdateJobProgress(job.id, p, 0).ok());
  absl::StatusOr<JobRecord> got = store_->GetJob("t", job.id);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(std::isnan(got->progress.nominal_loss));
  EXPECT_EQ(Bits(got->progress.eta_seconds), Bits(-0.0));
  p.nominal_loss = kInf;
  p.eta_seconds = std::numeric_limits<double>::denorm_min();
  ASSERT_TRUE(store_->UpdateJobProgress(job.id, p, 0).ok());
  got = store_->GetJob("t", job.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->progress.nominal_loss, kInf);
  EXPECT_EQ(Bits(got->progress.eta_seconds), Bits(std::numeric_limits<double>::denorm_min()));
}

TEST_P(StoreTest, ClaimsAreOldestFirstAcrossTenantsAndUnknownDatasetsAreRefused) {
  const DatasetRecord dt = AddDataset("t");
  const DatasetRecord du = AddDataset("u");
  JobRecord orphan;
  orphan.tenant = "t";
  orphan.dataset_id = "ds-nope";
  ExpectStatus(store_->InsertJob(orphan).status(), absl::StatusCode::kNotFound, {"ds-nope"});
  std::vector<JobRecord> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(i % 2 ? AddJob("u", du.id) : AddJob("t", dt.id));
  for (const JobRecord& j : jobs) ClaimExpecting(j);
  absl::StatusOr<std::optional<JobRecord>> none = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreTest, IllegalTransitionsNameTheJobAndBothStates) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  // QUEUED: only RUNNING (claim) and CANCELLED are reachable.
  ExpectStatus(store_->CompleteJob(job.id, MakeModel(13, 1), MakeProgress(1)).status(),
               absl::StatusCode::kFailedPrecondition, {job.id, "QUEUED", "SUCCEEDED"});
  ExpectStatus(store_->FailJob(job.id, "x"), absl::StatusCode::kFailedPrecondition,
               {job.id, "QUEUED", "FAILED"});
  ExpectStatus(store_->UpdateJobProgress(job.id, MakeProgress(1), 0),
               absl::StatusCode::kFailedPrecondition, {job.id, "QUEUED", "RUNNING"});
  ExpectStatus(store_->SaveCheckpoint(job.id, MakeState(1, 13, 1), MakeProgress(1)),
               absl::StatusCode::kFailedPrecondition, {job.id, "QUEUED", "RUNNING"});
  EXPECT_EQ(StateOf(job), JobState::kQueued);

  ClaimExpecting(job);
  ASSERT_TRUE(store_->FailJob(job.id, "diverged at step 3").ok());
  absl::StatusOr<JobRecord> failed = store_->GetJob("t", job.id);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_EQ(failed->error, "diverged at step 3");
  EXPECT_GT(failed->finished_ms, 0);

  // FAILED is final: nothing moves it.
  ExpectStatus(store_->CompleteJob(job.id, MakeModel(13, 1), MakeProgress(1)).status(),
               absl::StatusCode::kFailedPrecondition, {job.id, "FAILED", "SUCCEEDED"});
  ExpectStatus(store_->MarkCancelled(job.id), absl::StatusCode::kFailedPrecondition,
               {job.id, "FAILED", "CANCELLED"});
  ExpectStatus(store_->FailJob(job.id, "again"), absl::StatusCode::kFailedPrecondition,
               {job.id, "FAILED"});
  ExpectStatus(store_->RequestCancel("t", job.id).status(), absl::StatusCode::kFailedPrecondition,
               {job.id, "FAILED"});
  ExpectStatus(store_->UpdateJobProgress(job.id, MakeProgress(1), 0),
               absl::StatusCode::kFailedPrecondition, {job.id, "FAILED"});
  ExpectStatus(store_->SaveCheckpoint(job.id, MakeState(1, 13, 1), MakeProgress(1)),
               absl::StatusCode::kFailedPrecondition, {job.id, "FAILED"});
  failed = store_->GetJob("t", job.id);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_EQ(failed->error, "diverged at step 3");

  // RequeueRunningJobs leaves final jobs alone.
  absl::StatusOr<int> requeued = store_->RequeueRunningJobs();
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(*requeued, 0);
  EXPECT_EQ(StateOf(job), JobState::kFailed);
}

TEST_P(StoreTest, WorkerCallsOnUnknownJobsAreNotFound) {
  const std::string id = "job-11111111111111111111";
  ExpectStatus(store_->UpdateJobProgress(id, MakeProgress(1), 0), absl::StatusCode::kNotFound,
               {id});
  ExpectStatus(store_->SaveCheckpoint(id, MakeState(1, 3, 1), MakeProgress(1)),
               absl::StatusCode::kNotFound, {id});
  ExpectStatus(store_->LoadCheckpoint(id).status(), absl::StatusCode::kNotFound, {id});
  ExpectStatus(store_->CompleteJob(id, MakeModel(13, 1), MakeProgress(1)).status(),
               absl::StatusCode::kNotFound, {id});
  ExpectStatus(store_->FailJob(id, "x"), absl::StatusCode::kNotFound, {id});
  ExpectStatus(store_->MarkCancelled(id), absl::StatusCode::kNotFound, {id});
  ExpectStatus(store_->IsCancelRequested(id).status(), absl::StatusCode::kNotFound, {id});
}

TEST_P(StoreTest, CancellingAQueuedJobIsImmediate) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  absl::StatusOr<JobRecord> after = store_->RequestCancel("t", job.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, JobState::kCancelled);
  EXPECT_TRUE(after->cancel_requested);
  EXPECT_GT(after->finished_ms, 0);
  absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok());
  EXPECT_FALSE(claimed->has_value()) << "a cancelled job was claimed";
  ExpectStatus(store_->RequestCancel("t", job.id).status(), absl::StatusCode::kFailedPrecondition,
               {job.id, "CANCELLED"});
}

TEST_P(StoreTest, CancellingARunningJobIsARequestTheWorkerCompletes) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, MakeState(2, 13, 2), MakeProgress(2)).ok());
  absl::StatusOr<bool> requested = store_->IsCancelRequested(job.id);
  ASSERT_TRUE(requested.ok());
  EXPECT_FALSE(*requested);

  absl::StatusOr<JobRecord> after = store_->RequestCancel("t", job.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, JobState::kRunning);
  EXPECT_TRUE(after->cancel_requested);
  // Asking twice is harmless.
  after = store_->RequestCancel("t", job.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, JobState::kRunning);
  requested = store_->IsCancelRequested(job.id);
  ASSERT_TRUE(requested.ok());
  EXPECT_TRUE(*requested);

  ASSERT_TRUE(store_->MarkCancelled(job.id).ok());
  EXPECT_EQ(StateOf(job), JobState::kCancelled);
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(job.id);
  ASSERT_TRUE(cp.ok());
  EXPECT_FALSE(cp->has_value()) << "a cancelled job keeps no checkpoint";
  ExpectStatus(store_->MarkCancelled(job.id), absl::StatusCode::kFailedPrecondition,
               {job.id, "CANCELLED"});
  ExpectStatus(store_->SaveCheckpoint(job.id, MakeState(3, 13, 2), MakeProgress(3)),
               absl::StatusCode::kFailedPrecondition, {job.id, "CANCELLED"});
}

TEST_F(SqliteStoreTest, CheckpointsReplaceEachOtherAndRoundTripExactly) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  absl::StatusOr<std::optional<agt::TrainState>> none = store_->LoadCheckpoint(job.id);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(store_->SaveCheckpoint(job.id, MakeState(3, 13, 3), MakeProgress(3)).ok());
  const agt::TrainState latest = MakeState(5, 13, 3);
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, latest, MakeProgress(5)).ok());
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM checkpoints"), 1);

  Reopen();
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(job.id);
  ASSERT_TRUE(cp.ok()) << cp.status();
  ASSERT_TRUE(cp->has_value());
  const agt::TrainState& got = **cp;
  EXPECT_EQ(got.step, 5);
  ExpectSameBits(got.nominal, latest.nominal);
  ASSERT_EQ(got.boxes.size(), 3u);
  for (size_t b = 0; b < 3; ++b) {
    ExpectSameBits(got.boxes[b].lower, latest.boxes[b].lower);
    ExpectSameBits(got.boxes[b].upper, latest.boxes[b].upper);
    ExpectSameBits(got.velocity_lower[b], latest.velocity_lower[b]);
    ExpectSameBits(got.velocity_upper[b], latest.velocity_upper[b]);
  }
  ExpectSameBits(got.velocity_nominal, latest.velocity_nominal);
  // The progress was saved with the checkpoint.
  absl::StatusOr<JobRecord> stored = store_->GetJob("t", job.id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->progress.iteration, 5);
}

TEST_P(StoreTest, RequeueSendsRunningJobsBackWithTheirCheckpoints) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord a = AddJob("t", d.id, "a");
  const JobRecord b = AddJob("t", d.id, "b");
  const JobRecord c = AddJob("t", d.id, "c");
  ClaimExpecting(a);
  ClaimExpecting(b);
  ASSERT_TRUE(store_->SaveCheckpoint(a.id, MakeState(4, 13, 2), MakeProgress(4)).ok());

  Reopen();  // the "crash": a new process over the same file
  absl::StatusOr<int> requeued = store_->RequeueRunningJobs();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_EQ(*requeued, 2);
  EXPECT_EQ(StateOf(a), JobState::kQueued);
  EXPECT_EQ(StateOf(b), JobState::kQueued);
  EXPECT_EQ(StateOf(c), JobState::kQueued);
  absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(a.id);
  ASSERT_TRUE(cp.ok() && cp->has_value());
  EXPECT_EQ((*cp)->step, 4);
  // The interrupted jobs keep their place at the head of the queue.
  ClaimExpecting(a);
  ClaimExpecting(b);
  ClaimExpecting(c);
  requeued = store_->RequeueRunningJobs();
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(*requeued, 3);
}

// Poison-job guard: RecoverAbandonedJobs counts a crash for every RUNNING
// job; the third makes it FAILED (checkpoint dropped); a graceful requeue
// counts nothing; jobs not running are not counted.
TEST_P(StoreTest, AJobRunningInThreeCrashesIsFailedAndCleanRequeuesDoNotCount) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord poison = AddJob("t", d.id, "poison");
  const JobRecord queued = AddJob("t", d.id, "queued");
  for (int crash = 1; crash <= 3; ++crash) {
    ClaimExpecting(poison);
    ASSERT_TRUE(
        store_->SaveCheckpoint(poison.id, MakeState(crash, 13, 2), MakeProgress(crash)).ok());
    if (crash == 2) {  // a clean stop and restart in between
      ASSERT_TRUE(store_->RequeueRunningJobs().ok());
      ClaimExpecting(poison);
    }
    Reopen();
    absl::StatusOr<JobRecovery> recovered = store_->RecoverAbandonedJobs(2);
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    absl::StatusOr<JobRecord> now = store_->GetJob("t", poison.id);
    ASSERT_TRUE(now.ok());
    EXPECT_EQ(now->crash_count, crash);
    if (crash < 3) {
      EXPECT_EQ(recovered->requeued, 1);
      EXPECT_EQ(recovered->failed, 0);
      EXPECT_EQ(now->state, JobState::kQueued);
    } else {
      EXPECT_EQ(recovered->requeued, 0);
      EXPECT_EQ(recovered->failed, 1);
      EXPECT_EQ(now->state, JobState::kFailed);
      EXPECT_TRUE(absl::StrContains(now->error, "crashed the server 3 times")) << now->error;
      EXPECT_GT(now->finished_ms, 0);
      absl::StatusOr<std::optional<agt::TrainState>> cp = store_->LoadCheckpoint(poison.id);
      ASSERT_TRUE(cp.ok());
      EXPECT_FALSE(cp->has_value());
    }
  }
  absl::StatusOr<JobRecord> other = store_->GetJob("t", queued.id);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->crash_count, 0);
  EXPECT_EQ(other->state, JobState::kQueued);
  ClaimExpecting(queued);  // the failed job is not claimed again
}

TEST_P(StoreTest, InsertJobWithARequestIdInsertsOnceAndTheTenantLimitCountsActiveJobs) {
  const DatasetRecord d = AddDataset("t");
  const DatasetRecord e = AddDataset("u");
  JobRecord j;
  j.tenant = "t";
  j.dataset_id = d.id;
  j.name = "job";
  j.spec = "spec";
  JobInsertOptions options;
  options.max_active_jobs_per_tenant = 2;
  options.request_id = "r-1";
  options.request_fingerprint = "f1";
  absl::StatusOr<JobRecord> first = store_->InsertJob(j, options);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<JobRecord> retry = store_->InsertJob(j, options);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->id, first->id);
  options.request_fingerprint = "f2";
  EXPECT_EQ(store_->InsertJob(j, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.request_id = "bad id";
  EXPECT_EQ(store_->InsertJob(j, options).status().code(), absl::StatusCode::kInvalidArgument);

  options.request_id = "r-2";
  ASSERT_TRUE(store_->InsertJob(j, options).ok());
  options.request_id = "r-3";
  absl::StatusOr<JobRecord> third = store_->InsertJob(j, options);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "--max-jobs-per-tenant is 2"))
      << third.status();
  // A retry at the limit is answered; another tenant has its own count.
  options.request_id = "r-1";
  options.request_fingerprint = "f1";
  EXPECT_TRUE(store_->InsertJob(j, options).ok());
  JobRecord other = j;
  other.tenant = "u";
  other.dataset_id = e.id;
  EXPECT_TRUE(store_->InsertJob(other, options).ok());  // ids are per tenant
  // A final job frees its place.
  ASSERT_TRUE(store_->RequestCancel("t", first->id).ok());
  options.request_id = "r-3";
  EXPECT_TRUE(store_->InsertJob(j, options).ok());
  absl::StatusOr<Page<JobRecord>> jobs = store_->ListJobs("t", std::nullopt, 0, "");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->items.size(), 3u);
}

// ---- models and CompleteJob

TEST_P(StoreTest, ModelRoundTripIsBitExact) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  const ModelRecord in = MakeModel(13, 4);
  absl::StatusOr<std::string> id = store_->CompleteJob(job.id, in, MakeProgress(10));
  ASSERT_TRUE(id.ok()) << id.status();
  Reopen();
  absl::StatusOr<ModelRecord> m = store_->GetModel("t", *id);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->id, *id);
  EXPECT_EQ(m->tenant, "t");
  EXPECT_EQ(m->job_id, job.id);
  EXPECT_EQ(m->dataset_id, d.id);
  EXPECT_EQ(m->name, "mlp");
  EXPECT_EQ(m->spec, job.spec) << "an empty spec is taken from the job";
  EXPECT_EQ(m->architecture.Describe(), in.architecture.Describe());
  EXPECT_EQ(m->polynomial_degree, 2);
  EXPECT_EQ(m->input_features, 2);
  EXPECT_EQ(m->num_classes, 2);
  EXPECT_GT(m->created_ms, 0);
  ExpectSameBits(m->nominal, in.nominal);
  ASSERT_EQ(m->boxes.size(), 4u);
  for (size_t b = 0; b < 4; ++b) {
    EXPECT_EQ(m->boxes[b].budget.n, in.boxes[b].budget.n);
    EXPECT_EQ(m->boxes[b].budget.label_n, in.boxes[b].budget.label_n);
    ExpectSameBits(m->boxes[b].box.lower, in.boxes[b].box.lower);
    ExpectSameBits(m->boxes[b].box.upper, in.boxes[b].box.upper);
    EXPECT_EQ(Bits(m->boxes[b].total_width), Bits(in.boxes[b].total_width)) << b;
    EXPECT_EQ(Bits(m->boxes[b].max_width), Bits(-0.0)) << b;
  }
}

TEST_F(SqliteStoreTest, CompleteJobIsAllOrNothing) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, MakeState(7, 13, 2), MakeProgress(7)).ok());

  // Make the last write of the transaction (the job's state) fail, after the
  // model and its boxes were inserted.
  RawDb raw(path_);
  raw.Exec(
      "CREATE TRIGGER injected_failure BEFORE UPDATE OF state ON jobs WHEN NEW.state = 3 "
      "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  absl::StatusOr<std::string> failed =
      store_->CompleteJob(job.id, MakeModel(13, 2), MakeProgress(99));
  ExpectStatus(failed.status(), absl::StatusCode::kInternal, {"injected failure"});
  EXPECT_EQ(raw.Int("SELECT count(*) FROM models"), 0);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM model_boxes"), 0);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM checkpoints"), 1);
  absl::StatusOr<JobRecord> still = store_->GetJob("t", job.id);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state, JobState::kRunning);
  EXPECT_EQ(still->progress.iteration, 7);
  EXPECT_TRUE(still->model_id.empty());

  // Inconsistent models are refused before anything is written.
  ModelRecord bad = MakeModel(13, 2);
  bad.boxes[1].box.upper.resize(12);
  ExpectStatus(store_->CompleteJob(job.id, bad, MakeProgress(99)).status(),
               absl::StatusCode::kInvalidArgument, {"box 1", "12", "13"});
  ModelRecord foreign = MakeModel(13, 2);
  foreign.tenant = "someone-else";
  ExpectStatus(store_->CompleteJob(job.id, foreign, MakeProgress(99)).status(),
               absl::StatusCode::kInvalidArgument, {"tenant", job.id});

  // With the obstacle gone the same call succeeds, and everything lands together.
  raw.Exec("DROP TRIGGER injected_failure");
  absl::StatusOr<std::string> ok = store_->CompleteJob(job.id, MakeModel(13, 2), MakeProgress(99));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(raw.Int("SELECT count(*) FROM models"), 1);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM model_boxes"), 2);
  EXPECT_EQ(raw.Int("SELECT count(*) FROM checkpoints"), 0);
  absl::StatusOr<JobRecord> done = store_->GetJob("t", job.id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->model_id, *ok);
  EXPECT_EQ(done->progress.iteration, 99);
}

TEST_P(StoreTest, ReopenKeepsEveryRecord) {
  const DatasetRecord d = AddDataset("t", "keep", MakeData(9, 3, 2));
  const std::string model_id = AddModel("t", d.id);
  const JobRecord queued = AddJob("t", d.id, "queued");
  Reopen();
  absl::StatusOr<DatasetRecord> got_d = store_->GetDataset("t", d.id);
  ASSERT_TRUE(got_d.ok()) << got_d.status();
  EXPECT_EQ(got_d->checksum, d.checksum);
  absl::StatusOr<agt::Dataset> data = store_->LoadDatasetData("t", d.id);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->x.rows(), 9);
  absl::StatusOr<ModelRecord> model = store_->GetModel("t", model_id);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->boxes.size(), 3u);
  absl::StatusOr<JobRecord> job = store_->GetJob("t", queued.id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->name, "queued");
  absl::StatusOr<Page<JobRecord>> jobs = store_->ListJobs("t", std::nullopt, 0, "");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->items.size(), 2u);
}

// ---- concurrency

TEST_P(StoreTest, ConcurrentClaimsNeverHandOutAJobTwice) {
  constexpr int kJobs = 48;
  constexpr int kThreads = 8;
  const DatasetRecord d = AddDataset("t");
  std::set<std::string> all;
  for (int i = 0; i < kJobs; ++i) all.insert(AddJob("t", d.id).id);
  // Two stores over the same database: threads share a connection within a
  // store and contend through the engine's locks across the two (SQLite's
  // write lock; PostgreSQL's row locks, SKIP LOCKED).
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(path_);
  ASSERT_TRUE(second.ok()) << second.status();
  std::mutex mu;
  std::vector<std::string> claimed;
  std::vector<absl::Status> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store* store = t % 2 == 0 ? store_.get() : second->get();
    threads.emplace_back([&, store] {
      for (int guard = 0; guard < 2 * kJobs; ++guard) {
        absl::StatusOr<std::optional<JobRecord>> job = store->ClaimNextQueuedJob();
        std::lock_guard<std::mutex> lock(mu);
        if (!job.ok()) {
          errors.push_back(job.status());
          continue;
        }
        if (!job->has_value()) return;
        claimed.push_back((*job)->id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : errors) ADD_FAILURE() << s;
  std::multiset<std::string> counted(claimed.begin(), claimed.end());
  for (const std::string& id : all) EXPECT_EQ(counted.count(id), 1u) << id;
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  absl::StatusOr<Page<JobRecord>> running = store_->ListJobs("t", JobState::kRunning, 0, "");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->items.size(), static_cast<size_t>(kJobs));
}

// ---- corruption

TEST_F(SqliteStoreTest, CorruptedBlobsAreDataLossNotWrongNumbers) {
  const DatasetRecord d = AddDataset("t");
  const std::string model_id = AddModel("t", d.id);
  const JobRecord job = AddJob("t", d.id);
  ClaimExpecting(job);
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, MakeState(2, 13, 2), MakeProgress(2)).ok());
  RawDb raw(path_);

  raw.FlipByte("datasets", "features", absl::StrCat("id = '", d.id, "'"), 40);
  ExpectStatus(store_->LoadDatasetData("t", d.id).status(), absl::StatusCode::kDataLoss, {d.id});
  EXPECT_TRUE(store_->GetDataset("t", d.id).ok()) << "metadata stays readable";

  raw.FlipByte("checkpoints", "state", absl::StrCat("job_id = '", job.id, "'"), 50);
  ExpectStatus(store_->LoadCheckpoint(job.id).status(), absl::StatusCode::kDataLoss,
               {job.id, "checksum mismatch"});

  raw.FlipByte("model_boxes", "upper", absl::StrCat("model_id = '", model_id, "' AND position = 2"),
               33);
  ExpectStatus(store_->GetModel("t", model_id).status(), absl::StatusCode::kDataLoss,
               {model_id, "box 2"});
  ExpectStatus(store_->ListModels("t", 0, "").status(), absl::StatusCode::kDataLoss, {model_id});

  raw.FlipByte("jobs", "total_width", absl::StrCat("id = '", job.id, "'"), 0);
  ExpectStatus(store_->GetJob("t", job.id).status(), absl::StatusCode::kDataLoss, {job.id});

  // The server keeps working for everything else.
  const DatasetRecord fresh = AddDataset("t");
  EXPECT_TRUE(store_->LoadDatasetData("t", fresh.id).ok());
}

TEST_F(SqliteStoreTest, BlobsThatDisagreeWithTheirRecordAreDataLoss) {
  const DatasetRecord d = AddDataset("t", "d", MakeData(6, 2, 2));
  const DatasetRecord other = AddDataset("t", "o", MakeData(5, 2, 2, 1.0));
  RawDb raw(path_);
  // A well-formed blob of another dataset: every blob checksum is fine, the
  // dataset checksum is not.
  raw.Exec(absl::StrCat("UPDATE datasets SET labels = (SELECT labels FROM datasets WHERE id = '",
                        other.id, "') WHERE id = '", d.id, "'"));
  ExpectStatus(store_->LoadDatasetData("t", d.id).status(), absl::StatusCode::kDataLoss,
               {d.id, "checksum"});
}

// ---- schema 4: legacy bound methods in stored specs

agt::v1::TrainingJobSpec SpecWithBounds(int bound_method, int interval_product) {
  agt::v1::TrainingJobSpec spec;
  spec.set_name("legacy");
  spec.set_dataset_id("ds-x");
  spec.set_batch_size(20);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.add_budgets()->set_n(2);
  spec.set_bound_method(static_cast<agt::v1::BoundMethod>(bound_method));
  spec.set_interval_product(static_cast<agt::v1::IntervalProduct>(interval_product));
  return spec;
}

// Undoes the migrations after schema 3 on a file of the current schema (what
// they added; each later migration adds its undo here).
void DowngradeToSchema3(const std::string& path) {
  RawDb raw(path);
  raw.Exec("DROP TABLE requests");                                      // schema 5
  raw.Exec("DROP TABLE privacy_spenders; DROP TABLE privacy_ledgers");  // schema 6
  raw.Exec("ALTER TABLE jobs DROP COLUMN crash_count");                 // schema 7
  raw.Exec("DROP TABLE job_warnings; DROP TABLE job_width_history");    // schema 8
  raw.Exec("ALTER TABLE datasets DROP COLUMN sample_shape");            // schema 9
  raw.Exec("ALTER TABLE jobs DROP COLUMN lease_owner");                 // schema 10
  raw.Exec("ALTER TABLE jobs DROP COLUMN lease_expires_ms");
  raw.Exec("DROP TABLE model_artifacts");                              // schema 11
  raw.Exec("DROP TABLE job_units");                                    // schema 12
  raw.Exec("ALTER TABLE jobs DROP COLUMN backend");                    // schema 13
  raw.Exec("ALTER TABLE models DROP COLUMN backend");
  raw.Exec("PRAGMA user_version = 3");
}

TEST_F(SqliteStoreTest, MigrationToSchema4RewritesLegacyBoundMethodsInJobsAndModels) {
  ASSERT_GE(Store::SchemaVersion(), 4);
  const DatasetRecord d = AddDataset("t");
  // What a schema-3 server stored: bound_method 2 (INTERVAL_EXACT) and 3
  // (INTERVAL_NGUYEN) carried the product; interval_product did not exist.
  auto add = [&](const std::string& spec) {
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = d.id;
    j.name = "job";
    j.spec = spec;
    absl::StatusOr<JobRecord> stored = store_->InsertJob(j);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? stored->id : "";
  };
  const std::string exact = add(SpecWithBounds(2, 0).SerializeAsString());
  const std::string nguyen = add(SpecWithBounds(3, 0).SerializeAsString());
  const std::string rump = add(SpecWithBounds(1, 0).SerializeAsString());
  const std::string defaults = add(SpecWithBounds(0, 0).SerializeAsString());
  // Not from an old server, but never guessed at: a contradiction stays for
  // the domain to report, bytes that do not parse stay DataLoss.
  const std::string conflict = add(SpecWithBounds(2, 3).SerializeAsString());
  const std::string junk = add(std::string("\xff\xff\x01", 3));
  {
    // The exact job trained a model, which keeps its own copy of the spec.
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
    ASSERT_EQ((*claimed)->id, exact);
    ASSERT_TRUE(store_->CompleteJob(exact, MakeModel(13, 1), MakeProgress(9)).ok());
  }
  std::map<std::string, std::string> before;
  for (const std::string& id : {exact, nguyen, rump, defaults, conflict, junk}) {
    before[id] = store_->GetJob("t", id)->spec;
  }
  // Schema 4 changed no table, so without what later versions added this
  // file is what a schema-3 server wrote.
  store_.reset();
  DowngradeToSchema3(path_);

  Reopen();
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), Store::SchemaVersion());
  auto spec_of = [&](const std::string& id) {
    agt::v1::TrainingJobSpec spec;
    EXPECT_TRUE(spec.ParseFromString(store_->GetJob("t", id)->spec)) << id;
    return spec;
  };
  for (const auto& [id, product] : {std::pair{exact, agt::v1::INTERVAL_PRODUCT_EXACT},
                                    std::pair{nguyen, agt::v1::INTERVAL_PRODUCT_NGUYEN}}) {
    const agt::v1::TrainingJobSpec spec = spec_of(id);
    EXPECT_EQ(spec.bound_method(), agt::v1::BOUND_METHOD_IBP) << id;
    EXPECT_EQ(spec.interval_product(), product) << id;
    // Nothing else moved.
    agt::v1::TrainingJobSpec expected;
    ASSERT_TRUE(expected.ParseFromString(before[id]));
    expected.set_bound_method(agt::v1::BOUND_METHOD_IBP);
    expected.set_interval_product(product);
    EXPECT_EQ(spec.SerializeAsString(), expected.SerializeAsString()) << id;
  }
  for (const std::string& id : {rump, defaults, conflict, junk}) {
    EXPECT_EQ(store_->GetJob("t", id)->spec, before[id]) << id;
  }
  const std::string model_id = store_->GetJob("t", exact)->model_id;
  ASSERT_FALSE(model_id.empty());
  absl::StatusOr<ModelRecord> model = store_->GetModel("t", model_id);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->spec, store_->GetJob("t", exact)->spec);

  // Once only: a second open finds nothing to do.
  const std::string migrated = store_->GetJob("t", exact)->spec;
  Reopen();
  EXPECT_EQ(store_->GetJob("t", exact)->spec, migrated);
}

// ---- schema 6: privacy ledgers per (tenant, root dataset)

// A schema-3..5 server kept epsilon per (model, client) as a double. The
// migration charges each row, rounded up to quanta of 2^-40, to the budget
// of (tenant, root dataset of its model): datasets a retraining derived
// (table retrainings) count as their parent's.
TEST_F(SqliteStoreTest, MigrationToSchema6MovesOldLedgersToTheRootDatasetRoundingUp) {
  ASSERT_GE(Store::SchemaVersion(), 6);
  const DatasetRecord root = AddDataset("t", "root");
  const DatasetRecord other = AddDataset("t", "other");
  const DatasetRecord huge = AddDataset("t", "huge");
  const DatasetRecord theirs = AddDataset("u", "theirs");
  const std::string m1 = AddModel("t", root.id);
  const std::string m1b = AddModel("t", root.id);
  // Retraining of m1 on a derived dataset, and of that successor again.
  auto derive = [&](const std::string& parent) {
    const DatasetRecord derived = AddDataset("t", "derived");
    const std::string successor = AddModel("t", derived.id);
    RetrainingRecord r;
    r.model_id = parent;
    r.job_id = store_->GetModel("t", successor)->job_id;
    r.dataset_id = derived.id;
    EXPECT_TRUE(store_->RecordRetraining("t", r).ok());
    return successor;
  };
  const std::string m2 = derive(m1);
  const std::string m3 = derive(m2);
  const std::string m4 = AddModel("t", other.id);
  const std::string m5 = AddModel("t", huge.id);
  const std::string mu = AddModel("u", theirs.id);
  store_.reset();
  DowngradeToSchema3(path_);
  {
    RawDb raw(path_);
    auto row = [&](const std::string& model, const std::string& client, const std::string& tenant,
                   const std::string& spent, int releases, int ms) {
      raw.Exec(absl::StrCat(
          "INSERT INTO privacy_budgets (model_id, client, tenant, spent, "
          "releases, updated_ms) VALUES ('",
          model, "', '", client, "', '", tenant, "', ", spent, ", ", releases, ", ", ms, ")"));
    };
    row(m1, "app", "t", "0.5", 3, 100);
    row(m1b, "app", "t", "0.25", 1, 200);
    row(m1, "bob", "t", "1e-21", 1, 50);  // vanished in rounding before: now 1 quantum
    row(m2, "app", "t", "0.1", 2, 300);
    row(m3, "carol", "t", "0.3", 1, 400);
    row(m4, "app", "t", "2.0", 5, 10);
    row(m5, "app", "t", "1e30", 1, 10);  // past any total: used up
    row(mu, "app", "u", "1.0", 1, 10);
  }
  Reopen();
  auto quanta = [](double epsilon) { return *agt::ChargeQuanta(epsilon, 1); };
  auto get = [&](const std::string& tenant, const std::string& model, const std::string& client) {
    absl::StatusOr<PrivacySpendRecord> r = store_->GetPrivacySpend(tenant, model, client);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : PrivacySpendRecord();
  };
  const int64_t root_spent = quanta(0.5) + quanta(0.25) + 1 + quanta(0.1) + quanta(0.3);
  for (const std::string& m : {m1, m1b, m2, m3}) {
    const PrivacySpendRecord r = get("t", m, "app");
    EXPECT_EQ(r.dataset_id, root.id) << m;
    EXPECT_EQ(r.spent_quanta, root_spent) << m;
    EXPECT_EQ(r.releases, 8) << m;
    EXPECT_EQ(r.updated_ms, 400) << m;
    EXPECT_EQ(r.client_spent_quanta, quanta(0.5) + quanta(0.25) + quanta(0.1)) << m;
    EXPECT_EQ(r.client_releases, 6) << m;
  }
  // Rounded up: never less than the doubles that were spent.
  EXPECT_GE(std::ldexp(static_cast<long double>(root_spent), -40), 0.5L + 0.25L + 0.1L + 0.3L);
  EXPECT_EQ(get("t", m1, "bob").client_spent_quanta, 1);
  EXPECT_EQ(get("t", m3, "carol").client_spent_quanta, quanta(0.3));
  EXPECT_EQ(get("t", m4, "app").spent_quanta, quanta(2.0));
  EXPECT_EQ(get("t", m4, "app").dataset_id, other.id);
  EXPECT_EQ(get("t", m5, "app").spent_quanta, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(get("u", mu, "app").spent_quanta, quanta(1.0));
  EXPECT_EQ(get("u", mu, "app").dataset_id, theirs.id);

  // New charges land on the same budgets.
  PrivacyCharge charge;
  charge.client = "dave";
  charge.total_quanta = *agt::TotalQuanta(10.0);
  charge.quanta = quanta(0.125);
  charge.releases = 1;
  auto answer = [](const PrivacySpendRecord&) { return std::string(); };
  ASSERT_TRUE(SpendPrivacyBudget(*store_, "t", m3, charge, {}, answer).ok());
  EXPECT_EQ(get("t", m1b, "x").spent_quanta, root_spent + quanta(0.125));
  EXPECT_EQ(SpendPrivacyBudget(*store_, "t", m5, charge, {}, answer).status().code(),
            absl::StatusCode::kResourceExhausted);
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), Store::SchemaVersion());
  EXPECT_EQ(raw.Int("SELECT count(*) FROM privacy_ledgers"), 4);
}

// ---- job leases (several workers on one database)

TEST_P(StoreTest, AnExpiredLeaseIsClaimedAgainFromTheCheckpointAndTheOldWorkerIsFenced) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  store_->SetJobLease(300, 5);
  (*other)->SetJobLease(300, 5);
  ClaimExpecting(job);
  const agt::TrainState state = MakeState(4, 13, 3);
  ASSERT_TRUE(store_->SaveCheckpoint(job.id, state, MakeProgress(4)).ok());
  // While the lease holds, nobody else gets the job.
  absl::StatusOr<std::optional<JobRecord>> early = (*other)->ClaimNextQueuedJob();
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_FALSE(early->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  absl::StatusOr<std::optional<JobRecord>> taken = (*other)->ClaimNextQueuedJob();
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->id, job.id);
  EXPECT_EQ((*taken)->crash_count, 1);
  absl::StatusOr<std::optional<agt::TrainState>> resumed = (*other)->LoadCheckpoint(job.id);
  ASSERT_TRUE(resumed.ok() && resumed->has_value());
  EXPECT_EQ((*resumed)->step, state.step);
  // The first worker wakes up: everything it writes is refused.
  EXPECT_EQ(store_->SaveCheckpoint(job.id, MakeState(9, 13, 3), MakeProgress(9)).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store_->CompleteJob(job.id, MakeModel(13, 3), MakeProgress(9)).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store_->RenewJobLease(job.id).code(), absl::StatusCode::kAborted);
  absl::StatusOr<std::optional<agt::TrainState>> kept = (*other)->LoadCheckpoint(job.id);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ((*kept)->step, state.step);
  absl::StatusOr<std::string> model =
      (*other)->CompleteJob(job.id, MakeModel(13, 3), MakeProgress(9));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(StateOf(job), JobState::kSucceeded);
}

TEST_P(StoreTest, RenewedLeasesAreNotTakenOver) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  store_->SetJobLease(300, 5);
  ClaimExpecting(job);
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(i % 2 == 0 ? store_->RenewJobLease(job.id).ok()
                           : store_->UpdateJobProgress(job.id, MakeProgress(i), 0).ok());
  }
  absl::StatusOr<std::optional<JobRecord>> claimed = (*other)->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_FALSE(claimed->has_value());
}

TEST_P(StoreTest, ReleasingLeasesRequeuesOnlyThisWorkersJobs) {
  const DatasetRecord d = AddDataset("t");
  const JobRecord mine = AddJob("t", d.id, "mine");
  const JobRecord theirs = AddJob("t", d.id, "theirs");
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  ClaimExpecting(mine);
  absl::StatusOr<std::optional<JobRecord>> claimed = (*other)->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->id, theirs.id);
  absl::StatusOr<int> released = store_->ReleaseJobLeases();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1);
  EXPECT_EQ(StateOf(mine), JobState::kQueued);
  EXPECT_EQ(StateOf(theirs), JobState::kRunning);
}

TEST_P(StoreTest, AJobWhoseWorkersKeepDyingIsFailedInsteadOfClaimed) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  store_->SetJobLease(50, 1);
  ClaimExpecting(job);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ClaimExpecting(job);  // crash 1 of at most 1
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_FALSE(claimed->has_value());
  absl::StatusOr<JobRecord> now = store_->GetJob("t", job.id);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->state, JobState::kFailed);
  EXPECT_EQ(now->crash_count, 2);
  EXPECT_TRUE(absl::StrContains(now->error, "died 2 times")) << now->error;
}

// ---- jobs split per budget group (units)

// Claims `job` (the next queued one) with `store` and splits it into
// `groups`.
void SplitRunningJob(Store* store, const JobRecord& job,
                     const std::vector<std::vector<int>>& groups) {
  absl::StatusOr<std::optional<JobRecord>> claimed = store->ClaimNextQueuedJob();
  ASSERT_TRUE(claimed.ok() && claimed->has_value() && (*claimed)->id == job.id);
  const absl::Status split = store->SplitJob(job.id, groups);
  ASSERT_TRUE(split.ok()) << split;
}

std::optional<JobUnitRecord> ClaimUnit(Store* store) {
  absl::StatusOr<std::optional<JobUnitRecord>> unit = store->ClaimNextJobUnit();
  EXPECT_TRUE(unit.ok()) << unit.status();
  return unit.ok() ? *unit : std::nullopt;
}

TEST_P(StoreTest, EachUnitOfASplitJobIsClaimedOnceAndTheJobIsNotClaimedAgain) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  SplitRunningJob(store_.get(), job, {{0, 1}, {2}, {3, 4}});
  EXPECT_EQ(StateOf(job), JobState::kRunning);
  // Split, the job has no lease: it is not a job to claim any more, even
  // once any lease would have expired.
  absl::StatusOr<std::optional<JobRecord>> again = (*other)->ClaimNextQueuedJob();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->has_value());
  std::optional<JobUnitRecord> a = ClaimUnit(store_.get());
  std::optional<JobUnitRecord> b = ClaimUnit(other->get());
  std::optional<JobUnitRecord> c = ClaimUnit(store_.get());
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(ClaimUnit(other->get()).has_value());
  std::set<int> units = {a->unit, b->unit, c->unit};
  EXPECT_EQ(units, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(a->budget_indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(b->budget_indices, (std::vector<int>{2}));
  EXPECT_EQ(c->budget_indices, (std::vector<int>{3, 4}));
  EXPECT_EQ(a->job.id, job.id);
  EXPECT_FALSE(a->checkpoint.has_value());
  EXPECT_FALSE(a->result.has_value());
  // Progress is the units' aggregate: the least iteration, widths in the
  // spec's budget order.
  JobProgressRecord pa = MakeProgress(7);
  pa.total_width = {0.5, 1.5};
  JobProgressRecord pb = MakeProgress(4);
  pb.total_width = {2.5};
  JobProgressRecord pc = MakeProgress(9);
  pc.total_width = {3.5, 4.5};
  ASSERT_TRUE(store_->UpdateJobUnitProgress(job.id, 0, pa, 0).ok());
  ASSERT_TRUE((*other)->UpdateJobUnitProgress(job.id, 1, pb, 0).ok());
  ASSERT_TRUE(store_->UpdateJobUnitProgress(job.id, 2, pc, 3).ok());
  absl::StatusOr<JobRecord> now = store_->GetJob("t", job.id);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->progress.iteration, 4);
  EXPECT_EQ(now->progress.total_width, (std::vector<double>{0.5, 1.5, 2.5, 3.5, 4.5}));
  EXPECT_EQ(now->dropped_rows_per_epoch, 3);
  // A unit's calls by a worker that does not hold it are refused.
  EXPECT_EQ((*other)->UpdateJobUnitProgress(job.id, 0, pa, 0).code(), absl::StatusCode::kAborted);
  // Completions: only the last one is told to complete the job.
  absl::StatusOr<bool> first = store_->CompleteJobUnit(job.id, 2, MakeState(9, 13, 2));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(*first);
  ExpectStatus(store_->LoadJobUnitResults(job.id).status(), absl::StatusCode::kFailedPrecondition,
               {job.id, "no result"});
  absl::StatusOr<bool> second = (*other)->CompleteJobUnit(job.id, 1, MakeState(9, 13, 1));
  ASSERT_TRUE(second.ok() && !*second);
  absl::StatusOr<bool> last = store_->CompleteJobUnit(job.id, 0, MakeState(9, 13, 2));
  ASSERT_TRUE(last.ok() && *last);
  absl::StatusOr<std::vector<JobUnitResult>> results = store_->LoadJobUnitResults(job.id);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_EQ((*results)[1].budget_indices, (std::vector<int>{2}));
  ASSERT_EQ((*results)[2].state.boxes.size(), 2u);
  EXPECT_EQ(EncodeTrainState((*results)[2].state), EncodeTrainState(MakeState(9, 13, 2)));
  ASSERT_TRUE(store_->CompleteJob(job.id, MakeModel(13, 5), MakeProgress(9)).ok());
  EXPECT_EQ(StateOf(job), JobState::kSucceeded);
  // The units went with the job.
  ExpectStatus(store_->UpdateJobUnitProgress(job.id, 0, pa, 0), absl::StatusCode::kNotFound,
               {job.id, "unit 0"});
  EXPECT_FALSE(ClaimUnit(other->get()).has_value());
}

TEST_P(StoreTest, AnExpiredUnitLeaseIsClaimedAgainFromItsCheckpointAndTheOldWorkerIsFenced) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  store_->SetJobLease(300, 5);
  (*other)->SetJobLease(300, 5);
  SplitRunningJob(store_.get(), job, {{0}, {1}});
  std::optional<JobUnitRecord> mine = ClaimUnit(store_.get());
  ASSERT_TRUE(mine.has_value());
  const agt::TrainState state = MakeState(4, 13, 1);
  ASSERT_TRUE(store_->SaveJobUnitCheckpoint(job.id, mine->unit, state, MakeProgress(4)).ok());
  std::optional<JobUnitRecord> second = ClaimUnit(other->get());
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->unit, mine->unit);
  EXPECT_FALSE(ClaimUnit(other->get()).has_value()) << "the lease still holds";
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  // `other` renews its own unit (nobody took it), so only the silent
  // worker's is taken.
  ASSERT_TRUE((*other)->UpdateJobUnitProgress(job.id, second->unit, MakeProgress(2), 0).ok());
  std::optional<JobUnitRecord> taken = ClaimUnit(other->get());
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->unit, mine->unit);
  ASSERT_TRUE(taken->checkpoint.has_value());
  EXPECT_EQ(EncodeTrainState(*taken->checkpoint), EncodeTrainState(state));
  EXPECT_EQ(store_->SaveJobUnitCheckpoint(job.id, mine->unit, MakeState(5, 13, 1), MakeProgress(5))
                .code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store_->CompleteJobUnit(job.id, mine->unit, MakeState(9, 13, 1)).status().code(),
            absl::StatusCode::kAborted);
  // A failure of the job (any unit's) ends every unit.
  ASSERT_TRUE((*other)->FailJob(job.id, "unit failed").ok());
  EXPECT_EQ(StateOf(job), JobState::kFailed);
  EXPECT_EQ((*other)->UpdateJobUnitProgress(job.id, taken->unit, MakeProgress(6), 0).code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, TheLastUnitKeepsItsLeaseUntilTheJobCompletesAndIsResumedWithItsResult) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  absl::StatusOr<std::unique_ptr<Store>> other = Store::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status();
  store_->SetJobLease(300, 5);
  (*other)->SetJobLease(300, 5);
  SplitRunningJob(store_.get(), job, {{0}, {1}});
  std::optional<JobUnitRecord> u0 = ClaimUnit(store_.get());
  std::optional<JobUnitRecord> u1 = ClaimUnit(store_.get());
  ASSERT_TRUE(u0 && u1);
  ASSERT_TRUE(store_->CompleteJobUnit(job.id, u0->unit, MakeState(9, 13, 1)).ok());
  absl::StatusOr<bool> last = store_->CompleteJobUnit(job.id, u1->unit, MakeState(9, 13, 1));
  ASSERT_TRUE(last.ok() && *last);
  // The worker dies before CompleteJob: after the lease, another worker
  // gets the unit back with its result, and a done unit is never claimed.
  EXPECT_FALSE(ClaimUnit(other->get()).has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  std::optional<JobUnitRecord> again = ClaimUnit(other->get());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->unit, u1->unit);
  ASSERT_TRUE(again->result.has_value());
  EXPECT_EQ(EncodeTrainState(*again->result), EncodeTrainState(MakeState(9, 13, 1)));
  EXPECT_FALSE(ClaimUnit(other->get()).has_value());
  absl::StatusOr<bool> still_last = (*other)->CompleteJobUnit(job.id, again->unit, *again->result);
  ASSERT_TRUE(still_last.ok() && *still_last);
}

TEST_P(StoreTest, CancellingASplitJobEndsItsUnits) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  SplitRunningJob(store_.get(), job, {{0}, {1}});
  std::optional<JobUnitRecord> u0 = ClaimUnit(store_.get());
  ASSERT_TRUE(u0.has_value());
  absl::StatusOr<JobRecord> requested = store_->RequestCancel("t", job.id);
  ASSERT_TRUE(requested.ok() && requested->cancel_requested);
  ASSERT_TRUE(store_->MarkCancelled(job.id).ok());
  EXPECT_EQ(StateOf(job), JobState::kCancelled);
  EXPECT_FALSE(ClaimUnit(store_.get()).has_value());
  EXPECT_EQ(store_->UpdateJobUnitProgress(job.id, u0->unit, MakeProgress(1), 0).code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, UnitsOfTheOldestSplitJobAreClaimedFirst) {
  const DatasetRecord d = AddDataset("t");
  std::vector<JobRecord> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(AddJob("t", d.id, absl::StrCat("j", i)));
  // Split in reverse order of creation; job ids are random, so neither
  // the split order nor the ids give the creation order.
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<std::optional<JobRecord>> claimed = store_->ClaimNextQueuedJob();
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
  }
  for (int i = 5; i >= 0; --i) ASSERT_TRUE(store_->SplitJob(jobs[i].id, {{0}, {1}}).ok());
  for (const JobRecord& job : jobs) {
    for (int unit = 0; unit < 2; ++unit) {
      std::optional<JobUnitRecord> claimed = ClaimUnit(store_.get());
      ASSERT_TRUE(claimed.has_value());
      EXPECT_EQ(claimed->job.id, job.id);
      EXPECT_EQ(claimed->unit, unit);
    }
  }
}

TEST_P(StoreTest, SplitRefusesEmptyGroupsAndJobsNotRunning) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  ExpectStatus(store_->SplitJob(job.id, {{0}}), absl::StatusCode::kFailedPrecondition, {job.id});
  ClaimExpecting(job);
  ExpectStatus(store_->SplitJob(job.id, {{0}, {}}), absl::StatusCode::kInvalidArgument,
               {job.id, "unit 1"});
  ExpectStatus(store_->SplitJob(job.id, {}), absl::StatusCode::kInvalidArgument, {job.id});
}

TEST_F(SqliteStoreTest, ARestartSendsUnitsBackToTheQueueWithTheirJob) {
  const JobRecord job = AddJob("t", AddDataset("t").id);
  SplitRunningJob(store_.get(), job, {{0}, {1}});
  std::optional<JobUnitRecord> u0 = ClaimUnit(store_.get());
  ASSERT_TRUE(u0.has_value());
  ASSERT_TRUE(
      store_->SaveJobUnitCheckpoint(job.id, u0->unit, MakeState(3, 13, 1), MakeProgress(3)).ok());
  Reopen();
  absl::StatusOr<JobRecovery> recovered = store_->RecoverAbandonedJobs(5);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->requeued, 1);
  EXPECT_FALSE(ClaimUnit(store_.get()).has_value()) << "units wait for their job";
  ClaimExpecting(job);
  ASSERT_TRUE(store_->SplitJob(job.id, {{0}, {1}}).ok());
  std::optional<JobUnitRecord> back = ClaimUnit(store_.get());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->unit, u0->unit);
  ASSERT_TRUE(back->checkpoint.has_value()) << "the split kept the units";
  EXPECT_EQ(back->checkpoint->step, 3);
}

// ---- PostgreSQL only: the migration table, refusals, the factory

class PostgresStoreTest : public StoreTestBase {
 protected:
  Engine engine() const override { return Engine::kPostgres; }
  std::string Sql(const std::string& sql) { return testing_pg::PostgresServer::RunSql(path_, sql); }
};

TEST_F(PostgresStoreTest, EveryMigrationStepIsARowOfTheMigrationTable) {
  EXPECT_EQ(Sql("SELECT count(*) FROM agt_schema_migrations"),
            absl::StrCat(Store::SchemaVersion()));
  EXPECT_EQ(Sql("SELECT max(version) FROM agt_schema_migrations"),
            absl::StrCat(Store::SchemaVersion()));
  for (int i = 0; i < 2; ++i) Reopen();
  EXPECT_EQ(Sql("SELECT count(*) FROM agt_schema_migrations"),
            absl::StrCat(Store::SchemaVersion()));
  // Blobs are BYTEA, the creation order an identity column.
  EXPECT_EQ(Sql("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'datasets' AND column_name = 'features'"),
            "bytea");
}

TEST_F(PostgresStoreTest, ConcurrentFirstOpensOfOneDatabaseAllSucceed) {
  const std::string fresh = testing_pg::PostgresServer::Get().NewStoreUri();
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = Store::Open(fresh).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(testing_pg::PostgresServer::RunSql(fresh, "SELECT count(*) FROM agt_schema_migrations"),
            absl::StrCat(Store::SchemaVersion()));
}

TEST_F(PostgresStoreTest, ADatabaseFromANewerServerIsRefusedAndLeftAlone) {
  store_.reset();
  ASSERT_EQ(Sql("INSERT INTO agt_schema_migrations VALUES (99, 0)"), "");
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "99")) << store.status();
  EXPECT_EQ(Sql("SELECT count(*) FROM agt_schema_migrations"),
            absl::StrCat(Store::SchemaVersion() + 1));
}

TEST_F(PostgresStoreTest, AnotherApplicationsTablesAreRefused) {
  const std::string other = testing_pg::PostgresServer::Get().NewStoreUri();
  ASSERT_EQ(testing_pg::PostgresServer::RunSql(other, "CREATE TABLE theirs (x int)"), "");
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(other);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "another application")) << store.status();
  EXPECT_EQ(testing_pg::PostgresServer::RunSql(
                other, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"),
            "1");
}

TEST_F(PostgresStoreTest, AnUnreachableServerIsUnavailable) {
  absl::StatusOr<std::unique_ptr<Store>> store =
      Store::Open("postgresql://agt@127.0.0.1:1/none?connect_timeout=2");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
}

TEST(StoreFactoryTest, PostgresUrisAreRecognisedAndPathsAreSqlite) {
  EXPECT_TRUE(Store::IsPostgresTarget("postgresql://u@h:5432/db"));
  EXPECT_TRUE(Store::IsPostgresTarget("postgres://u@h/db"));
  EXPECT_FALSE(Store::IsPostgresTarget("/var/lib/agt/agt.db"));
  EXPECT_FALSE(Store::IsPostgresTarget("postgresql.db"));
}

}  // namespace
}  // namespace agt::server
