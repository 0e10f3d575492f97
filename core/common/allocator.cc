#include "core/common/allocator.h"

#include <cstddef>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace agt {

bool KeepFreedMemoryForReuse() {
#if defined(__GLIBC__)
  // 32 MiB is the largest threshold glibc accepts on 64-bit systems (half
  // its per-thread heap size); larger blocks are still mapped one by one.
  constexpr int kMmapThreshold = 32 << 20;
  // Freed memory at the top of the heap is returned to the system only past
  // this much (1 GiB); below it, it stays for the next allocation.
  constexpr int kTrimThreshold = 1 << 30;
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  return mmap_ok && trim_ok;
#else
  return true;
#endif
}

}  // namespace agt
