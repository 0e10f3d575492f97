#include "server/store/sqlite_store.h"

#include <memory>
#include <string>
#include <utility>

#include "server/store/schema.h"
#include "server/store/sql_store.h"
#include "server/store/sqlite.h"

namespace agt::server {

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  if (!db.ok()) return db.status();
  if (absl::Status s = ConfigureConnection(**db, path); !s.ok()) return s;
  if (absl::Status s = MigrateSchema(**db, path); !s.ok()) return s;
  return std::unique_ptr<Store>(std::make_unique<SqlStore>(*std::move(db)));
}

}  // namespace agt::server
