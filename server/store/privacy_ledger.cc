#include "server/store/privacy_ledger.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/privacy/budget.h"

namespace agt::server {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

int64_t SaturatingAdd(int64_t a, int64_t b) { return a > kInt64Max - b ? kInt64Max : a + b; }

// ceil(spent / q), saturating. spent >= 0 (the old table's CHECK); NaN
// (stored as NULL, which NOT NULL forbids) is treated as used up.
int64_t QuantaUp(double spent) {
  if (!(spent >= 0.0)) return kInt64Max;
  const double scaled = std::ceil(std::ldexp(spent, -agt::kEpsilonQuantumExponent));
  if (!(scaled < 0x1p63)) return kInt64Max;
  return static_cast<int64_t>(scaled);
}

struct Share {
  int64_t quanta = 0;
  int64_t releases = 0;
  int64_t updated_ms = 0;
  void Add(int64_t q, int64_t r, int64_t ms) {
    quanta = SaturatingAdd(quanta, q);
    releases = SaturatingAdd(releases, r);
    updated_ms = std::max(updated_ms, ms);
  }
};

}  // namespace

const char kPrivacyLedgerSchemaSql[] = R"sql(
CREATE TABLE privacy_ledgers (
  tenant       TEXT NOT NULL,
  dataset_id   TEXT NOT NULL,
  spent_quanta INTEGER NOT NULL CHECK (spent_quanta >= 0),
  releases     INTEGER NOT NULL CHECK (releases >= 0),
  updated_ms   INTEGER NOT NULL,
  PRIMARY KEY (tenant, dataset_id)
) WITHOUT ROWID;

CREATE TABLE privacy_spenders (
  tenant       TEXT NOT NULL,
  dataset_id   TEXT NOT NULL,
  client       TEXT NOT NULL,
  spent_quanta INTEGER NOT NULL CHECK (spent_quanta >= 0),
  releases     INTEGER NOT NULL CHECK (releases >= 0),
  updated_ms   INTEGER NOT NULL,
  PRIMARY KEY (tenant, dataset_id, client)
) WITHOUT ROWID;
)sql";

absl::StatusOr<std::string> RootDatasetOf(SqlDb& db, const std::string& tenant,
                                          const std::string& dataset_id) {
  absl::StatusOr<Statement> parent = db.Prepare(
      "SELECT m.dataset_id FROM retrainings r JOIN models m ON m.id = r.model_id "
      "WHERE r.tenant = ?1 AND r.dataset_id = ?2 AND m.tenant = ?1 AND m.dataset_id != ?2 "
      "ORDER BY r.requested_ms, r.model_id LIMIT 1");
  if (!parent.ok()) return parent.status();
  std::string current = dataset_id;
  std::set<std::string> seen = {current};
  for (int step = 0; step < kMaxDatasetLineage; ++step) {
    parent->Reset();
    parent->BindText(1, tenant).BindText(2, current);
    absl::StatusOr<bool> row = parent->Step();
    if (!row.ok()) return row.status();
    if (!*row) return current;
    std::string next = parent->ColumnText(0);
    if (!seen.insert(next).second) return current;  // its own parent, or a cycle
    current = std::move(next);
  }
  return absl::DataLossError(absl::StrCat("dataset ", dataset_id, " of tenant ", tenant,
                                          " has a lineage of retrainings longer than ",
                                          kMaxDatasetLineage));
}

absl::Status MigratePrivacyBudgetsToDatasets(SqlDb& db) {
  // (tenant, root) -> total; (tenant, root, client) -> that client's share.
  std::map<std::pair<std::string, std::string>, Share> ledgers;
  std::map<std::tuple<std::string, std::string, std::string>, Share> spenders;
  {
    absl::StatusOr<Statement> rows = db.Prepare(
        "SELECT b.tenant, b.client, b.spent, b.releases, b.updated_ms, m.dataset_id "
        "FROM privacy_budgets b JOIN models m ON m.id = b.model_id ORDER BY b.model_id, b.client");
    if (!rows.ok()) return rows.status();
    for (;;) {
      absl::StatusOr<bool> row = rows->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::string tenant = rows->ColumnText(0);
      const std::string client = rows->ColumnText(1);
      const int64_t quanta = QuantaUp(rows->ColumnDouble(2));
      const int64_t releases = rows->ColumnInt64(3);
      const int64_t updated_ms = rows->ColumnInt64(4);
      absl::StatusOr<std::string> root = RootDatasetOf(db, tenant, rows->ColumnText(5));
      if (!root.ok()) return root.status();
      ledgers[{tenant, *root}].Add(quanta, releases, updated_ms);
      spenders[{tenant, *root, client}].Add(quanta, releases, updated_ms);
    }
  }
  // The model_id foreign key means every row joined; say so if one did not.
  absl::StatusOr<int64_t> orphans = db.QueryInt64(
      "SELECT count(*) FROM privacy_budgets WHERE model_id NOT IN (SELECT id FROM models)");
  if (!orphans.ok()) return orphans.status();
  if (*orphans != 0) {
    return absl::DataLossError(absl::StrCat(*orphans,
                                            " privacy_budgets rows name no stored model; their "
                                            "spend cannot be charged to a dataset"));
  }
  for (const auto& [key, share] : ledgers) {
    absl::StatusOr<Statement> insert = db.Prepare(
        "INSERT INTO privacy_ledgers (tenant, dataset_id, spent_quanta, releases, "
        "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!insert.ok()) return insert.status();
    insert->BindText(1, key.first)
        .BindText(2, key.second)
        .BindInt64(3, share.quanta)
        .BindInt64(4, share.releases)
        .BindInt64(5, share.updated_ms);
    if (absl::Status s = insert->Run(); !s.ok()) return s;
  }
  for (const auto& [key, share] : spenders) {
    absl::StatusOr<Statement> insert = db.Prepare(
        "INSERT INTO privacy_spenders (tenant, dataset_id, client, spent_quanta, "
        "releases, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!insert.ok()) return insert.status();
    insert->BindText(1, std::get<0>(key))
        .BindText(2, std::get<1>(key))
        .BindText(3, std::get<2>(key))
        .BindInt64(4, share.quanta)
        .BindInt64(5, share.releases)
        .BindInt64(6, share.updated_ms);
    if (absl::Status s = insert->Run(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace agt::server
