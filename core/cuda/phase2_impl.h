// Phase2<Device>: the engine of phase2.h over a Device policy. Included by
// host_phase2.cc and cuda_phase2.cu only (plain C++: nvcc compiles it).
//
// A Device provides:
//   std::string Alloc(double** p, int64_t n);             // n doubles
//   void Free(double* p);
//   std::string CopyIn(double* dst, const double* src, int64_t n);   // host -> device
//   std::string CopyOut(double* dst, const double* src, int64_t n);  // device -> host
//   template <class Body> std::string ForEach(int64_t n, const Body& body);  // body(i), i < n
//   std::string CheckFits(int64_t bytes) const;            // device memory for the job
//   std::string Describe() const;
// ForEach's calls run in order (each sees the writes of the ones before);
// within one call the indices are independent.
#ifndef AGT_CORE_CUDA_PHASE2_IMPL_H_
#define AGT_CORE_CUDA_PHASE2_IMPL_H_

#include <algorithm>
#include <string>
#include <vector>

#include "core/cuda/phase2.h"

namespace agt::cuda {

template <class Device>
class Phase2 : public Phase2Api {
 public:
  explicit Phase2(Device device) : dev_(std::move(device)) {}
  ~Phase2() override { FreeAll(); }

  std::string Describe() const override { return dev_.Describe(); }

  std::string Prepare(const Phase2Job& job) override {
    FreeAll();
    job_ = job;
    const int64_t p = job.num_params;
    keep_capacity_ = 0;
    for (int32_t k : job.k) {
      const StreamShape s = MakeStreamShape(job.kind, job.batch_size, k, job.gamma);
      keep_capacity_ = std::max(keep_capacity_, s.low.keep);
    }
    // Per budget: two sides' slots, two thresholds, four sums, two outputs;
    // the nominal sum and its output.
    const int64_t per_stream = 2 * static_cast<int64_t>(keep_capacity_) + 8;
    const int64_t doubles = (per_stream * static_cast<int64_t>(job.k.size()) + 2) * p;
    if (std::string e = dev_.CheckFits(doubles * 8); !e.empty()) return e;
    streams_.assign(job.k.size(), StreamBuffers{});
    outputs_.assign(2 * job.k.size(), nullptr);
    for (size_t j = 0; j < job.k.size(); ++j) {
      StreamBuffers& b = streams_[j];
      b.num_params = p;
      const int64_t slots = std::max<int64_t>(1, keep_capacity_) * p;
      for (auto [ptr, n] : {std::pair{&b.slots_low, slots}, std::pair{&b.slots_high, slots},
                            std::pair{&b.thr_low, p}, std::pair{&b.thr_high, p},
                            std::pair{&b.bound_sum_low, p}, std::pair{&b.bound_sum_high, p},
                            std::pair{&b.value_sum_low, p}, std::pair{&b.value_sum_high, p},
                            std::pair{&outputs_[2 * j], p}, std::pair{&outputs_[2 * j + 1], p}}) {
        if (std::string e = Allocate(ptr, n); !e.empty()) return e;
      }
    }
    if (std::string e = Allocate(&nominal_sum_, p); !e.empty()) return e;
    if (std::string e = Allocate(&nominal_out_, p); !e.empty()) return e;
    shapes_.assign(job.k.size(), StreamShape{});
    return "";
  }

  std::string BeginBatch(int32_t rows) override {
    rows_ = rows;
    for (size_t j = 0; j < streams_.size(); ++j) {
      shapes_[j] = MakeStreamShape(job_.kind, rows, job_.k[j], job_.gamma);
      if (std::string e =
              dev_.ForEach(job_.num_params, ResetBody{shapes_[j], streams_[j], keep_capacity_});
          !e.empty()) {
        return e;
      }
    }
    return dev_.ForEach(job_.num_params, ZeroBody{nominal_sum_});
  }

  std::string AddDense(size_t stream, int64_t offset, const DenseBlock& bound,
                       const DenseBlock* perturbed) override {
    DeviceDense b, pb;
    if (std::string e = Upload(bound, 0, &b); !e.empty()) return e;
    const int64_t n = static_cast<int64_t>(bound.out) * bound.in;
    if (stream == streams_.size()) {
      return dev_.ForEach(n, NominalDenseBody{nominal_sum_, offset, b, job_.clip, job_.gamma});
    }
    if (perturbed != nullptr) {
      if (std::string e = Upload(*perturbed, 5, &pb); !e.empty()) return e;
    }
    return dev_.ForEach(
        n, DenseBody{shapes_[stream], streams_[stream], offset, b, pb, job_.clip, job_.gamma});
  }

