// A server-wide budget of working memory for requests that expand their
// inputs (certify calls): each call holds a reservation for the chunk of rows
// it works on, and a call that does not fit waits until others give memory
// back, so concurrent calls never hold more than the limit together. Waiting
// is not work: the waiter polls its KeepGoing every 10 ms and gives up with
// its status (cancelled, past its deadline).
//
// Thread-safety: all methods may be called concurrently; the budget must
// outlive its reservations.
#ifndef AGT_SERVER_DOMAIN_WORKING_MEMORY_H_
#define AGT_SERVER_DOMAIN_WORKING_MEMORY_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agt::server {

// Called between chunks of work (and while waiting for memory): a non-OK
// status (e.g. Cancelled or DeadlineExceeded from the call's budget) stops
// the work and is returned as the call's result. Empty: never stops.
using KeepGoing = std::function<absl::Status()>;

class WorkingMemory {
 public:
  explicit WorkingMemory(int64_t limit_bytes) : limit_(limit_bytes) {}
  WorkingMemory(const WorkingMemory&) = delete;
  WorkingMemory& operator=(const WorkingMemory&) = delete;

  // Gives its bytes back when destroyed.
  class Reservation {
   public:
    ~Reservation() { owner_->Release(bytes_); }
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    int64_t bytes() const { return bytes_; }

   private:
    friend class WorkingMemory;
    Reservation(WorkingMemory* owner, int64_t bytes) : owner_(owner), bytes_(bytes) {}
    WorkingMemory* const owner_;
    const int64_t bytes_;
  };

  // Waits until `bytes` fit next to what others hold. ResourceExhausted
  // (naming both figures and --max-request-mib) when `bytes` exceeds the
  // whole limit; keep_going's status when it stops the wait.
  absl::StatusOr<std::unique_ptr<Reservation>> Reserve(int64_t bytes, const KeepGoing& keep_going);

  int64_t limit() const { return limit_; }
  int64_t in_use() const;

 private:
  void Release(int64_t bytes);

  const int64_t limit_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  int64_t in_use_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_DOMAIN_WORKING_MEMORY_H_
