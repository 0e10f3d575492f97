// One server per database: an exclusive advisory lock (flock) on
// "<db>.lock", held for the life of the server.
//
// Why: at startup the job runner sends every RUNNING job back to the queue
// (its worker is presumed dead). A second server on the same file would do
// that to the first server's live jobs and train them twice. The lock is
// released by the kernel when the process dies, so `kill -9` never leaves a
// stale lock; the empty lock file itself stays next to the database.
//
// Thread-safety: not shared; construct and destroy on one thread.
#ifndef AGT_SERVER_SERVICE_DATABASE_LOCK_H_
#define AGT_SERVER_SERVICE_DATABASE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace agt::server {

class DatabaseLock {
 public:
  // FailedPrecondition when another process holds the lock; the errno text
  // when the lock file cannot be created.
  static absl::StatusOr<std::unique_ptr<DatabaseLock>> Acquire(const std::string& db_path);
  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

 private:
  explicit DatabaseLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_DATABASE_LOCK_H_
