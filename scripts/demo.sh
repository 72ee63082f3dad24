#!/usr/bin/env bash
# The main job: the crash-and-recover demo. Installs what is missing, builds,
# runs a gateway-like workload in a child process, SIGKILLs it mid-flight,
# reopens the directory and reports what survived. Extra arguments go to the
# demo (e.g. --dir /tmp/keep --seed 7).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bazel build //tools/demo //tools/walctl >/dev/null 2>&1 || bazel build //tools/demo //tools/walctl
exec bazel-bin/tools/demo/demo "$@"
