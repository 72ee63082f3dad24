#!/usr/bin/env bash
# The crash test from JS at full length: 50 SIGKILL cycles (or $1), under
# Node. Prints the test's summary line (acknowledged updates, lost).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
WALSTATE_NODE_CRASH_CYCLES="${1:-50}" node --test --test-reporter=tap test/crash.test.mjs |
  grep -E "crash cycles|^(ok|not ok)|^# (pass|fail)"
