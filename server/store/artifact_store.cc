#include "server/store/artifact_store.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"
#include "server/store/blob.h"
#include "server/store/ids.h"
#include "server/store/schema.h"
#include "server/store/sql.h"
#include "server/store/sqlite.h"
#ifdef AGT_HAVE_POSTGRES
#include "server/store/postgres.h"
#endif

namespace agt::server {
namespace {

using Mode = Transaction::Mode;

constexpr char kColumns[] =
    "seq, id, tenant, name, format, size_bytes, sha256, created_ms, summary";

// The same message for an unknown id and another tenant's (as Store's).
absl::Status ArtifactNotFound(const std::string& id) {
  constexpr size_t kMaxShown = 80;
  std::string shown = absl::CHexEscape(id.substr(0, kMaxShown));
  if (id.size() > kMaxShown) shown += "...";
  return WithMetadata(absl::NotFoundError(absl::StrCat("model artifact '", shown, "' not found")),
                      "artifact_id", id);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ArtifactRecord ReadRecord(const Statement& st, int64_t* seq) {
  *seq = st.ColumnInt64(0);
  ArtifactRecord r;
  r.id = st.ColumnText(1);
  r.tenant = st.ColumnText(2);
  r.name = st.ColumnText(3);
  r.format = static_cast<int>(st.ColumnInt64(4));
  r.size_bytes = st.ColumnInt64(5);
  r.sha256 = st.ColumnText(6);
  r.created_ms = st.ColumnInt64(7);
  r.summary = std::string(st.ColumnBlob(8));
  return r;
}

}  // namespace

ArtifactStore::ArtifactStore(std::unique_ptr<SqlDb> db) : db_(std::move(db)) {}
ArtifactStore::~ArtifactStore() = default;

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(const std::string& target) {
  if (Store::IsPostgresTarget(target)) {
#ifdef AGT_HAVE_POSTGRES
    absl::StatusOr<std::unique_ptr<PostgresDb>> db = PostgresDb::Open(target);
    if (!db.ok()) return db.status();
    absl::StatusOr<int64_t> tables = (*db)->QueryInt64(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'model_artifacts' "
        "AND table_schema = current_schema()");
    if (!tables.ok()) return tables.status();
    if (*tables == 0) {
      return absl::FailedPreconditionError(
          "the database has no model_artifacts table: open it with Store::Open first (it "
          "migrates the schema)");
    }
    return std::unique_ptr<ArtifactStore>(new ArtifactStore(*std::move(db)));
#else
    return absl::FailedPreconditionError(
        "this agt-server was built without PostgreSQL, so a postgresql:// --db cannot be opened");
#endif
  }
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(target);
  if (!db.ok()) return db.status();
  if (absl::Status s = ConfigureConnection(**db, target); !s.ok()) return s;
  if (absl::Status s = MigrateSchema(**db, target); !s.ok()) return s;
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(*std::move(db)));
}

absl::StatusOr<ArtifactRecord> ArtifactStore::Insert(ArtifactRecord record,
                                                     const std::string& content) {
  absl::StatusOr<std::string> id = NewRandomId(kArtifactIdPrefix);
  if (!id.ok()) return id.status();
  record.id = *std::move(id);
  record.size_bytes = static_cast<int64_t>(content.size());
  record.sha256 = Sha256Hex(content);
  record.created_ms = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Transaction> txn = Transaction::Begin(*db_, Mode::kWrite);
  if (!txn.ok()) return txn.status();
  {
    absl::StatusOr<Statement> st = db_->Prepare(
        "INSERT INTO model_artifacts (id, tenant, name, format, size_bytes, sha256, created_ms, "
        "summary, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!st.ok()) return st.status();
    st->BindText(1, record.id)
        .BindText(2, record.tenant)
        .BindText(3, record.name)
        .BindInt64(4, record.format)
        .BindInt64(5, record.size_bytes)
        .BindText(6, record.sha256)
        .BindInt64(7, record.created_ms)
        .BindBlob(8, record.summary)
        .BindBlobNoCopy(9, content);
    if (absl::Status s = st->Run(); !s.ok()) return s;
  }
  if (absl::Status s = txn->Commit(); !s.ok()) return s;
  return record;
}

absl::StatusOr<ArtifactRecord> ArtifactStore::Get(const std::string& tenant,
                                                  const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Statement> st = db_->Prepare(
      absl::StrCat("SELECT ", kColumns, " FROM model_artifacts WHERE id = ?1 AND tenant = ?2"));
  if (!st.ok()) return st.status();
  st->BindText(1, id).BindText(2, tenant);
  absl::StatusOr<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return ArtifactNotFound(id);
  int64_t seq = 0;
  return ReadRecord(*st, &seq);
}

absl::StatusOr<std::string> ArtifactStore::LoadContent(const std::string& tenant,
                                                       const std::string& id) {
  std::string content;
  std::string sha256;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<Statement> st =
        db_->Prepare("SELECT content, sha256 FROM model_artifacts WHERE id = ?1 AND tenant = ?2");
    if (!st.ok()) return st.status();
    st->BindText(1, id).BindText(2, tenant);
    absl::StatusOr<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) return ArtifactNotFound(id);
    content = std::string(st->ColumnBlob(0));
    sha256 = st->ColumnText(1);
  }
  // Hashed outside the lock: a file may be hundreds of MiB.
  if (Sha256Hex(content) != sha256) {
    return absl::DataLossError(absl::StrCat(
        "model artifact ", id, ": the stored bytes do not match their SHA-256 ", sha256));
  }
  return content;
}

absl::StatusOr<Page<ArtifactRecord>> ArtifactStore::List(const std::string& tenant, int page_size,
                                                         const std::string& page_token) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", page_size, " must be >= 0 (0 = the default ", kDefaultPageSize, ")"));
  }
  const int limit = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  absl::StatusOr<int64_t> after = DecodePageToken(PageKind::kArtifacts, page_token);
  if (!after.ok()) return after.status();
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Statement> st = db_->Prepare(
      absl::StrCat("SELECT ", kColumns,
                   " FROM model_artifacts WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"));
  if (!st.ok()) return st.status();
  st->BindText(1, tenant).BindInt64(2, *after).BindInt64(3, limit + 1);
  Page<ArtifactRecord> page;
  int64_t last_seq = 0;
  while (true) {
    absl::StatusOr<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_page_token = EncodePageToken(PageKind::kArtifacts, last_seq);
      break;
    }
    page.items.push_back(ReadRecord(*st, &last_seq));
  }
  return page;
}

absl::Status ArtifactStore::Delete(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Statement> st =
      db_->Prepare("DELETE FROM model_artifacts WHERE id = ?1 AND tenant = ?2");
  if (!st.ok()) return st.status();
  st->BindText(1, id).BindText(2, tenant);
  if (absl::Status s = st->Run(); !s.ok()) return s;
  if (db_->Changes() == 0) return ArtifactNotFound(id);
  return absl::OkStatus();
}

}  // namespace agt::server
