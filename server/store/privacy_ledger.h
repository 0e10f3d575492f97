// The privacy ledger's SQL (internal to server/store): which budget a model's
// releases draw from, and the schema-6 migration that moved the per-(model,
// client) ledgers of schemas 3-5 to one budget per (tenant, root dataset).
//
// The budget is the training data's, not a model's or a token's: every model
// trained on a dataset, or on a dataset derived from it, draws from one budget
// per (tenant, root dataset), shared by every token of the tenant. A derived
// dataset is one that a retraining after deletions was trained on (table
// `retrainings`: dataset_id is the derived dataset, and the model it retrains,
// model_id, was trained on its parent). Servers before issue 17 made such
// copies without the deleted rows; since then a retraining keeps the
// original dataset id, and both cases resolve to the same root.
//
// Thread-safety: as SqliteDb (none); call inside the caller's transaction.
#ifndef AGT_SERVER_STORE_PRIVACY_LEDGER_H_
#define AGT_SERVER_STORE_PRIVACY_LEDGER_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/store/sqlite.h"

namespace agt::server {

// The root of `dataset_id` for `tenant`: follows derived dataset -> parent
// through `retrainings` until a dataset that no retraining derived from
// another one. A retraining on its model's own dataset (in place, since
// issue 17) is no step; a cycle, which only a damaged file could hold, stops
// at the dataset seen again. At most kMaxDatasetLineage steps, then DataLoss.
inline constexpr int kMaxDatasetLineage = 10'000;
absl::StatusOr<std::string> RootDatasetOf(SqlDb& db, const std::string& tenant,
                                          const std::string& dataset_id);

// The tables of schema 6 (privacy_ledgers: spent quanta and releases per
// (tenant, root dataset); privacy_spenders: the per-client share of each, for
// reporting only).
extern const char kPrivacyLedgerSchemaSql[];

// Schema 6's data step: for every row of the old privacy_budgets table
// (model_id, client, spent epsilon as a double, releases), adds
// ceil(spent / 2^-40) quanta (rounded UP; saturating at the int64 maximum,
// i.e. "used up", for a spent no total can hold) and the releases to the
// budget of (tenant, root dataset of the model) and to the client's share of
// it. privacy_budgets itself is left as it was (no longer read or written).
absl::Status MigratePrivacyBudgetsToDatasets(SqlDb& db);

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_PRIVACY_LEDGER_H_
