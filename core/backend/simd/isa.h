// Which vector instruction set the CPU backend's hot loops use, chosen once
// at start-up from the CPU and the AGT_ISA environment variable. The build
// sets no -march (binaries run on any x86-64), so the kernels (kernels.h)
// exist in one variant per instruction set and the best the CPU supports is
// taken: AVX-512 (F, DQ, VL, BW), else AVX2 with FMA, else the baseline
// (SSE2). AGT_ISA=baseline|avx2|avx512 asks for one variant (CI runs the
// suite under each one the machine supports); a variant the CPU lacks, or
// an unknown name, falls back to the automatic choice with a note on stderr
// (RequestedIsaHonoured() says whether that happened).
//
// Every variant returns the same results bit for bit (kernels.h), so the
// choice changes speed only, never a bound.
//
// Thread-safety: the choice is made once, on first use, thread-safely.
// SetIsaForTesting switches it for the whole process and must not run while
// a step is in flight.
#ifndef AGT_CORE_BACKEND_SIMD_ISA_H_
#define AGT_CORE_BACKEND_SIMD_ISA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "core/backend/simd/kernels.h"

namespace agt::simd {

enum class Isa { kBaseline, kAvx2, kAvx512 };

// "baseline", "avx2", "avx512".
std::string_view IsaName(Isa isa);
// The inverse of IsaName; nullopt for any other string.
std::optional<Isa> ParseIsa(std::string_view name);
// Whether this binary has the variant and this CPU (and OS) can run it.
bool IsaSupported(Isa isa);
// Every supported variant, baseline first.
std::vector<Isa> SupportedIsas();
// The best variant the CPU supports.
Isa BestIsa();

// The variant in use and its kernels.
Isa ActiveIsa();
const Kernels& ActiveKernels();
// False when AGT_ISA named a variant that could not be used (unknown or
// unsupported); true when it is unset or honoured.
bool RequestedIsaHonoured();

// The columns whose bit is set in a winner bitmap of rump_select (bit c % 64
// of word c / 64, n columns), written to idx in increasing order; returns
// how many. Plain scalar code (a count-trailing-zeros per winner).
int64_t WinnerColumns(const uint64_t* bits, int64_t n, int32_t* idx);

// Switches every later kernel call to `isa`; FailedPrecondition when the CPU
// does not support it. For tests and benchmarks that compare the variants.
absl::Status SetIsaForTesting(Isa isa);

}  // namespace agt::simd

#endif  // AGT_CORE_BACKEND_SIMD_ISA_H_
