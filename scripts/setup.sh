#!/usr/bin/env bash
# Installs the Debian packages walstate's build, tests and benchmarks need,
# then the Node.js binding's npm packages (bindings/node/scripts/setup.sh).
# Idempotent and quiet when everything is present; needs root (or sudo) only
# when something is missing.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms  # Bazel 4.2.3, offline rules
  g++ clang lld libclang-rt-14-dev                  # compilers, linker for fuzz builds, sanitizer/fuzzer runtimes
  libabsl-dev libxxhash-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev libleveldb-dev libsqlite3-dev      # benchmark peers
  python3 clang-format
  libprotoc-dev cmake pkg-config binutils           # Node binding: .proto parsing at run time; the CMake build and its package test (objdump)
  nats-server libnats-dev                           # replication (NATS JetStream 2.9, C client 3.4)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js 20 and npm, with the headers the addon builds against
# (/usr/include/node). Checked by command: a nodejs package that bundles
# npm must not be replaced by Debian's separate npm package.
if ! command -v node >/dev/null || ! command -v npm >/dev/null ||
   [ ! -f /usr/include/node/node_api.h ]; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: done" >&2
fi

bash "$(dirname "$0")/../bindings/node/scripts/setup.sh"
