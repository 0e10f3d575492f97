#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tools and the tests need.
# Idempotent and quiet when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libeigen3-dev libabsl-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libsqlite3-dev sqlite3 libssl-dev
  # The Python client (client/python) and its tests: stubs need grpcio and
  # protobuf, arrays numpy; the offline pip install test needs venv, pip,
  # setuptools and wheel; the TLS test makes its certificate with openssl.
  python3 python3-grpcio python3-protobuf python3-numpy
  python3-venv python3-pip python3-setuptools python3-wheel openssl
  # agtctl plot: .png output (rsvg-convert); tests parse the SVG with python3.
  librsvg2-bin
  # Gzipped IDX and deflated .npz (client/lib/arrays.h); the Fashion-MNIST
  # files for the image tests (tests/server/shaped_models_e2e_test.cc, which
  # skips without them).
  zlib1g-dev dataset-fashion-mnist
  # agt-server --metrics-listen: the Prometheus client library.
  prometheus-cpp-dev
  # agt::onnx (core/onnx): ONNX 1.12's protobuf messages. Its tests make ONNX
  # files with torch.onnx.export and check exports with onnx.checker
  # (test-only: python3-torch, python3-onnx).
  libonnx-dev python3-torch python3-onnx
  # The PostgreSQL store (--db postgresql://...): libpq. Its tests start a
  # private server from Debian's postgresql package (initdb into a temporary
  # directory; as the package's `postgres` user when the tests run as root).
  libpq-dev postgresql
  # tests/deploy: deploy/k8s checked offline against the Kubernetes API
  # schema of python3-kubernetes' generated models; docker-compose.yml (and
  # its replicas profile) with `docker-compose config`.
  python3-kubernetes python3-yaml docker-compose
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
