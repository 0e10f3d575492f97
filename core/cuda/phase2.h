// Phase 2 of a certified step (backend.h, Aggregate) over per-parameter
// threads: every budget's sums and selections, the nominal sum, and the
// descent-direction bounds, for parameters whose memory lives on a "device".
// One template, Phase2<Device>, holds the logic; a Device policy says where
// memory lives and how a loop over parameters runs: the host (host_phase2.cc,
// a thread pool: what CI tests) or a CUDA GPU (cuda_phase2.cu: one thread per
// parameter). Both run the same per-parameter bodies (the functors below,
// over select_math.h), so the GPU computes what the host tests check.
//
// Contract: the rows of a batch reach every parameter in row order, call
// after call (as in the CPU backend), so every parameter's doubles equal the
// CPU backend's bit for bit given the same per-sample factors.
//
// This header is plain C++ (no Eigen, no Abseil): nvcc compiles it. Errors
// are returned as a non-empty message. Not thread-safe.
#ifndef AGT_CORE_CUDA_PHASE2_H_
#define AGT_CORE_CUDA_PHASE2_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/select_math.h"

namespace agt::cuda {

// The job: the parameter count, the batch size, the perturbation's
// aggregation and every budget's k, and the clipping bound (clip: every
// per-sample bound is first clamped to [-gamma, gamma]; substitution's
// Theorem 8 uses the same gamma).
struct Phase2Job {
  int64_t num_params = 0;
  int32_t batch_size = 0;
  StreamKind kind = StreamKind::kRemoval;
  std::vector<int32_t> k;  // one stream per budget; stream k.size() is the nominal sum
  bool clip = false;
  double gamma = 0.0;
};

// Factor matrices of a run of rows of a dense layer (layer.h, DenseFactorRows;
// host memory, row-major): rad == nullptr for nominal factors, rz == nullptr
// for point inputs.
struct DenseBlock {
  int64_t rows = 0;
  int32_t out = 0, in = 0;
  const double* m = nullptr;
  const double* rad = nullptr;
  const double* mz = nullptr;
  const double* amz = nullptr;
  const double* rz = nullptr;
};

// Device memory of one stream (a budget): per parameter p the slots
// (slot j at slots[j * num_params + p]), the thresholds and the sums.
struct StreamBuffers {
  int64_t num_params = 0;
  double* slots_low = nullptr;
  double* slots_high = nullptr;
  double* thr_low = nullptr;
  double* thr_high = nullptr;
  double* bound_sum_low = nullptr;
  double* bound_sum_high = nullptr;
  double* value_sum_low = nullptr;
  double* value_sum_high = nullptr;

  AGT_HD ParameterState At(int64_t p) const {
    ParameterState s;
    s.slots_low = slots_low + p;
    s.slots_high = slots_high + p;
    s.stride = num_params;
    s.bound_sum_low = bound_sum_low + p;
    s.bound_sum_high = bound_sum_high + p;
    s.value_sum_low = value_sum_low + p;
    s.value_sum_high = value_sum_high + p;
    s.thr_low = thr_low[p];
    s.thr_high = thr_high[p];
    return s;
  }
  AGT_HD void Store(int64_t p, const ParameterState& s) const {
    thr_low[p] = s.thr_low;
    thr_high[p] = s.thr_high;
  }
};

// A dense block's factors in device memory.
struct DeviceDense {
  int64_t rows = 0;
  int32_t out = 0, in = 0;
  const double *m = nullptr, *rad = nullptr, *mz = nullptr, *amz = nullptr, *rz = nullptr;

  // Sample r's factors of weight (o, i).
  AGT_HD RumpElement At(int64_t r, int32_t o, int32_t i) const {
    const int64_t d = r * out + o, z = r * in + i;
    RumpElement e;
    e.m = m[d];
    e.r = rad[d];
    e.mz = mz[z];
    e.amz = amz[z];
    e.point = rz == nullptr;
    e.rz = e.point ? 0.0 : rz[z];
    return e;
  }
};

// Per-parameter bodies, one call per parameter index (q: the parameter's
// index within the call's range).

// A new batch: sums zeroed, slots emptied.
struct ResetBody {
  StreamShape s;
  StreamBuffers b;
  int32_t keep_capacity;  // slots allocated per parameter
  AGT_HD void operator()(int64_t p) const {
    b.bound_sum_low[p] = b.bound_sum_high[p] = 0.0;
    b.value_sum_low[p] = b.value_sum_high[p] = 0.0;
    for (int32_t j = 0; j < keep_capacity; ++j) {
      b.slots_low[j * b.num_params + p] = -__builtin_huge_val();
      b.slots_high[j * b.num_params + p] = -__builtin_huge_val();
    }
    b.thr_low[p] = InitialThreshold(s.low);
    b.thr_high[p] = InitialThreshold(s.high);
  }
};

// Weights of a dense layer under Rump's rule: parameter offset + q is
// W(q / in, q % in).
struct DenseBody {
  StreamShape s;
  StreamBuffers b;
  int64_t offset;
  DeviceDense bound, perturbed;  // perturbed: poisoning only
  bool clip;
  double gamma;
  AGT_HD void operator()(int64_t q) const {
    const int32_t o = static_cast<int32_t>(q / bound.in), i = static_cast<int32_t>(q % bound.in);
    const bool poison = s.kind == StreamKind::kBoundedPoisoning;
    ParameterState st = b.At(offset + q);
    for (int64_t r = 0; r < bound.rows; ++r) {
      double lo, hi, plo = 0.0, phi = 0.0;
      RumpElementBounds(bound.At(r, o, i), clip, gamma, &lo, &hi);
      if (poison) RumpElementBounds(perturbed.At(r, o, i), clip, gamma, &plo, &phi);
      OfferRow(s, lo, hi, plo, phi, &st);
    }
    b.Store(offset + q, st);
  }
};

// Bounds expanded (and clipped) by the host: rows x width, row-major.
struct ExpandedBody {
  StreamShape s;
  StreamBuffers b;
  int64_t offset, width, rows;
  const double *lo, *hi, *plo, *phi;  // plo, phi: poisoning only
  AGT_HD void operator()(int64_t q) const {
    const bool poison = s.kind == StreamKind::kBoundedPoisoning;
    ParameterState st = b.At(offset + q);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t at = r * width + q;
      OfferRow(s, lo[at], hi[at], poison ? plo[at] : 0.0, poison ? phi[at] : 0.0, &st);
    }
    b.Store(offset + q, st);
  }
};

