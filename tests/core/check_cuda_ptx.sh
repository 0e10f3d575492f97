#!/usr/bin/env bash
# Usage: check_cuda_ptx.sh FILE.ptx...
# The CUDA engine must round like the CPU backend: every double multiply and
# add on its own (mul.rn / add.rn, which ptxas never contracts), no fused
# multiply-add (fma). Fails if a PTX file has an fma.*.f64 or no mul.rn.f64.
set -euo pipefail
for ptx in "$@"; do
  if grep -nE 'fma\.[a-z]+\.f64' "$ptx" | head -5 | grep .; then
    echo "FAIL: $ptx fuses multiply-adds (fma.f64 above): compile it with -fmad=false" >&2
    exit 1
  fi
  if ! grep -q 'mul\.rn\.f64' "$ptx"; then
    echo "FAIL: $ptx has no mul.rn.f64: not the engine's code, or multiplies may be contracted" >&2
    exit 1
  fi
  echo "ok: $ptx: $(grep -c 'mul\.rn\.f64' "$ptx") mul.rn.f64, $(grep -c 'add\.rn\.f64' "$ptx") add.rn.f64, no fma.f64"
done
