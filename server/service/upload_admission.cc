#include "server/service/upload_admission.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_details.h"

namespace agt::server {

using Clock = std::chrono::steady_clock;

struct UploadAdmission::Slot::Watch {
  std::mutex mu;  // held while on_idle runs
  std::function<void()> on_idle;
  Clock::time_point last = Clock::now();
  bool watching = true;
};

UploadAdmission::Slot::~Slot() {
  {
    std::lock_guard<std::mutex> lock(watch_->mu);
    watch_->on_idle = nullptr;
  }
  admission_->ReleaseCount(this);
  admission_->Unwatch(watch_);
}

void UploadAdmission::Slot::ReleaseCount() { admission_->ReleaseCount(this); }

void UploadAdmission::Slot::Touch() {
  std::lock_guard<std::mutex> lock(watch_->mu);
  watch_->last = Clock::now();
}

void UploadAdmission::Slot::StopWatching() {
  std::lock_guard<std::mutex> lock(watch_->mu);
  watch_->watching = false;
}

UploadAdmission::UploadAdmission(UploadAdmissionOptions options)
    : options_(options), watcher_([this] { WatchLoop(); }) {}

UploadAdmission::~UploadAdmission() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  watcher_.join();
}

absl::StatusOr<std::unique_ptr<UploadAdmission::Slot>> UploadAdmission::Acquire(
    const std::string& tenant, std::function<void()> on_idle) {
  auto watch = std::make_shared<Slot::Watch>();
  watch->on_idle = std::move(on_idle);
  std::lock_guard<std::mutex> lock(mu_);
  int& count = per_tenant_[tenant];
  if (count >= options_.max_per_tenant) {
    const int now = count;
    if (count == 0) per_tenant_.erase(tenant);
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "tenant \"", tenant, "\" already has ", now,
                       " uploads in progress, the server's limit (--max-uploads-per-tenant ",
                       options_.max_per_tenant, "); retry when one has finished")),
                   kReasonUploadLimit),
        absl::StrCat("tenant:", tenant));
  }
  if (total_ >= options_.max_total) {
    if (count == 0) per_tenant_.erase(tenant);
    return WithQuota(
        WithReason(absl::ResourceExhaustedError(absl::StrCat(
                       "the server already has ", total_,
                       " uploads in progress, its limit for all tenants together (--max-uploads ",
                       options_.max_total, "); retry when one has finished")),
                   kReasonUploadLimit),
        "server");
  }
  ++count;
  ++total_;
  watches_[watch.get()] = watch;
  return std::unique_ptr<Slot>(new Slot(this, tenant, std::move(watch)));
}

int UploadAdmission::in_progress(const std::string& tenant) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_tenant_.find(tenant);
  return it == per_tenant_.end() ? 0 : it->second;
}

void UploadAdmission::ReleaseCount(Slot* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!slot->counted_) return;
  slot->counted_ = false;
  --total_;
  auto it = per_tenant_.find(slot->tenant_);
  if (it != per_tenant_.end() && --it->second <= 0) per_tenant_.erase(it);
}

void UploadAdmission::Unwatch(const std::shared_ptr<Slot::Watch>& watch) {
  std::lock_guard<std::mutex> lock(mu_);
  watches_.erase(watch.get());
}

void UploadAdmission::WatchLoop() {
  const auto period = std::min<std::chrono::milliseconds>(options_.idle_timeout / 4,
                                                          std::chrono::milliseconds(250));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_cv_.wait_for(lock, std::max(period, std::chrono::milliseconds(1)),
                            [this] { return stopping_; })) {
    std::vector<std::shared_ptr<Slot::Watch>> watches;
    watches.reserve(watches_.size());
    for (const auto& [key, watch] : watches_) watches.push_back(watch);
    lock.unlock();
    const Clock::time_point now = Clock::now();
    for (const std::shared_ptr<Slot::Watch>& watch : watches) {
      std::lock_guard<std::mutex> watch_lock(watch->mu);
      if (watch->watching && watch->on_idle && now - watch->last >= options_.idle_timeout) {
        std::function<void()> on_idle = std::move(watch->on_idle);
        watch->on_idle = nullptr;  // at most once
        on_idle();
      }
    }
    lock.lock();
  }
}

}  // namespace agt::server
