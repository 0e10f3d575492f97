// The run-time choice of isa.h: CPU detection with __builtin_cpu_supports
// (which also checks that the OS saves the wider registers), the AGT_ISA
// override, and an atomic pointer to the chosen table so that every kernel
// call costs one load.

#include "core/backend/simd/isa.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace agt::simd {
namespace {

const Kernels& TableOf(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::kAvx512:
      return kKernelsAvx512;
    case Isa::kAvx2:
      return kKernelsAvx2;
    case Isa::kBaseline:
      break;
  }
#else
  (void)isa;
#endif
  return kKernelsBaseline;
}

struct Choice {
  std::atomic<Isa> isa;
  std::atomic<const Kernels*> table;
  bool honoured;
};

Choice& TheChoice() {
  static Choice* choice = [] {
    Isa isa = BestIsa();
    bool honoured = true;
    if (const char* env = std::getenv("AGT_ISA"); env != nullptr && *env != '\0') {
      const std::optional<Isa> asked = ParseIsa(env);
      if (asked && IsaSupported(*asked)) {
        isa = *asked;
      } else {
        honoured = false;
        std::fprintf(stderr, "agt: AGT_ISA=%s is %s; using %s\n", env,
                     asked ? "not supported by this CPU" : "not one of baseline|avx2|avx512",
                     std::string(IsaName(isa)).c_str());
      }
    }
    auto* c = new Choice;
    c->isa.store(isa);
    c->table.store(&TableOf(isa));
    c->honoured = honoured;
    return c;
  }();
  return *choice;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kBaseline:
      return "baseline";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "baseline";
}

std::optional<Isa> ParseIsa(std::string_view name) {
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (name == IsaName(isa)) return isa;
  }
  return std::nullopt;
}

bool IsaSupported(Isa isa) {
#if defined(__x86_64__)
  // Needed when the first call comes from a static initializer (before
  // libgcc's own constructor has filled in the CPU model); cheap otherwise.
  __builtin_cpu_init();
#endif
  switch (isa) {
    case Isa::kBaseline:
      return true;
#if defined(__x86_64__)
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return IsaSupported(Isa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw");
#else
    default:
      return false;
#endif
  }
  return false;
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) out.push_back(isa);
  }
  return out;
}

Isa BestIsa() { return SupportedIsas().back(); }

Isa ActiveIsa() { return TheChoice().isa.load(std::memory_order_relaxed); }

const Kernels& ActiveKernels() { return *TheChoice().table.load(std::memory_order_relaxed); }

bool RequestedIsaHonoured() { return TheChoice().honoured; }

absl::Status SetIsaForTesting(Isa isa) {
  if (!IsaSupported(isa)) {
    return absl::FailedPreconditionError(absl::StrCat("instruction set ", std::string(IsaName(isa)),
                                                      " is not supported by this CPU"));
  }
  Choice& c = TheChoice();
  c.isa.store(isa);
  c.table.store(&TableOf(isa));
  return absl::OkStatus();
}

int64_t WinnerColumns(const uint64_t* bits, int64_t n, int32_t* idx) {
  int64_t count = 0;
  for (int64_t w = 0; w * 64 < n; ++w) {
    for (uint64_t word = bits[w]; word != 0; word &= word - 1) {
      idx[count++] = static_cast<int32_t>(w * 64 + __builtin_ctzll(word));
    }
  }
  return count;
}

}  // namespace agt::simd
