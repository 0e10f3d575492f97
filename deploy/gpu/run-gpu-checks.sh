#!/usr/bin/env bash
# The CUDA backend's checks on a machine with an NVIDIA GPU (issue 16): builds
# the core with the CUDA engine from this repository (CMake, nvcc, and the
# Debian packages that deploy/gpu/fetch-debs.sh downloaded, unpacked into a
# private prefix: nothing is installed system-wide), then
#   1. the device backend's tests with the GPU engine, which must not skip:
#      every case bit for bit against the CPU backend (core_device_backend_test,
#      and every golden case through cli_golden_cases_test);
#   2. agt_bench: certified step, CPU backend vs CUDA backend, 784-128-10 at
#      batch 1000 and 10000 and the conv row, with samples/s.
# Output goes to $OUT (or ./gpu-check-out): tests.log, bench.txt, nvidia-smi.txt.
# Usage: bash deploy/gpu/run-gpu-checks.sh [--quick]   (--quick: batch 1000 only)
# With the device tool: run(command="bash deploy/gpu/run-gpu-checks.sh",
#   carry=["deploy/gpu/debs"], timeout_s=590); build ~3-5 min on 16 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpu-check-out}
mkdir -p "$out"
batches=1000,10000
[ "${1:-}" = "--quick" ] && batches=1000

prefix=/tmp/agt-gpu-prefix
if [ -d deploy/gpu/debs ] && ls deploy/gpu/debs/*.deb >/dev/null 2>&1; then
  mkdir -p "$prefix"
  for d in deploy/gpu/debs/*.deb; do dpkg -x "$d" "$prefix"; done
fi
export CMAKE_PREFIX_PATH="$prefix/usr:${CMAKE_PREFIX_PATH:-}"
export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
nvcc --version | tail -1

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
hints=()
[ -d "$prefix/usr/share/eigen3/cmake" ] && hints=(-DEigen3_DIR="$prefix/usr/share/eigen3/cmake")
cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DAGT_CORE_ONLY=ON \
  -DAGT_WITH_ONNX=OFF -DAGT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 "${hints[@]}" \
  >"$out/configure.log" 2>&1 ||
  { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" --target core_device_backend_test cli_golden_cases_test \
  agt_bench >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }

status=0
{
  build-gpu/tests/core/core_device_backend_test
  build-gpu/tests/cli/cli_golden_cases_test --gtest_filter='*Device*'
} >"$out/tests.log" 2>&1 || status=1
# On a GPU machine nothing may skip for want of a device.
if grep -q "GPU test skipped" "$out/tests.log"; then
  echo "FAIL: GPU tests skipped on this machine:"; grep "GPU test skipped" "$out/tests.log" | head -3
  status=1
fi
grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$out/tests.log" || true

build-gpu/bench/agt_bench --models 784-128-10,conv --backends cpu,cuda --batches "$batches" \
  --repeats 3 | tee "$out/bench.txt" || status=1
exit $status
