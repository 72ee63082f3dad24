#!/usr/bin/env bash
# Fails if Bazel and CMake build different .cc files of the library or walctl
# (scripts/check_sources.py says which and what to add where). It reads the
# source tree itself (BUILD.bazel files, CMakeLists.txt), found through this
# script's runfiles link, so it is tagged "external": never cached.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
root=$(cd "$here/../.." && pwd)
exec python3 "$root/scripts/check_sources.py" "$root"
