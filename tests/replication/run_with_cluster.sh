#!/usr/bin/env bash
# Runs a replication test binary inside a fresh 3-node NATS cluster.
set -euo pipefail
exec "$TEST_SRCDIR/$TEST_WORKSPACE/scripts/nats_cluster.sh" run -- "$@"
