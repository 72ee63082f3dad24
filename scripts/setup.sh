#!/usr/bin/env bash
# Installs the Debian packages walstate's build, tests and benchmarks need.
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
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
