#!/usr/bin/env bash
# Builds the addon with AddressSanitizer in a scratch copy of the sources
# (engine/, include/, proto/, third_party/ and bindings/node/; this
# directory's build/ is left alone) and runs the tests with node under it
# (libasan preloaded: node itself is not instrumented). Offline, like
# scripts/build.sh. Takes as long as a full build (~15 min on a loaded
# 2-core machine); not part of scripts/test.sh.
#   scripts/asan_test.sh
# LeakSanitizer is off (node does not free everything at exit); the
# quarantine is small so that the leak test's RSS check still means
# something. Any ASan report aborts its process and fails the test.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(cd ../.. && pwd)"
asan="$(gcc -print-file-name=libasan.so)"
if [ ! -f "$asan" ]; then
  echo "walstate: libasan.so not found (gcc -print-file-name=libasan.so); install gcc's sanitizer runtime (Debian libasan8)." >&2
  exit 1
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/walstate-node-asan.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$root" && tar -c --exclude=bindings/node/node_modules --exclude=bindings/node/build \
  --exclude=bindings/node/bench/node_modules --exclude=bindings/node/gen \
  engine include proto third_party bindings/node) | tar -x -C "$work"
ln -s "$PWD/node_modules" "$work/bindings/node/node_modules"
cd "$work/bindings/node"
CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g1" LDFLAGS="-fsanitize=address" \
  bash scripts/build.sh >build.log 2>&1 || { tail -40 build.log; exit 1; }
LD_PRELOAD="$asan" \
  ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=1:thread_local_quarantine_size_kb=64 \
  WALSTATE_NODE_CRASH_CYCLES=3 WALSTATE_NODE_LEAK_UPDATES=20000 \
  node --test test/*.test.mjs
