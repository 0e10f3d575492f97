// The ledgers (domain/ledgers.h over the store's primitives), on SQLite and on
// PostgreSQL. Deletions (AppendDeletions and friends):
// accepted up to max N then refused, refused rows stay recorded, bad ids
// change nothing, the ledger survives a reopen, and concurrent requests never
// double-count or lose a row nor push d past max N. Privacy budgets
// (SpendPrivacyBudget over Store::DebitPrivacyBudget): exact quanta, all or
// nothing up to the total,
// one budget per tenant and root dataset (shared by tokens, models and
// retrainings on derived datasets), idempotent request ids, across a reopen,
// and never overspent by concurrent spenders on two connections to the
// database (two processes, or two replicas on one PostgreSQL).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/privacy/budget.h"
#include "server/domain/ledgers.h"
#include "server/store/store.h"
#include "tests/server/postgres_fixture.h"

namespace agt::server {
namespace {

namespace fs = std::filesystem;

constexpr int kRows = 200;

agt::Dataset MakeData(int rows) {
  agt::Dataset d;
  d.x = Matrix(rows, 2);
  d.y = Vector(rows);
  for (int r = 0; r < rows; ++r) {
    d.x(r, 0) = r * 0.5;
    d.x(r, 1) = -r * 0.25;
    d.y[r] = r % 2;
  }
  d.num_classes = 2;
  return d;
}

ModelRecord MakeModel() {
  ModelRecord m;
  m.name = "linear";
  m.architecture = ModelSpec::Mlp({2, 1});
  m.input_features = 2;
  m.num_classes = 2;
  m.nominal = Vector::Zero(3);
  for (int n : {1, 2, 5}) {
    BoxRecord box;
    box.budget = {n, 0};
    box.box.lower = Vector::Constant(3, -1.0);
    box.box.upper = Vector::Constant(3, 1.0);
    m.boxes.push_back(box);
  }
  return m;
}

using testing_pg::Engine;

// Every case runs on both engines (an SQLite file; a fresh schema of the
// tests' PostgreSQL server, postgres_fixture.h), except the SQLite file
// migrations.
class DeletionLedgerTest : public testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string name = absl::StrCat("agt_ledger_", info->name(), "_", ::getpid());
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string skip;
    path_ = testing_pg::FreshStoreTarget(GetParam(), dir_.string(), &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    Reopen();
    DatasetRecord d;
    d.tenant = "t";
    d.name = "data";
    absl::StatusOr<DatasetRecord> dataset = store_->InsertDataset(d, MakeData(kRows));
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = dataset->id;
    j.name = "job";
    j.spec = "spec";
    absl::StatusOr<JobRecord> job = store_->InsertJob(j);
    ASSERT_TRUE(job.ok()) << job.status();
    job_id_ = job->id;
    ASSERT_TRUE(store_->ClaimNextQueuedJob().ok());
    absl::StatusOr<std::string> model = store_->CompleteJob(job->id, MakeModel(), {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_id_ = *model;
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
  // Batches of `batch_size` (default: one batch of every row, so per batch
  // is in total).
  absl::StatusOr<agt::DeletionDecision> Delete(const std::vector<int64_t>& rows,
                                               const std::vector<int>& budgets = {1, 2, 5},
                                               int batch_size = kRows) {
    absl::StatusOr<DeletionAppend> done =
        Append(rows, budgets, batch_size, RequestTag{}, nullptr);
    if (!done.ok()) return done.status();
    if (!done->decision.has_value()) return absl::InternalError("no decision without a tag");
    return *done->decision;
  }
  absl::StatusOr<DeletionAppend> Append(
      const std::vector<int64_t>& rows, const std::vector<int>& budgets, int batch_size,
      const RequestTag& tag,
      const std::function<std::string(const agt::DeletionDecision&)>& answer_of) {
    absl::StatusOr<agt::BatchPlan> plan = agt::BatchPlan::Create(kRows, batch_size);
    if (!plan.ok()) return plan.status();
    return AppendDeletions(*store_, "t", model_id_, budgets, *plan, rows, "alice", tag, answer_of);
  }
  int64_t D() {
    absl::StatusOr<int64_t> d = store_->CountAcceptedDeletions("t", model_id_);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : -1;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  std::string model_id_;
  std::string job_id_;
};

TEST_P(DeletionLedgerTest, SchemaVersionThreeHasBothLedgers) {
  if (GetParam() != Engine::kSqlite) GTEST_SKIP() << "an SQLite file migration";
  EXPECT_GE(Store::SchemaVersion(), 3);
}

TEST_P(DeletionLedgerTest, AVersionOneDatabaseMigratesAndKeepsItsModels) {
  if (GetParam() != Engine::kSqlite) GTEST_SKIP() << "an SQLite file migration";
  store_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "DROP TABLE privacy_budgets; DROP TABLE deletions; DROP TABLE "
                         "retrainings; PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // And what later versions added, where this build has it (schema 5: the
  // requests; 6: the privacy ledgers; 7: crash counts; 8: job warnings and
  // width histories; 9: dataset sample shapes; 10: job leases; 11: model
  // artifacts; 12: job units; 13: the backends of jobs and models).
  for (const char* undo :
       {"DROP TABLE IF EXISTS requests", "DROP TABLE IF EXISTS privacy_spenders",
        "DROP TABLE IF EXISTS privacy_ledgers", "ALTER TABLE jobs DROP COLUMN crash_count",
        "DROP TABLE IF EXISTS job_warnings", "DROP TABLE IF EXISTS job_width_history",
        "ALTER TABLE datasets DROP COLUMN sample_shape", "ALTER TABLE jobs DROP COLUMN lease_owner",
        "ALTER TABLE jobs DROP COLUMN lease_expires_ms", "DROP TABLE IF EXISTS model_artifacts",
        "DROP TABLE IF EXISTS job_units", "ALTER TABLE jobs DROP COLUMN backend",
        "ALTER TABLE models DROP COLUMN backend"}) {
    sqlite3_exec(raw, undo, nullptr, nullptr, nullptr);
  }
  sqlite3_close(raw);
  Reopen();
  absl::StatusOr<agt::DeletionDecision> d = Delete({1});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->accepted);
  EXPECT_EQ(D(), 1);
}

TEST_P(DeletionLedgerTest, AcceptsUpToMaxNThenReportsRetrainingRequired) {
  absl::StatusOr<agt::DeletionDecision> first = Delete({3, 3, 7});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->accepted);
  EXPECT_EQ(first->after.total, 2);
  EXPECT_EQ(first->duplicate_count, 1);
  absl::StatusOr<agt::DeletionDecision> second = Delete({7, 8, 9, 10});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->accepted);
  EXPECT_EQ(second->after.total, 5);
  EXPECT_EQ(second->duplicate_count, 1);
  absl::StatusOr<agt::DeletionDecision> third = Delete({11});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_FALSE(third->accepted);
  EXPECT_TRUE(third->retraining_required());
  EXPECT_EQ(D(), 5);
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store_->ListDeletions("t", model_id_);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  ASSERT_EQ(ledger->size(), 6u);
  EXPECT_EQ(ledger->back().row_id, 11);
  EXPECT_FALSE(ledger->back().accepted);
  EXPECT_EQ(ledger->front().requested_by, "alice");
  EXPECT_GT(ledger->front().requested_ms, 0);
}

TEST_P(DeletionLedgerTest, ARefusedRowIsAcceptedByALaterRequestThatFits) {
  ASSERT_TRUE(Delete({0, 1}, {3}).ok());
  absl::StatusOr<agt::DeletionDecision> refused = Delete({2, 3}, {3});
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->accepted);
  absl::StatusOr<agt::DeletionDecision> fits = Delete({3}, {3});
  ASSERT_TRUE(fits.ok());
  EXPECT_TRUE(fits->accepted);
  EXPECT_EQ(D(), 3);
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store_->ListDeletions("t", model_id_);
  ASSERT_TRUE(ledger.ok());
  ASSERT_EQ(ledger->size(), 4u);
  EXPECT_FALSE((*ledger)[2].accepted);  // row 2
  EXPECT_TRUE((*ledger)[3].accepted);   // row 3
}

TEST_P(DeletionLedgerTest, AnUnknownRowIsInvalidArgumentAndChangesNothing) {
  ASSERT_TRUE(Delete({4}).ok());
  absl::StatusOr<agt::DeletionDecision> bad = Delete({5, kRows});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), absl::StrCat(kRows)))
      << bad.status().message();
  EXPECT_EQ(Delete({-1}).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store_->ListDeletions("t", model_id_);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ(ledger->size(), 1u);
}

