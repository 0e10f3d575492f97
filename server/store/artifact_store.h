// The store of model artifacts (uploaded model files, artifacts.proto): one
// record per file, scoped to a tenant, in the server's database (SQLite
// file or PostgreSQL; schema 11, table model_artifacts).
//
// Contract: the file's bytes are kept exactly as received, with their
// SHA-256 (hex) recorded at insert and verified on every read of the bytes
// (a mismatch is DataLoss, never a silently different model). `summary` is
// the service's description of the parsed network, opaque here. Lookups by
// id are scoped to a tenant: another tenant's id is NotFound, exactly like an
// unknown one. Nothing else in the database refers to an artifact (jobs copy
// what they need when submitted), so deleting one is always allowed.
//
// Kept apart from Store (its own connection to the same database, through the
// same engine seam, server/store/sql.h) so that this concept stays in one
// place. Inserts are kWrite transactions, so they exclude the Store's writes
// exactly as those exclude each other: SQLite's busy timeout, PostgreSQL's
// advisory lock across every replica.
//
// Thread-safety: all methods may be called concurrently (one connection
// behind a mutex).
#ifndef AGT_SERVER_STORE_ARTIFACT_STORE_H_
#define AGT_SERVER_STORE_ARTIFACT_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace agt::server {

class SqlDb;

struct ArtifactRecord {
  std::string id;  // "art-" + 20 hex characters, set by Insert
  std::string tenant;
  std::string name;
  int format = 0;          // agt.v1.ModelArtifactFormat
  int64_t size_bytes = 0;  // of the content, set by Insert
  std::string sha256;      // hex of the content, set by Insert
  int64_t created_ms = 0;  // Unix epoch milliseconds, set by Insert
  std::string summary;     // opaque to the store
};

class ArtifactStore {
 public:
  // Opens the database `target` names as Store::Open does (an SQLite file,
  // configured and migrated; a postgresql:// URI, whose schema Store::Open
  // must already have migrated, as the server does by opening it first).
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(const std::string& target);
  ~ArtifactStore();

  // Stores a new artifact with `content` as its bytes; id, size_bytes,
  // sha256 and created_ms are filled in and returned.
  absl::StatusOr<ArtifactRecord> Insert(ArtifactRecord record, const std::string& content);
  absl::StatusOr<ArtifactRecord> Get(const std::string& tenant, const std::string& id);
  // The file's bytes, verified against the recorded SHA-256 (DataLoss).
  absl::StatusOr<std::string> LoadContent(const std::string& tenant, const std::string& id);
  // In creation order; page_size and tokens as for Store's listings.
  absl::StatusOr<Page<ArtifactRecord>> List(const std::string& tenant, int page_size,
                                            const std::string& page_token);
  absl::Status Delete(const std::string& tenant, const std::string& id);

 private:
  explicit ArtifactStore(std::unique_ptr<SqlDb> db);

  std::mutex mu_;
  std::unique_ptr<SqlDb> db_;  // guarded by mu_
};

}  // namespace agt::server

#endif  // AGT_SERVER_STORE_ARTIFACT_STORE_H_
