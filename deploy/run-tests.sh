#!/usr/bin/env bash
# Installs what is needed, builds the core's fast tests with AddressSanitizer
# and UndefinedBehaviorSanitizer and runs them, then builds everything
# (Release) and runs every test with CTest, then reruns the golden, soundness
# and determinism tests once per other vector-kernel variant the CPU supports
# (AGT_ISA, core/backend/simd/isa.h).
# Usage: bash deploy/run-tests.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash deploy/install-deps.sh

if [ "${1:-}" != "--no-sanitize" ]; then
  echo "== core unit tests under ASan/UBSan =="
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAGT_SANITIZE=ON \
    -DAGT_BUILD_BENCH=OFF >/dev/null
  sanitized=(core_data_test core_train_test core_golden_units_test core_golden_conv_units_test
             core_thread_pool_test core_privacy_test core_decimal_test core_aggregate_test
             core_remove_in_place_test core_factor_rows_test core_unlearn_test core_isa_test)
  # The ONNX importer on hand-built and fuzzed (mutated) files.
  sanitized_onnx=(onnx_import_test onnx_fuzz_test)
  cmake --build build-asan -j"$jobs" --target "${sanitized[@]}" "${sanitized_onnx[@]}"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  for t in "${sanitized[@]}"; do
    "build-asan/tests/core/$t" --gtest_brief=1
  done
  for t in "${sanitized_onnx[@]}"; do
    "build-asan/tests/onnx/$t" --gtest_brief=1
  done
fi

echo "== all tests (Release) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# The full suite above ran on the kernels chosen from the CPU (the best it
# supports). The kernels exist in one variant per instruction set and must give
# the same results bit for bit: rerun the golden, soundness and determinism
# tests with each other supported variant forced. Support is read from the CPU
# flags here; core_isa_test fails if a forced variant was not the one used.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
variants=(baseline)
if has avx2 fma; then variants+=(avx2); fi
if has avx2 fma avx512f avx512dq avx512vl avx512bw; then variants+=(avx512); fi
unset 'variants[${#variants[@]}-1]'  # the best one: the run above
per_variant=(core_isa_test core_golden_units_test core_golden_conv_units_test core_train_test
             core_aggregate_test core_factor_rows_test core_remove_in_place_test
             core_soundness_test core_soundness_exhaustive_test core_soundness_conv_test
             core_device_backend_test)
for v in "${variants[@]}"; do
  echo "== golden, soundness and determinism tests with AGT_ISA=$v =="
  for t in "${per_variant[@]}"; do
    AGT_ISA=$v "build/tests/core/$t" --gtest_brief=1
  done
  AGT_ISA=$v build/tests/cli/cli_golden_cases_test --gtest_brief=1
done
