// The host engine: Phase2 over host memory and a thread pool. It runs the
// same per-parameter bodies as the CUDA kernels, so the tests that compare it
// with the CPU backend check the GPU's arithmetic on machines without one.
// Compiled with -ffp-contract=off (core/CMakeLists.txt), as the CPU kernels.

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/backend/thread_pool.h"
#include "core/cuda/phase2_impl.h"

namespace agt::cuda {
namespace {

class HostDevice {
 public:
  explicit HostDevice(int threads) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    pool_ = std::make_shared<ThreadPool>(threads > 0 ? threads : hw);
  }

  std::string Alloc(double** p, int64_t n) {
    *p = new double[static_cast<size_t>(std::max<int64_t>(n, 1))];
    return "";
  }
  void Free(double* p) { delete[] p; }
  std::string CopyIn(double* dst, const double* src, int64_t n) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(double));
    return "";
  }
  std::string CopyOut(double* dst, const double* src, int64_t n) { return CopyIn(dst, src, n); }
  std::string CheckFits(int64_t /*bytes*/) const { return ""; }
  std::string Describe() const { return absl::StrCat("host (", pool_->size(), " threads)"); }

  // Fixed ranges of indices: each index is independent, so the split does
  // not change a result.
  template <class Body>
  std::string ForEach(int64_t n, const Body& body) {
    constexpr int64_t kRange = 4096;
    const size_t tasks = static_cast<size_t>((n + kRange - 1) / kRange);
    pool_->ParallelFor(tasks, [&](size_t t, int) {
      const int64_t i0 = static_cast<int64_t>(t) * kRange;
      const int64_t i1 = std::min(n, i0 + kRange);
      for (int64_t i = i0; i < i1; ++i) body(i);
    });
    return "";
  }

 private:
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Phase2Api> MakeHostPhase2(int threads) {
  return std::make_unique<Phase2<HostDevice>>(HostDevice(threads));
}

}  // namespace agt::cuda
