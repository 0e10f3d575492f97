// A per-tenant limit on calls that hold server resources for as long as the
// client keeps them open (WatchJob streams: each holds a server thread until
// the job ends or the client goes away). Acquire counts one more call of a
// tenant, or refuses it with ResourceExhausted naming the count, the limit
// and the flag that sets it (reason WATCH_LIMIT, quota subject "tenant:<t>");
// the returned Slot gives the count back when it
// is destroyed.
//
// Thread-safety: everything may be called concurrently; the TenantSlots must
// outlive its slots.
#ifndef AGT_SERVER_SERVICE_TENANT_SLOTS_H_
#define AGT_SERVER_SERVICE_TENANT_SLOTS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"

namespace agt::server {

class TenantSlots {
 public:
  // `what` names the calls in messages ("job watches"), `flag` the option
  // that sets `max_per_tenant` (>= 1).
  TenantSlots(std::string what, std::string flag, int max_per_tenant)
      : what_(std::move(what)), flag_(std::move(flag)), max_per_tenant_(max_per_tenant) {}
  TenantSlots(const TenantSlots&) = delete;
  TenantSlots& operator=(const TenantSlots&) = delete;

  class Slot {
   public:
    ~Slot() { owner_->Release(tenant_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    friend class TenantSlots;
    Slot(TenantSlots* owner, std::string tenant) : owner_(owner), tenant_(std::move(tenant)) {}
    TenantSlots* const owner_;
    const std::string tenant_;
  };

  absl::StatusOr<std::unique_ptr<Slot>> Acquire(const std::string& tenant) {
    std::lock_guard<std::mutex> lock(mu_);
    int& count = open_[tenant];
    if (count >= max_per_tenant_) {
      return WithQuota(WithReason(absl::ResourceExhaustedError(absl::StrCat(
                                      "tenant \"", tenant, "\" already has ", count, " ", what_,
                                      " open, the server's limit (", flag_, " ",
                                      max_per_tenant_, "); close one first")),
                                  kReasonWatchLimit),
                       absl::StrCat("tenant:", tenant));
    }
    ++count;
    return std::unique_ptr<Slot>(new Slot(this, tenant));
  }

  int open(const std::string& tenant) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(tenant);
    return it == open_.end() ? 0 : it->second;
  }

 private:
  void Release(const std::string& tenant) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(tenant);
    if (it != open_.end() && --it->second <= 0) open_.erase(it);
  }

  const std::string what_;
  const std::string flag_;
  const int max_per_tenant_;
  mutable std::mutex mu_;
  std::map<std::string, int> open_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_TENANT_SLOTS_H_