  std::string AddExpanded(size_t stream, int64_t offset, int64_t width, int64_t rows,
                          const double* lo, const double* hi, const double* plo,
                          const double* phi) override {
    const int64_t n = width * rows;
    const double* src[4] = {lo, hi, plo, phi};
    const double* dst[4] = {nullptr, nullptr, nullptr, nullptr};
    for (int a = 0; a < 4; ++a) {
      if (src[a] == nullptr) continue;
      if (std::string e = Stage(10 + a, src[a], n, &dst[a]); !e.empty()) return e;
    }
    if (stream == streams_.size()) {
      return dev_.ForEach(width, NominalExpandedBody{nominal_sum_, offset, width, rows, dst[0]});
    }
    return dev_.ForEach(width, ExpandedBody{shapes_[stream], streams_[stream], offset, width, rows,
                                            dst[0], dst[1], dst[2], dst[3]});
  }

  std::string Finish(const std::vector<double*>& lower, const std::vector<double*>& upper,
                     double* nominal) override {
    const int64_t p = job_.num_params;
    for (size_t j = 0; j < streams_.size(); ++j) {
      double* lo = outputs_[2 * j];
      double* hi = outputs_[2 * j + 1];
      if (std::string e = dev_.ForEach(p, FinishBody{shapes_[j], streams_[j], lo, hi}); !e.empty())
        return e;
      if (std::string e = dev_.CopyOut(lower[j], lo, p); !e.empty()) return e;
      if (std::string e = dev_.CopyOut(upper[j], hi, p); !e.empty()) return e;
    }
    if (std::string e = dev_.ForEach(p, ScaleBody{nominal_sum_, nominal_out_, double(rows_)});
        !e.empty()) {
      return e;
    }
    return dev_.CopyOut(nominal, nominal_out_, p);
  }

 private:
  std::string Allocate(double** ptr, int64_t n) {
    if (std::string e = dev_.Alloc(ptr, n); !e.empty()) return e;
    owned_.push_back(*ptr);
    return "";
  }

  void FreeAll() {
    for (double* p : owned_) dev_.Free(p);
    owned_.clear();
    for (Staging& s : staging_) {
      if (s.ptr != nullptr) dev_.Free(s.ptr);
      s = Staging{};
    }
    streams_.clear();
    nominal_sum_ = nominal_out_ = nullptr;
  }

  // Copies n doubles into staging buffer `slot` (grown as needed).
  std::string Stage(int slot, const double* src, int64_t n, const double** out) {
    Staging& s = staging_[slot];
    if (s.capacity < n) {
      if (s.ptr != nullptr) dev_.Free(s.ptr);
      s = Staging{};
      if (std::string e = dev_.Alloc(&s.ptr, n); !e.empty()) return e;
      s.capacity = n;
    }
    if (std::string e = dev_.CopyIn(s.ptr, src, n); !e.empty()) return e;
    *out = s.ptr;
    return "";
  }

  // A dense block's five arrays into staging buffers first_slot..+4.
  std::string Upload(const DenseBlock& h, int first_slot, DeviceDense* d) {
    d->rows = h.rows;
    d->out = h.out;
    d->in = h.in;
    const int64_t nd = h.rows * h.out, nz = h.rows * h.in;
    const double* src[5] = {h.m, h.rad, h.mz, h.amz, h.rz};
    const double** dst[5] = {&d->m, &d->rad, &d->mz, &d->amz, &d->rz};
    const int64_t len[5] = {nd, nd, nz, nz, nz};
    for (int a = 0; a < 5; ++a) {
      *dst[a] = nullptr;
      if (src[a] == nullptr) continue;
      if (std::string e = Stage(first_slot + a, src[a], len[a], dst[a]); !e.empty()) return e;
    }
    return "";
  }

  struct Staging {
    double* ptr = nullptr;
    int64_t capacity = 0;
  };

  Device dev_;
  Phase2Job job_;
  int32_t keep_capacity_ = 0;
  int32_t rows_ = 0;
  std::vector<StreamBuffers> streams_;
  std::vector<StreamShape> shapes_;
  std::vector<double*> outputs_;  // per budget: lower, upper
  double* nominal_sum_ = nullptr;
  double* nominal_out_ = nullptr;
  std::vector<double*> owned_;
  Staging staging_[14];  // dense bound 0-4, perturbed 5-9, expanded 10-13
};

}  // namespace agt::cuda

#endif  // AGT_CORE_CUDA_PHASE2_IMPL_H_
