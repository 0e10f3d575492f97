// The kernels of kernels.h for the avx2 variant (-mavx2 -mfma, and
// -ffp-contract=off: set per file in core/CMakeLists.txt).
#define AGT_SIMD_NS avx2
#define AGT_SIMD_TABLE kKernelsAvx2
#include "core/backend/simd/kernels_impl.inc"
