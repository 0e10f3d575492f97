#!/usr/bin/env bash
# Usage: check_install.sh BUILD_DIR CONSUMER_SOURCE WORK_DIR GENERATOR "PROGRAMS"
# Installs BUILD_DIR into WORK_DIR/prefix, checks what landed there (PROGRAMS:
# the programs this build made, each must run --version from the prefix),
# then configures, builds and runs the consumer project against that prefix
# only.
set -euo pipefail
build=$1 consumer=$2 work=$3 generator=$4 programs=$5
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log"

for f in include/agt/core/train/train.h include/agt/core/interval/rump.h \
         lib/cmake/agt/agtConfig.cmake lib/cmake/agt/agtConfigVersion.cmake \
         lib/cmake/agt/agtTargets.cmake; do
  if [ ! -e "$prefix/$f" ]; then
    # Debian's GNUInstallDirs may pick lib/<multiarch>; accept that for lib/.
    alt=$(ls -d "$prefix"/lib/*/"${f#lib/}" 2>/dev/null | head -1 || true)
    if [ -z "$alt" ]; then
      echo "missing after install: $f" >&2
      exit 1
    fi
  fi
done
for program in $programs; do
  "$prefix/bin/$program" --version | grep -q "0\." ||
    { echo "installed $program --version failed" >&2; exit 1; }
done
# The installed headers must not need the source tree.
if grep -rq "$(cd "$build/.." && pwd)/core" "$prefix"/lib*/cmake/agt/ "$prefix"/lib/*/cmake/agt/ 2>/dev/null; then
  echo "the installed package config points into the source tree" >&2
  exit 1
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$consumer" -B "$work/build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >"$work/configure.log" ||
  { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
"$work/build/agt_consumer"