// The descent direction's bounds of parameter p.
struct FinishBody {
  StreamShape s;
  StreamBuffers b;
  double *lower, *upper;
  AGT_HD void operator()(int64_t p) const {
    const bool poison = s.kind == StreamKind::kBoundedPoisoning;
    const int64_t n = b.num_params;
    const double low =
        SideResult(s.low, b.slots_low + p, n, poison ? b.value_sum_low[p] : b.bound_sum_low[p]);
    const double high =
        SideResult(s.high, b.slots_high + p, n, poison ? b.value_sum_high[p] : b.bound_sum_high[p]);
    FinishParameter(s, low, high, b.bound_sum_low[p], b.bound_sum_high[p], lower + p, upper + p);
  }
};

// The nominal sum: dense weights (m * mz, clipped), expanded gradients, and
// the mean.
struct NominalDenseBody {
  double* sum;
  int64_t offset;
  DeviceDense f;
  bool clip;
  double gamma;
  AGT_HD void operator()(int64_t q) const {
    const int32_t o = static_cast<int32_t>(q / f.in), i = static_cast<int32_t>(q % f.in);
    double acc = sum[offset + q];
    for (int64_t r = 0; r < f.rows; ++r) {
      acc += NominalAddend(f.m[r * f.out + o], f.mz[r * f.in + i], clip, gamma);
    }
    sum[offset + q] = acc;
  }
};
struct NominalExpandedBody {
  double* sum;
  int64_t offset, width, rows;
  const double* g;
  AGT_HD void operator()(int64_t q) const {
    double acc = sum[offset + q];
    for (int64_t r = 0; r < rows; ++r) acc += g[r * width + q];
    sum[offset + q] = acc;
  }
};
struct ScaleBody {
  const double* sum;
  double* out;
  double rows;
  AGT_HD void operator()(int64_t p) const { out[p] = sum[p] / rows; }
};
struct ZeroBody {
  double* v;
  AGT_HD void operator()(int64_t p) const { v[p] = 0.0; }
};

// Errors that start with this say the job does not fit the device's memory
// (the backend reports them as RESOURCE_EXHAUSTED).
inline constexpr char kOutOfDeviceMemory[] = "out of device memory: ";

// What a backend holds: the phase-2 engine, on whichever device.
class Phase2Api {
 public:
  virtual ~Phase2Api() = default;
  // "host" or "cuda" and the device, for logs and job records.
  virtual std::string Describe() const = 0;
  // Allocates every stream's memory (a clear error when it does not fit).
  virtual std::string Prepare(const Phase2Job& job) = 0;
  // A new batch of `rows` rows (<= batch_size: rows removed in place).
  virtual std::string BeginBatch(int32_t rows) = 0;
  // The next rows of a dense layer's weights [offset, offset + out * in) in
  // stream `stream` (budget index, or k.size() for the nominal sum; then
  // `bound` holds nominal factors and perturbed is null). perturbed:
  // poisoning budgets only, the same rows.
  virtual std::string AddDense(size_t stream, int64_t offset, const DenseBlock& bound,
                               const DenseBlock* perturbed) = 0;
  // The next rows of parameters [offset, offset + width) as bounds expanded
  // and clipped by the host (rows x width, row-major); the nominal stream
  // passes its gradients in lo (hi, plo, phi null); plo/phi: poisoning only.
  virtual std::string AddExpanded(size_t stream, int64_t offset, int64_t width, int64_t rows,
                                  const double* lo, const double* hi, const double* plo,
                                  const double* phi) = 0;
  // The batch's directions into host arrays: lower[j], upper[j] per budget
  // and nominal (num_params values each).
  virtual std::string Finish(const std::vector<double*>& lower, const std::vector<double*>& upper,
                             double* nominal) = 0;
};

// The host engine (host_phase2.cc): the same bodies on a thread pool of
// `threads` threads (<= 0: hardware concurrency).
std::unique_ptr<Phase2Api> MakeHostPhase2(int threads);

// The CUDA engine (cuda_phase2.cu), on device `device`; null with *error set
// when the build has no CUDA or the device cannot be used.
std::unique_ptr<Phase2Api> MakeCudaPhase2(int device, std::string* error);
// CUDA devices visible to this process (0 with *error saying why, including
// a build without CUDA), and one's name and memory for the logs.
int CudaDeviceCount(std::string* error);
std::string CudaDeviceDescription(int device);
// True when this build compiled the CUDA engine.
bool CudaCompiled();

}  // namespace agt::cuda

#endif  // AGT_CORE_CUDA_PHASE2_H_
