// The store's ledgers. Deletions (Store::AppendDeletions and friends):
// accepted up to max N then refused, refused rows stay recorded, bad ids
// change nothing, the ledger survives a reopen, and concurrent requests never
// double-count or lose a row nor push d past max N. Privacy budgets
// (Store::SpendPrivacyBudget): all or nothing up to the total, per client and
// model, across a reopen and a migration, and never overspent by concurrent
// spenders on two connections to the file.
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
#include "server/store/store.h"

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

class DeletionLedgerTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::path(testing::TempDir()) / absl::StrCat("agt_ledger_", info->name(), "_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "agt.db").string();
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
    absl::StatusOr<Store::DeletionAppend> done =
        Append(rows, budgets, batch_size, RequestTag{}, nullptr);
    if (!done.ok()) return done.status();
    if (!done->decision.has_value()) return absl::InternalError("no decision without a tag");
    return *done->decision;
  }
  absl::StatusOr<Store::DeletionAppend> Append(
      const std::vector<int64_t>& rows, const std::vector<int>& budgets, int batch_size,
      const RequestTag& tag,
      const std::function<std::string(const agt::DeletionDecision&)>& answer_of) {
    absl::StatusOr<agt::BatchPlan> plan = agt::BatchPlan::Create(kRows, batch_size);
    if (!plan.ok()) return plan.status();
    return store_->AppendDeletions("t", model_id_, budgets, *plan, rows, "alice", tag, answer_of);
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

TEST_F(DeletionLedgerTest, SchemaVersionThreeHasBothLedgers) {
  EXPECT_GE(Store::SchemaVersion(), 3);
}

TEST_F(DeletionLedgerTest, AVersionOneDatabaseMigratesAndKeepsItsModels) {
  store_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "DROP TABLE privacy_budgets; DROP TABLE deletions; DROP TABLE "
                         "retrainings; PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // And what later versions added, where this build has it (schema 5: the
  // requests; 6: the privacy ledgers; 7: crash counts).
  for (const char* undo :
       {"DROP TABLE IF EXISTS requests", "DROP TABLE IF EXISTS privacy_spenders",
        "DROP TABLE IF EXISTS privacy_ledgers", "ALTER TABLE jobs DROP COLUMN crash_count"}) {
    sqlite3_exec(raw, undo, nullptr, nullptr, nullptr);
  }
  sqlite3_close(raw);
  Reopen();
  absl::StatusOr<agt::DeletionDecision> d = Delete({1});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->accepted);
  EXPECT_EQ(D(), 1);
}

