#include "server/domain/working_memory.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"

namespace agt::server {

absl::StatusOr<std::unique_ptr<WorkingMemory::Reservation>> WorkingMemory::Reserve(
    int64_t bytes, const KeepGoing& keep_going) {
  if (bytes > limit_) {
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "the request needs an estimated ", bytes,
                       " bytes of working memory at once, above the server's limit of ", limit_,
                       " bytes for all requests together (--max-request-mib)")),
                   kReasonRequestMemoryLimit),
        "server/request_memory");
  }
  std::unique_lock<std::mutex> lock(mu_);
  while (in_use_ + bytes > limit_) {
    freed_.wait_for(lock, std::chrono::milliseconds(10));
    if (in_use_ + bytes <= limit_) break;
    if (keep_going) {
      lock.unlock();
      if (absl::Status s = keep_going(); !s.ok()) return s;
      lock.lock();
    }
  }
  in_use_ += bytes;
  return std::unique_ptr<Reservation>(new Reservation(this, bytes));
}

int64_t WorkingMemory::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

void WorkingMemory::Release(int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ -= bytes;
  }
  freed_.notify_all();
}

}  // namespace agt::server
