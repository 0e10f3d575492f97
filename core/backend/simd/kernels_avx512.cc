// The kernels of kernels.h for the avx512 variant (-mavx512f -mavx512dq -mavx512vl -mavx512bw, and
// -ffp-contract=off: set per file in core/CMakeLists.txt).
#define AGT_SIMD_NS avx512
#define AGT_SIMD_TABLE kKernelsAvx512
#include "core/backend/simd/kernels_impl.inc"
