// Admission of dataset uploads: at most `max_per_tenant` uploads of one
// tenant and `max_total` uploads of all tenants in progress at a time (each
// holds up to a dataset's worth of memory), and an idle watch that reports an upload
// whose stream has brought no message for `idle_timeout`. Knows nothing of
// gRPC: the service holds a Slot for each upload, calls Touch when a message
// arrives, and is told through the slot's on_idle callback when to give up.
//
// Idle watch: one thread for all uploads, waking every
// min(idle_timeout / 4, 250 ms); on_idle runs on that thread, at most once per
// slot, never after the slot is destroyed (the destructor waits for a
// running on_idle), and never while the admission's own lock is held, so it
// may take other locks. A slot whose Touch was followed by StopWatching
// (the upload is complete, the server is storing it) is never reported.
//
// Thread-safety: everything may be called concurrently. The admission must
// outlive its slots.
#ifndef AGT_SERVER_SERVICE_UPLOAD_ADMISSION_H_
#define AGT_SERVER_SERVICE_UPLOAD_ADMISSION_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace agt::server {

struct UploadAdmissionOptions {
  int max_per_tenant = 4;                                    // >= 1
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};  // > 0
  int max_total = 16;  // all tenants together, >= 1
};

class UploadAdmission {
 public:
  explicit UploadAdmission(UploadAdmissionOptions options);
  ~UploadAdmission();
  UploadAdmission(const UploadAdmission&) = delete;
  UploadAdmission& operator=(const UploadAdmission&) = delete;

  class Slot {
   public:
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    // A message arrived: the idle clock starts again.
    void Touch();
    // No more messages are expected; the upload is never reported idle.
    void StopWatching();
    // Gives the tenant's slot back now (the upload is ending: a client told
    // so may start the next one at once); the watch ends with the Slot.
    // Idempotent; takes only the admission's lock, so on_idle may call it.
    void ReleaseCount();

   private:
    friend class UploadAdmission;
    struct Watch;
    Slot(UploadAdmission* admission, std::string tenant, std::shared_ptr<Watch> watch)
        : admission_(admission), tenant_(std::move(tenant)), watch_(std::move(watch)) {}
    UploadAdmission* const admission_;
    const std::string tenant_;
    const std::shared_ptr<Watch> watch_;
    bool counted_ = true;  // guarded by admission_->mu_
  };

  // A slot for one more upload of `tenant`, or ResourceExhausted naming the
  // count and the limit (--max-uploads-per-tenant, or --max-uploads for all
  // tenants together).
  absl::StatusOr<std::unique_ptr<Slot>> Acquire(const std::string& tenant,
                                                std::function<void()> on_idle);

  int in_progress(const std::string& tenant) const;
  std::chrono::milliseconds idle_timeout() const { return options_.idle_timeout; }

 private:
  void ReleaseCount(Slot* slot);
  void Unwatch(const std::shared_ptr<Slot::Watch>& watch);
  void WatchLoop();

  const UploadAdmissionOptions options_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::map<std::string, int> per_tenant_;
  int total_ = 0;  // every counted slot
  std::map<Slot::Watch*, std::shared_ptr<Slot::Watch>> watches_;
  std::thread watcher_;
};

}  // namespace agt::server

#endif  // AGT_SERVER_SERVICE_UPLOAD_ADMISSION_H_
