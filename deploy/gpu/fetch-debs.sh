#!/usr/bin/env bash
# Run here (a Debian 12 machine with apt): downloads the Debian packages the
# GPU check builds against into deploy/gpu/debs/ (git-ignored), for a GPU
# machine that cannot reach a package mirror. Nothing is installed here.
# Usage: bash deploy/gpu/fetch-debs.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p debs
cd debs
packages=(libeigen3-dev libabsl-dev libabsl20220623 nlohmann-json3-dev libgtest-dev googletest)
apt-get download "${packages[@]}"
ls -l