TEST_P(DeletionLedgerTest, AnotherTenantsModelIsNotFound) {
  absl::StatusOr<agt::BatchPlan> plan = agt::BatchPlan::Create(kRows, 10);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(AppendDeletions(*store_, "u", model_id_, {1}, *plan, {1}, "x").status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(store_->ListDeletions("u", model_id_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->CountAcceptedDeletions("t", "mdl-unknown").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRetraining("u", model_id_).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(DeletionLedgerTest, TheLedgerPagesInRowOrderWithoutRepeatsOrGaps) {
  ASSERT_TRUE(Delete({9, 0, 4, 150, 3, 2, 1, 8, 7, 6, 5, 199}, {10}).ok());  // 12 > 10: refused
  ASSERT_TRUE(Delete({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10}).ok());            // now fits: accepted
  std::vector<int64_t> rows;
  std::vector<bool> accepted;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<Page<DeletionRecord>> page = store_->ListDeletionPage("t", model_id_, 5, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->items.size(), 5u);
    for (const DeletionRecord& r : page->items) {
      rows.push_back(r.row_id);
      accepted.push_back(r.accepted);
      EXPECT_EQ(r.requested_by, "alice");
    }
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 150, 199}));
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(accepted[i], rows[i] < 10) << rows[i];
  // Default page size takes everything here; a token of another listing, a
  // foreign tenant and an unknown model are refused.
  absl::StatusOr<Page<DeletionRecord>> all = store_->ListDeletionPage("t", model_id_, 0, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), 12u);
  EXPECT_TRUE(all->next_page_token.empty());
  DatasetRecord d;
  d.tenant = "t";
  d.name = "another";
  ASSERT_TRUE(store_->InsertDataset(d, MakeData(3)).ok());
  EXPECT_EQ(store_->ListDeletionPage("t", model_id_, 5, "bogus").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<Page<DatasetRecord>> datasets = store_->ListDatasets("t", 1, "");
  ASSERT_TRUE(datasets.ok());
  ASSERT_FALSE(datasets->next_page_token.empty());
  EXPECT_EQ(store_->ListDeletionPage("t", model_id_, 5, datasets->next_page_token).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListDeletionPage("t", model_id_, -1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListDeletionPage("u", model_id_, 5, "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListDeletionPage("t", "mdl-unknown", 5, "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(DeletionLedgerTest, TheLedgerAndTheRetrainingSurviveAReopen) {
  ASSERT_TRUE(Delete({1, 2}).ok());
  ASSERT_TRUE(Delete({3, 4, 5, 6}).ok());  // refused: 2 + 4 > 5
  RetrainingRecord r;
  r.model_id = model_id_;
  r.job_id = job_id_;
  r.dataset_id = "ds-derived";
  ASSERT_TRUE(store_->RecordRetraining("t", r).ok());
  Reopen();
  EXPECT_EQ(D(), 2);
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store_->ListDeletions("t", model_id_);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ(ledger->size(), 6u);
  absl::StatusOr<std::optional<RetrainingRecord>> back = store_->GetRetraining("t", model_id_);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->job_id, job_id_);
  EXPECT_EQ((*back)->dataset_id, "ds-derived");
  EXPECT_EQ(store_->RecordRetraining("u", r).code(), absl::StatusCode::kNotFound);
}

TEST_P(DeletionLedgerTest, DeletionsCountPerBatchOfTheTraining) {
  // 10 batches of 20: two rows in each batch fit max N = 2, 20 rows in all.
  std::vector<int64_t> spread;
  for (int64_t k = 0; k < 10; ++k) spread.insert(spread.end(), {20 * k + 3, 20 * k + 11});
  absl::StatusOr<agt::DeletionDecision> d = Delete(spread, {1, 2}, 20);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->accepted);
  EXPECT_EQ(d->after.total, 20);
  EXPECT_EQ(d->after.max_per_batch, 2);
  EXPECT_EQ(D(), 20);
  // A third row of batch 4 is refused, and recorded as such.
  absl::StatusOr<agt::DeletionDecision> third = Delete({85}, {1, 2}, 20);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->retraining_required());
  EXPECT_EQ(third->after.fullest_batch, 4);
  EXPECT_EQ(D(), 20);
  absl::StatusOr<std::vector<DeletionRecord>> ledger = store_->ListDeletions("t", model_id_);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ(ledger->size(), 21u);
}

TEST_P(DeletionLedgerTest, ARetriedRequestIdReturnsTheFirstAnswerAndRecordsNothingTwice) {
  const RequestTag tag{"del-1", "fingerprint-a"};
  auto answer = [](const agt::DeletionDecision& d) {
    return absl::StrCat("accepted=", d.accepted, " total=", d.after.total);
  };
  absl::StatusOr<DeletionAppend> first = Append({1, 2, 3}, {5}, kRows, tag, answer);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->decision.has_value());
  EXPECT_EQ(first->answer, "accepted=1 total=3");
  // Other rows were deleted in between: the retry still answers the first time.
  ASSERT_TRUE(Delete({4}, {5}).ok());
  Reopen();
  absl::StatusOr<DeletionAppend> again = Append({1, 2, 3}, {5}, kRows, tag, answer);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->decision.has_value());
  EXPECT_EQ(again->answer, "accepted=1 total=3");
  EXPECT_EQ(D(), 4);
  absl::StatusOr<std::optional<std::string>> found =
      store_->FindRequest("t", RequestKind::kDeletion, tag);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->value_or(""), "accepted=1 total=3");
  // The same id for another request is refused and changes nothing.
  absl::StatusOr<DeletionAppend> other =
      Append({7}, {5}, kRows, RequestTag{"del-1", "fingerprint-b"}, answer);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(D(), 4);
  // An invalid row id stores no answer: a corrected retry under the same id
  // is decided anew.
  const RequestTag bad{"del-2", "fingerprint-c"};
  EXPECT_EQ(Append({kRows}, {5}, kRows, bad, answer).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::optional<std::string>> none =
      store_->FindRequest("t", RequestKind::kDeletion, bad);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_P(DeletionLedgerTest, ConcurrentOverlappingRequestsCountEveryDistinctRowOnce) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::set<int64_t> distinct;
  std::vector<std::vector<int64_t>> requests(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int64_t r = t * 10; r < t * 10 + 25; ++r) requests[t].push_back(r);
    distinct.insert(requests[t].begin(), requests[t].end());
  }
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t r : requests[t]) {
        if (!Delete({r}, {1000}).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(D(), static_cast<int64_t>(distinct.size()));
}

TEST_P(DeletionLedgerTest, ConcurrentRequestsNeverAcceptPastMaxN) {
  constexpr int kThreads = 8;
  constexpr int kMaxN = 20;
  std::atomic<int64_t> newly_accepted{0};
  std::atomic<int64_t> largest_d{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t r = t * 3; r < t * 3 + 12; ++r) {
        absl::StatusOr<agt::DeletionDecision> d = Delete({r, r + 1}, {kMaxN});
        if (!d.ok()) continue;
        if (d->accepted) {
          newly_accepted += static_cast<int64_t>(d->new_rows.size());
          int64_t seen = largest_d.load();
          while (d->after.total > seen && !largest_d.compare_exchange_weak(seen, d->after.total)) {
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(largest_d.load(), kMaxN);
  EXPECT_EQ(D(), newly_accepted.load());
  EXPECT_LE(D(), kMaxN);
}

// ---- privacy budgets (one per tenant and root dataset, in quanta of 2^-40)

int64_t Quanta(double epsilon, int64_t labels = 1) {
  absl::StatusOr<int64_t> q = agt::ChargeQuanta(epsilon, labels);
  EXPECT_TRUE(q.ok()) << q.status();
  return q.ok() ? *q : -1;
}

class PrivacyLedgerTest : public DeletionLedgerTest {
 protected:
  // Charges `labels` x epsilon for `client` against a total, with an
  // optional request tag; the stored answer names the spent quanta after it.
  absl::StatusOr<PrivacySpendResult> Spend(const std::string& client, double total,
                                           double epsilon, int64_t labels,
                                           const RequestTag& tag = {},
                                           const std::string& model = "",
                                           const std::string& tenant = "t",
                                           Store* store = nullptr) {
    absl::StatusOr<int64_t> total_quanta = agt::TotalQuanta(total);
    if (!total_quanta.ok()) return total_quanta.status();
    absl::StatusOr<int64_t> quanta = agt::ChargeQuanta(epsilon, labels);
    if (!quanta.ok()) return quanta.status();
    PrivacyCharge charge;
    charge.client = client;
    charge.total_quanta = *total_quanta;
    charge.quanta = *quanta;
    charge.releases = labels;
    ++answers_asked_;
    return SpendPrivacyBudget(*(store ? store : store_.get()), tenant,
                              model.empty() ? model_id_ : model, charge, tag,
                              [](const PrivacySpendRecord& r) {
                                return absl::StrCat("answer after ", r.spent_quanta);
                              });
  }
  PrivacySpendRecord Get(const std::string& client, const std::string& model = "") {
    absl::StatusOr<PrivacySpendRecord> r =
        store_->GetPrivacySpend("t", model.empty() ? model_id_ : model, client);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : PrivacySpendRecord();
  }
  // A second model of tenant t trained on `dataset_id`.
  std::string AddModel(const std::string& dataset_id) {
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = dataset_id;
    j.name = "job";
    j.spec = "spec";
    absl::StatusOr<JobRecord> job = store_->InsertJob(j);
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(store_->ClaimNextQueuedJob().ok());
    absl::StatusOr<std::string> model = store_->CompleteJob(job->id, MakeModel(), {});
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *model : "";
  }
  std::string DatasetOf(const std::string& model) { return store_->GetModel("t", model)->dataset_id; }

  int answers_asked_ = 0;
};

TEST_P(PrivacyLedgerTest, SpendsAreAllOrNothingUpToTheExactTotal) {
  PrivacySpendRecord r = Get("app");
  EXPECT_EQ(r.spent_quanta, 0);
  EXPECT_EQ(r.releases, 0);
  EXPECT_EQ(r.updated_ms, 0);
  EXPECT_EQ(r.dataset_id, DatasetOf(model_id_));
  absl::StatusOr<PrivacySpendResult> s = Spend("app", 1.0, 0.25, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->replayed);
  EXPECT_EQ(s->record.spent_quanta, Quanta(0.75));
  EXPECT_EQ(s->record.releases, 3);
  EXPECT_EQ(s->record.client_spent_quanta, Quanta(0.75));
  EXPECT_GT(s->record.updated_ms, 0);
  EXPECT_EQ(s->response, absl::StrCat("answer after ", Quanta(0.75)));
  s = Spend("app", 1.0, 0.25, 2);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  for (const char* part : {"app", "0.5", "0.25", "quanta", "nothing was spent", "dataset"}) {
    EXPECT_TRUE(absl::StrContains(s.status().message(), part)) << part << ": " << s.status();
  }
  r = Get("app");
  EXPECT_EQ(r.spent_quanta, Quanta(0.75));
  EXPECT_EQ(r.releases, 3);
  s = Spend("app", 1.0, 0.25, 1);  // exactly the total
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->record.spent_quanta, int64_t{1} << 40);
  // The budget is the tenant's, not the client's: another token is refused.
  s = Spend("other", 1.0, agt::kEpsilonQuantum, 1);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Spend("third", 0.0, 1e-9, 1).status().code(), absl::StatusCode::kResourceExhausted);
  r = Get("other");
  EXPECT_EQ(r.spent_quanta, int64_t{1} << 40);
  EXPECT_EQ(r.client_spent_quanta, 0);
  EXPECT_EQ(r.releases, 4);
  EXPECT_EQ(r.client_releases, 0);
}

TEST_P(PrivacyLedgerTest, TokensAndModelsOfOneDatasetShareOneBudgetAndTenantsDoNot) {
  const std::string second = AddModel(DatasetOf(model_id_));
  ASSERT_TRUE(Spend("app one", 1.0, 0.5, 1).ok());
  ASSERT_TRUE(Spend("app two", 1.0, 0.25, 1, {}, second).ok());
  PrivacySpendRecord r = Get("app one", second);
  EXPECT_EQ(r.spent_quanta, Quanta(0.75));
  EXPECT_EQ(r.client_spent_quanta, Quanta(0.5));
  EXPECT_EQ(Spend("app two", 1.0, 0.5, 1).status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(Spend("app two", 1.0, 0.25, 1).ok());
  EXPECT_EQ(Get("x", second).spent_quanta, int64_t{1} << 40);
  // A model of another dataset of the same tenant has its own budget.
  DatasetRecord d;
  d.tenant = "t";
  d.name = "other rows";
  absl::StatusOr<DatasetRecord> other = store_->InsertDataset(d, MakeData(20));
  ASSERT_TRUE(other.ok());
  const std::string elsewhere = AddModel(other->id);
  EXPECT_EQ(Get("app one", elsewhere).spent_quanta, 0);
  EXPECT_TRUE(Spend("app one", 1.0, 1.0, 1, {}, elsewhere).ok());
  // Another tenant never sees the model, let alone the budget.
  EXPECT_EQ(Spend("app", 1.0, 0.5, 1, {}, model_id_, "u").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(PrivacyLedgerTest, ARetrainingOnADerivedDatasetDrawsOnTheRootBudget) {
  // What servers before issue 17 did: the retraining of model_id_ trained
  // on a derived copy of its dataset; and a retraining of that successor.
  auto derive = [&](const std::string& parent_model) {
    DatasetRecord d;
    d.tenant = "t";
    d.name = "without deleted rows";
    absl::StatusOr<DatasetRecord> derived = store_->InsertDataset(d, MakeData(kRows - 1));
    EXPECT_TRUE(derived.ok());
    const std::string successor = AddModel(derived->id);
    RetrainingRecord retraining;
    retraining.model_id = parent_model;
    retraining.job_id = store_->GetModel("t", successor)->job_id;
    retraining.dataset_id = derived->id;
    EXPECT_TRUE(store_->RecordRetraining("t", retraining).ok());
    return successor;
  };
  const std::string successor = derive(model_id_);
  const std::string grandchild = derive(successor);
  ASSERT_NE(DatasetOf(grandchild), DatasetOf(model_id_));
  ASSERT_TRUE(Spend("app", 2.0, 0.5, 2).ok());
  ASSERT_TRUE(Spend("app", 2.0, 0.5, 1, {}, grandchild).ok());
  for (const std::string& m : {model_id_, successor, grandchild}) {
    const PrivacySpendRecord r = Get("app", m);
    EXPECT_EQ(r.dataset_id, DatasetOf(model_id_)) << m;
    EXPECT_EQ(r.spent_quanta, Quanta(1.5)) << m;
  }
  EXPECT_EQ(Spend("app", 2.0, 0.25, 3, {}, successor).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Since issue 17 a retraining keeps the original dataset id: a retraining
  // record that names the model's own dataset is no step at all, even when
  // it is the oldest record naming that dataset.
  RetrainingRecord in_place;
  in_place.model_id = grandchild;
  in_place.job_id = store_->GetModel("t", grandchild)->job_id;
  in_place.dataset_id = DatasetOf(grandchild);
  in_place.requested_ms = 1;
  ASSERT_TRUE(store_->RecordRetraining("t", in_place).ok());
  EXPECT_EQ(Get("app", grandchild).dataset_id, DatasetOf(model_id_));
}

TEST_P(PrivacyLedgerTest, ARetriedRequestIdIsAnsweredFromTheLedgerAndChargedOnce) {
  const RequestTag tag{"req-1", "fingerprint-a"};
  absl::StatusOr<PrivacySpendResult> first = Spend("app", 1.0, 0.125, 2, tag);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed);
  absl::StatusOr<std::optional<std::string>> found =
      store_->FindRequest("t", RequestKind::kPrivatePredict, tag);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, first->response);
  for (int retry = 0; retry < 3; ++retry) {
    absl::StatusOr<PrivacySpendResult> again = Spend("app", 1.0, 0.125, 2, tag);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->replayed);
    EXPECT_EQ(again->response, first->response);
  }
  EXPECT_EQ(Get("app").spent_quanta, Quanta(0.25));
  EXPECT_EQ(Get("app").releases, 2);
  // The same id for other content is refused and charges nothing.
  absl::StatusOr<PrivacySpendResult> other = Spend("app", 1.0, 0.125, 2, {"req-1", "b"});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(other.status().message(), "req-1")) << other.status();
  // A refused charge stores no answer: the retry after the total is raised
  // is a new request.
  const RequestTag big{"req-2", "f"};
  EXPECT_EQ(Spend("app", 1.0, 1.0, 1, big).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store_->FindRequest("t", RequestKind::kPrivatePredict, big)->has_value());
  absl::StatusOr<PrivacySpendResult> later = Spend("app", 2.0, 1.0, 1, big);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_FALSE(later->replayed);
  EXPECT_EQ(Get("app").spent_quanta, Quanta(1.25));
}

TEST_P(PrivacyLedgerTest, BadSpendsChangeNothing) {
  PrivacyCharge charge;
  charge.client = "app";
  charge.total_quanta = int64_t{10} << 40;
  auto spend = [&](PrivacyCharge c, const std::string& tenant = "t",
                   const std::string& model = "") {
    return SpendPrivacyBudget(*store_, tenant, model.empty() ? model_id_ : model, c, {},
                              [](const PrivacySpendRecord&) { return std::string("x"); })
        .status()
        .code();
  };
  charge.quanta = 5;
  charge.releases = 0;
  EXPECT_EQ(spend(charge), absl::StatusCode::kInvalidArgument);
  charge.releases = 1;
  for (int64_t q : {int64_t{0}, int64_t{-1}}) {
    charge.quanta = q;
    EXPECT_EQ(spend(charge), absl::StatusCode::kInvalidArgument) << q;
  }
  charge.quanta = 5;
  charge.total_quanta = -1;
  EXPECT_EQ(spend(charge), absl::StatusCode::kInvalidArgument);
  charge.total_quanta = int64_t{10} << 40;
  EXPECT_EQ(spend(charge, "u"), absl::StatusCode::kNotFound);
  EXPECT_EQ(spend(charge, "t", "mdl-unknown"), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetPrivacySpend("u", model_id_, "app").status().code(),
            absl::StatusCode::kNotFound);
  const PrivacySpendRecord r = Get("app");
  EXPECT_EQ(r.spent_quanta, 0);
  EXPECT_EQ(r.updated_ms, 0);
}

TEST_P(PrivacyLedgerTest, SpendsSurviveAReopenAndALoweredTotalLeavesNothing) {
  ASSERT_TRUE(Spend("app", 5.0, 0.375, 4).ok());
  Reopen();
  PrivacySpendRecord r = Get("app");
  EXPECT_EQ(r.spent_quanta, Quanta(1.5));
  EXPECT_EQ(r.releases, 4);
  EXPECT_EQ(r.client_releases, 4);
  const absl::Status lowered = Spend("app", 1.0, 0.125, 1).status();
  EXPECT_EQ(lowered.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(lowered.message(), "used up")) << lowered;
}

TEST_P(PrivacyLedgerTest, ConcurrentSpendersOnTwoConnectionsNeverOverspend) {
  // A second Store on the same file is a second SQLite connection, as
  // another process would have.
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(path_);
  ASSERT_TRUE(second.ok()) << second.status();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::atomic<int> granted{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store* store = t % 2 == 0 ? store_.get() : second->get();
    threads.emplace_back([&, store, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every other request carries an id; two threads retry each id.
        RequestTag tag;
        if (i % 2 == 0) tag = {absl::StrCat("r", t / 2, "-", i), "f"};
        absl::StatusOr<PrivacySpendResult> r =
            Spend(absl::StrCat("client", t % 3), 2.0, 0.0625, 1, tag, "", "t", store);
        if (r.ok()) {
          if (!r->replayed) ++granted;
          if (r->record.spent_quanta > (int64_t{2} << 40)) ++unexpected;
        } else if (!absl::IsResourceExhausted(r.status())) {
          ++unexpected;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(granted.load(), 32);  // 32 x 1/16 = 2, exactly
  const PrivacySpendRecord r = Get("client0");
  EXPECT_EQ(r.spent_quanta, int64_t{2} << 40);
  EXPECT_EQ(r.releases, 32);
}


// ---- DeleteModel and DeleteJob: what a ledger keeps alive

TEST_P(PrivacyLedgerTest, DeletingAModelKeepsItsDatasetsPrivacyBudget) {
  ASSERT_TRUE(Spend("app", 2.0, 0.5, 3).ok());  // 1.5 of 2.0
  const std::string dataset = DatasetOf(model_id_);
  ASSERT_TRUE(store_->DeleteModel("t", model_id_).ok());
  EXPECT_EQ(store_->GetModel("t", model_id_).status().code(), absl::StatusCode::kNotFound);
  // The same data trained again: its budget is what was left.
  const std::string again = AddModel(dataset);
  EXPECT_EQ(Get("app", again).spent_quanta, Quanta(1.5));
  EXPECT_EQ(Spend("app", 2.0, 0.5, 2, {}, again).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Spend("app", 2.0, 0.5, 1, {}, again).ok());
  // Twice, or by another tenant: NotFound; the job that made it stays.
  EXPECT_EQ(store_->DeleteModel("t", model_id_).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteModel("u", again).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetModel("t", again).ok());
  EXPECT_TRUE(store_->GetJob("t", job_id_).ok());
}

TEST_P(PrivacyLedgerTest, AModelThatLinksACompactedCopyToItsRootBudgetCannotBeDeleted) {
  // A retraining of servers before issue 17: the successor trained on a
  // compacted copy, whose budget is found through model_id_.
  DatasetRecord d;
  d.tenant = "t";
  d.name = "without deleted rows";
  absl::StatusOr<DatasetRecord> derived = store_->InsertDataset(d, MakeData(kRows - 1));
  ASSERT_TRUE(derived.ok());
  const std::string successor = AddModel(derived->id);
  RetrainingRecord retraining;
  retraining.model_id = model_id_;
  retraining.job_id = store_->GetModel("t", successor)->job_id;
  retraining.dataset_id = derived->id;
  ASSERT_TRUE(store_->RecordRetraining("t", retraining).ok());
  ASSERT_TRUE(Spend("app", 1.0, 0.25, 3, {}, successor).ok());

  const absl::Status refused = store_->DeleteModel("t", model_id_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), derived->id)) << refused;
  EXPECT_TRUE(store_->GetModel("t", model_id_).ok());
  // The leaf goes, and so does its job; the lineage record stays, so a model
  // trained again on the copy still spends from the root's budget.
  ASSERT_TRUE(store_->DeleteModel("t", successor).ok());
  ASSERT_TRUE(store_->DeleteJob("t", retraining.job_id).ok());
  const std::string again = AddModel(derived->id);
  EXPECT_EQ(Get("app", again).dataset_id, DatasetOf(model_id_));
  EXPECT_EQ(Get("app", again).spent_quanta, Quanta(0.75));
  EXPECT_EQ(Spend("app", 1.0, 0.5, 1, {}, again).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// A QUEUED in-place retraining job of model_id_, recorded as its retraining.
class DeleteModelTest : public PrivacyLedgerTest {
 protected:
  absl::StatusOr<JobRecord> AddInPlaceRetraining() {
    JobRecord j;
    j.tenant = "t";
    j.dataset_id = DatasetOf(model_id_);
    j.name = "retraining";
    j.spec = "spec";
    absl::StatusOr<JobRecord> job = store_->InsertJob(j);
    if (!job.ok()) return job.status();
    RetrainingRecord in_place;
    in_place.model_id = model_id_;
    in_place.job_id = job->id;
    in_place.dataset_id = DatasetOf(model_id_);
    if (absl::Status s = store_->RecordRetraining("t", in_place); !s.ok()) return s;
    return job;
  }
};

TEST_P(DeleteModelTest, ALiveRetrainingBlocksDeletingItsModelAndTheLedgerGoesWithIt) {
  ASSERT_TRUE(Delete({1, 2}).ok());
  absl::StatusOr<JobRecord> job = AddInPlaceRetraining();
  ASSERT_TRUE(job.ok()) << job.status();

  for (bool running : {false, true}) {
    if (running) {
      ASSERT_TRUE(store_->ClaimNextQueuedJob().ok());
    }
    const absl::Status refused = store_->DeleteModel("t", model_id_);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_TRUE(absl::StrContains(refused.message(), job->id)) << refused;
    EXPECT_TRUE(absl::StrContains(refused.message(), running ? "RUNNING" : "QUEUED")) << refused;
    EXPECT_EQ(D(), 2);
    // A running job is not deleted either.
    EXPECT_EQ(store_->DeleteJob("t", job->id).code(), absl::StatusCode::kFailedPrecondition);
  }
  ASSERT_TRUE(store_->RequestCancel("t", job->id).ok());
  ASSERT_TRUE(store_->MarkCancelled(job->id).ok());
  ASSERT_TRUE(store_->DeleteModel("t", model_id_).ok());
  EXPECT_EQ(store_->ListDeletions("t", model_id_).status().code(), absl::StatusCode::kNotFound);
  // The cancelled retraining job is deleted without complaint.
  EXPECT_TRUE(store_->DeleteJob("t", job->id).ok());
  Reopen();
  EXPECT_EQ(store_->GetJob("t", job->id).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(DeleteModelTest, DeletingAnInPlaceRetrainingJobDropsItsRecord) {
  // The retraining failed: its record goes with the job, so the model has
  // no retraining and a later one can be recorded.
  absl::StatusOr<JobRecord> job = AddInPlaceRetraining();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(store_->ClaimNextQueuedJob().ok());
  ASSERT_TRUE(store_->FailJob(job->id, "out of memory").ok());
  ASSERT_TRUE(store_->GetRetraining("t", model_id_)->has_value());
  ASSERT_TRUE(store_->DeleteJob("t", job->id).ok());
  EXPECT_FALSE(store_->GetRetraining("t", model_id_)->has_value());
}

INSTANTIATE_TEST_SUITE_P(Engines, DeletionLedgerTest,
                         testing::Values(Engine::kSqlite, Engine::kPostgres),
                         testing_pg::EngineName);
INSTANTIATE_TEST_SUITE_P(Engines, PrivacyLedgerTest,
                         testing::Values(Engine::kSqlite, Engine::kPostgres),
                         testing_pg::EngineName);
INSTANTIATE_TEST_SUITE_P(Engines, DeleteModelTest,
                         testing::Values(Engine::kSqlite, Engine::kPostgres),
                         testing_pg::EngineName);

}  // namespace
}  // namespace agt::server
