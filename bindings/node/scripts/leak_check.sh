#!/usr/bin/env bash
# The leak check at full length: 10^6 updates (or $1) under --expose-gc.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
WALSTATE_NODE_LEAK_UPDATES="${1:-1000000}" node --test --test-reporter=tap test/leak.test.mjs |
  grep -E "leak check|^(ok|not ok)|^# (pass|fail)"
