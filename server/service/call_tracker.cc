#include "server/service/call_tracker.h"

namespace agt::server {
namespace {

// Counts its call for as long as gRPC keeps it alive.
class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(CallTracker* tracker) : tracker_(tracker) { tracker_->Enter(); }
  ~CountingInterceptor() override { tracker_->Leave(); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallTracker* const tracker_;
};

class CountingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingFactory(CallTracker* tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new CountingInterceptor(tracker_);
  }

 private:
  CallTracker* const tracker_;
};

}  // namespace

void CallTracker::Enter() {
  std::lock_guard<std::mutex> lock(mu_);
  ++active_;
}

void CallTracker::Leave() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
  }
  idle_.notify_all();
}

int64_t CallTracker::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

bool CallTracker::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, deadline, [&] { return active_ == 0; });
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> CallTracker::Factory() {
  return std::make_unique<CountingFactory>(this);
}

}  // namespace agt::server
