#!/usr/bin/env bash
# The replication tests with their full counts (CI runs reduced ones):
# test (a) over 20 kill -9 / restore cycles, the standby test over 3000
# acknowledged updates (WALSTATE_FOLLOW_ACKS), and every other test of
# tests/replication once, against a fresh 3-node NATS cluster on loopback.
# docs/replication.md quotes its result.
#   scripts/replication_full.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cycles="${1:-20}"
bazel test --nocache_test_results --test_output=all \
  --test_env=WALSTATE_REPLICATION_CYCLES="$cycles" \
  --test_env=WALSTATE_FOLLOW_ACKS="${WALSTATE_FOLLOW_ACKS:-3000}" \
  //tests/replication:replication_test 2>&1 |
  grep -E "^\[ +(OK|FAILED|RUN) +\]|acknowledged|cycles|restore:|^log:|^snapshot:|PASSED|FAILED|Executed"
