// The kernels of kernels.h for the baseline variant (no -m flags: SSE2, the x86-64 baseline, and
// -ffp-contract=off: set per file in core/CMakeLists.txt).
#define AGT_SIMD_NS baseline
#define AGT_SIMD_TABLE kKernelsBaseline
#include "core/backend/simd/kernels_impl.inc"
