#!/usr/bin/env bash
# Builds walstate's Debian packages (cmake/WalstatePackaging.cmake):
# libwalstate<SOVERSION>, libwalstate-dev and walctl, for the machine's
# Debian release and architecture.
#
# Usage: scripts/make_deb.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR  CMake build directory (default build-deb); an existing build is
#              reconfigured for the /usr prefix and reused
#   OUT_DIR    where the .deb files go (default BUILD_DIR/packages)
# Then: sudo apt-get install ./OUT_DIR/*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-deb}
out=${2:-$build/packages}
jobs=${WALSTATE_PACKAGE_JOBS:-2}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr
cmake --build "$build" -j "$jobs"
mkdir -p "$out"
out=$(cd "$out" && pwd)
(cd "$build" && cpack -G DEB -B "$out")
rm -rf "$out/_CPack_Packages"
ls "$out"/*.deb
