#!/usr/bin/env bash
# Installs what is needed, builds the core's fast tests with AddressSanitizer
# and UndefinedBehaviorSanitizer and runs them, then builds everything
# (Release) and runs every test with CTest.
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
             core_remove_in_place_test core_factor_rows_test core_unlearn_test)
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
