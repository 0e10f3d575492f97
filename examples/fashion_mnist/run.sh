#!/bin/bash
# The Fashion-MNIST example end to end (examples/README.md): pre-train the CNN
# in PyTorch, start agt-server on a fresh SQLite file, fine-tune and certify
# through it, stop it. Run from anywhere after building the project:
#
#   examples/fashion_mnist/run.sh [fine_tune.py options, e.g. --smoke]
#
# Uses the build in ${AGT_BUILD_DIR:-build} and writes its files (ONNX
# networks, database, plot, server log) to ${AGT_EXAMPLE_DIR:-/tmp/agt-fashion-mnist}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source_dir="$(cd "$here/../.." && pwd)"
build="${AGT_BUILD_DIR:-$source_dir/build}"
out="${AGT_EXAMPLE_DIR:-/tmp/agt-fashion-mnist}"
mkdir -p "$out"
server="$build/server/agt-server"
[[ -x "$server" ]] || { echo "run.sh: $server not found: build the project first" >&2; exit 2; }
python=/usr/bin/python3
export PYTHONPATH="$build/python:$source_dir/client/python:$here"

smoke=()
for a in "$@"; do [[ "$a" == "--smoke" ]] && smoke=(--rows 2000 --epochs 1); done
"$python" "$here/pretrain.py" --out "$out/cnn.onnx" --binary-out "$out/footwear.onnx" \
  "${smoke[@]}"

rm -f "$out/agt.db" "$out/agt.db-wal" "$out/agt.db-shm"
# 60 000 images of 785 float64 values are 359 MiB: above the default
# --max-dataset-mib 256. The example releases 2 x 200 labels at epsilon 1.
"$server" --listen 127.0.0.1:0 --db "$out/agt.db" --max-dataset-mib 512 \
  --privacy-budget 1000 >"$out/server.out" 2>"$out/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "^listening on " "$out/server.out" 2>/dev/null && break
  sleep 0.1
done
target="$(sed -n 's/^listening on //p' "$out/server.out")"
[[ -n "$target" ]] || { echo "run.sh: agt-server did not start:" >&2; cat "$out/server.log" >&2; exit 1; }
"$python" "$here/fine_tune.py" --target "$target" --onnx "$out/cnn.onnx" \
  --onnx-binary "$out/footwear.onnx" --svg "$out/fashion_mnist_certified.svg" \
  --export "$out/fine_tuned.onnx" "$@"