TEST_F(DeletionLedgerTest, AcceptsUpToMaxNThenReportsRetrainingRequired) {
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

TEST_F(DeletionLedgerTest, ARefusedRowIsAcceptedByALaterRequestThatFits) {
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

TEST_F(DeletionLedgerTest, AnUnknownRowIsInvalidArgumentAndChangesNothing) {
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

TEST_F(DeletionLedgerTest, AnotherTenantsModelIsNotFound) {
  absl::StatusOr<agt::BatchPlan> plan = agt::BatchPlan::Create(kRows, 10);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(store_->AppendDeletions("u", model_id_, {1}, *plan, {1}, "x").status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(store_->ListDeletions("u", model_id_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->CountAcceptedDeletions("t", "mdl-unknown").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRetraining("u", model_id_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DeletionLedgerTest, TheLedgerPagesInRowOrderWithoutRepeatsOrGaps) {
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

TEST_F(DeletionLedgerTest, TheLedgerAndTheRetrainingSurviveAReopen) {
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

TEST_F(DeletionLedgerTest, DeletionsCountPerBatchOfTheTraining) {
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

TEST_F(DeletionLedgerTest, ARetriedRequestIdReturnsTheFirstAnswerAndRecordsNothingTwice) {
  const RequestTag tag{"del-1", "fingerprint-a"};
  auto answer = [](const agt::DeletionDecision& d) {
    return absl::StrCat("accepted=", d.accepted, " total=", d.after.total);
  };
  absl::StatusOr<Store::DeletionAppend> first = Append({1, 2, 3}, {5}, kRows, tag, answer);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->decision.has_value());
  EXPECT_EQ(first->answer, "accepted=1 total=3");
  // Other rows were deleted in between: the retry still answers the first time.
  ASSERT_TRUE(Delete({4}, {5}).ok());
  Reopen();
  absl::StatusOr<Store::DeletionAppend> again = Append({1, 2, 3}, {5}, kRows, tag, answer);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->decision.has_value());
  EXPECT_EQ(again->answer, "accepted=1 total=3");
  EXPECT_EQ(D(), 4);
  absl::StatusOr<std::optional<std::string>> found =
      store_->FindRequest("t", RequestKind::kDeletion, tag);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->value_or(""), "accepted=1 total=3");
  // The same id for another request is refused and changes nothing.
  absl::StatusOr<Store::DeletionAppend> other =
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

TEST_F(DeletionLedgerTest, ConcurrentOverlappingRequestsCountEveryDistinctRowOnce) {
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

TEST_F(DeletionLedgerTest, ConcurrentRequestsNeverAcceptPastMaxN) {
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

// ---- privacy budgets

TEST_F(DeletionLedgerTest, PrivacySpendsAreAllOrNothingUpToTheTotal) {
  absl::StatusOr<PrivacySpendRecord> r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spent_epsilon, 0.0);
  EXPECT_EQ(r->releases, 0);
  r = store_->SpendPrivacyBudget("t", model_id_, "app", 1.0, 0.75, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spent_epsilon, 0.75);
  EXPECT_EQ(r->releases, 3);
  EXPECT_GT(r->updated_ms, 0);
  r = store_->SpendPrivacyBudget("t", model_id_, "app", 1.0, 0.5, 2);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  for (const char* part : {"app", "0.5", "0.25", "nothing was spent"}) {
    EXPECT_TRUE(absl::StrContains(r.status().message(), part)) << r.status();
  }
  r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->spent_epsilon, 0.75);
  EXPECT_EQ(r->releases, 3);
  r = store_->SpendPrivacyBudget("t", model_id_, "app", 1.0, 0.25, 1);  // exactly the total
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spent_epsilon, 1.0);
  // Other clients and a zero total.
  EXPECT_TRUE(store_->SpendPrivacyBudget("t", model_id_, "other", 1.0, 1.0, 1).ok());
  EXPECT_EQ(store_->SpendPrivacyBudget("t", model_id_, "third", 0.0, 1e-9, 1).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(DeletionLedgerTest, BadPrivacySpendsChangeNothing) {
  for (double epsilon : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    EXPECT_EQ(store_->SpendPrivacyBudget("t", model_id_, "app", 10.0, epsilon, 1).status().code(),
              absl::StatusCode::kInvalidArgument)
        << epsilon;
  }
  for (double total : {-1.0, std::nan(""), HUGE_VAL}) {
    EXPECT_EQ(store_->SpendPrivacyBudget("t", model_id_, "app", total, 0.1, 1).status().code(),
              absl::StatusCode::kInvalidArgument)
        << total;
  }
  EXPECT_EQ(store_->SpendPrivacyBudget("t", model_id_, "app", 10.0, 0.1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->SpendPrivacyBudget("u", model_id_, "app", 10.0, 0.1, 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetPrivacySpend("u", model_id_, "app").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->SpendPrivacyBudget("t", "mdl-unknown", "app", 10.0, 0.1, 1).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<PrivacySpendRecord> r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->spent_epsilon, 0.0);
  EXPECT_EQ(r->updated_ms, 0);
}

TEST_F(DeletionLedgerTest, PrivacySpendsSurviveAReopenAndTheMigrationFromVersionTwo) {
  ASSERT_TRUE(store_->SpendPrivacyBudget("t", model_id_, "app", 5.0, 1.5, 4).ok());
  Reopen();
  absl::StatusOr<PrivacySpendRecord> r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spent_epsilon, 1.5);
  EXPECT_EQ(r->releases, 4);
  // A version-2 file (before private prediction) gains an empty ledger and
  // keeps its deletions.
  ASSERT_TRUE(Delete({4}).ok());
  store_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE privacy_budgets; PRAGMA user_version = 2;", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  Reopen();
  EXPECT_EQ(D(), 1);
  r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->spent_epsilon, 0.0);
  EXPECT_TRUE(store_->SpendPrivacyBudget("t", model_id_, "app", 5.0, 1.0, 1).ok());
}

TEST_F(DeletionLedgerTest, ConcurrentSpendersOnTwoConnectionsNeverOverspend) {
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
    threads.emplace_back([&, store] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<PrivacySpendRecord> r =
            store->SpendPrivacyBudget("t", model_id_, "app", 2.0, 0.0625, 1);
        if (r.ok()) {
          ++granted;
          if (r->spent_epsilon > 2.0) ++unexpected;
        } else if (!absl::IsResourceExhausted(r.status())) {
          ++unexpected;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(granted.load(), 32);  // 32 x 1/16 = 2, exactly
  absl::StatusOr<PrivacySpendRecord> r = store_->GetPrivacySpend("t", model_id_, "app");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->spent_epsilon, 2.0);
  EXPECT_EQ(r->releases, 32);
}

}  // namespace
}  // namespace agt::server
