// The CUDA engine: Phase2 over device memory, one GPU thread per parameter
// (neighbouring threads read neighbouring inputs and slots: coalesced). The
// per-parameter bodies are phase2.h's, the same code the host engine runs;
// compiled with -fmad=false (core/CMakeLists.txt) so that no multiply-add is
// fused: every double equals the CPU backend's.
//
// Memory: the job's buffers are allocated once (Prepare checks them against
// the device's free memory first); the factors of each call are copied into
// staging buffers that grow as needed. Every call runs on the default stream,
// so copies and kernels run in order and a staging buffer is never
// overwritten while a kernel reads it.

#include <cuda_runtime.h>

#include <string>

#include "core/cuda/phase2_impl.h"

namespace agt::cuda {
namespace {

std::string CudaError(const char* what, cudaError_t e) {
  return std::string("CUDA ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
         ")";
}

template <class Body>
__global__ void ForEachIndex(int64_t n, Body body) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) body(i);
}

class CudaDevice {
 public:
  explicit CudaDevice(int device) : device_(device) {}

  std::string Alloc(double** p, int64_t n) {
    const size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(double);
    if (cudaError_t e = cudaMalloc(reinterpret_cast<void**>(p), bytes); e != cudaSuccess) {
      *p = nullptr;
      return std::string(kOutOfDeviceMemory) + CudaError("cudaMalloc", e) + " for " +
             std::to_string(bytes) + " bytes";
    }
    return "";
  }
  void Free(double* p) { cudaFree(p); }
  std::string CopyIn(double* dst, const double* src, int64_t n) {
    cudaError_t e = cudaMemcpy(dst, src, static_cast<size_t>(n) * sizeof(double),
                               cudaMemcpyHostToDevice);
    return e == cudaSuccess ? "" : CudaError("copy to the device", e);
  }
  std::string CopyOut(double* dst, const double* src, int64_t n) {
    cudaError_t e = cudaMemcpy(dst, src, static_cast<size_t>(n) * sizeof(double),
                               cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? "" : CudaError("copy from the device", e);
  }
  std::string CheckFits(int64_t bytes) const {
    size_t free_bytes = 0, total = 0;
    if (cudaError_t e = cudaMemGetInfo(&free_bytes, &total); e != cudaSuccess) {
      return CudaError("cudaMemGetInfo", e);
    }
    // Keep a tenth of the free memory for the staging buffers.
    const double limit = 0.9 * static_cast<double>(free_bytes);
    if (static_cast<double>(bytes) > limit) {
      return std::string(kOutOfDeviceMemory) + "the job's aggregation state needs " +
             std::to_string(bytes >> 20) +
             " MiB of device memory; device " + std::to_string(device_) + " has " +
             std::to_string(free_bytes >> 20) + " MiB free (at most 90% of it is used)";
    }
    return "";
  }
  std::string Describe() const { return CudaDeviceDescription(device_); }

  template <class Body>
  std::string ForEach(int64_t n, const Body& body) {
    if (n <= 0) return "";
    constexpr int kThreads = 256;
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    ForEachIndex<<<static_cast<unsigned>(blocks), kThreads>>>(n, body);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return CudaError("kernel launch", e);
    return "";
  }

 private:
  int device_;
};

}  // namespace

std::unique_ptr<Phase2Api> MakeCudaPhase2(int device, std::string* error) {
  std::string why;
  const int count = CudaDeviceCount(&why);
  if (count == 0) {
    *error = why;
    return nullptr;
  }
  if (device < 0 || device >= count) {
    *error = "CUDA device " + std::to_string(device) + " does not exist (" +
             std::to_string(count) + " visible)";
    return nullptr;
  }
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) {
    *error = CudaError("cudaSetDevice", e);
    return nullptr;
  }
  return std::make_unique<Phase2<CudaDevice>>(CudaDevice(device));
}

int CudaDeviceCount(std::string* error) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    if (error) *error = "no CUDA device: " + CudaError("cudaGetDeviceCount", e);
    return 0;
  }
  if (count == 0 && error) *error = "no CUDA device: cudaGetDeviceCount found none";
  return count;
}

std::string CudaDeviceDescription(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    return "cuda device " + std::to_string(device);
  }
  return "cuda device " + std::to_string(device) + ": " + prop.name + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB, compute capability " +
         std::to_string(prop.major) + "." + std::to_string(prop.minor);
}

bool CudaCompiled() { return true; }

}  // namespace agt::cuda
