// How the process's allocator treats the large, short-lived buffers of a
// certified step (per-sample factor matrices, midpoint-radius copies, Eigen
// temporaries: tens of megabytes each, allocated and freed every step).
#ifndef AGT_CORE_COMMON_ALLOCATOR_H_
#define AGT_CORE_COMMON_ALLOCATOR_H_

namespace agt {

// glibc's default serves every block above a moving threshold (128 KiB at
// first, at most 32 MiB) with its own mmap and unmaps it when it is freed,
// so the next step's buffers fault in fresh zeroed pages again (about 60,000
// faults per step on a 784-128-10 model with batch 1000). This sets the
// threshold to its largest value and keeps freed memory in the heap instead
// of returning it, so later steps reuse pages already mapped. Resident memory
// then stays at the process's peak until it exits; the peak itself does not
// change within one thread, but freed memory stays in each thread's arena, so
// a process whose threads allocate concurrently peaks higher (agt-server
// does not call this: its per-call memory bounds need freed memory back).
// Call once, at the start of main, before any thread starts. A no-op
// where the C library is not glibc; returns false if glibc refused a setting.
bool KeepFreedMemoryForReuse();

}  // namespace agt

#endif  // AGT_CORE_COMMON_ALLOCATOR_H_
