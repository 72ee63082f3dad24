#!/usr/bin/env bash
# The engine's sources for binding.gyp (relative to bindings/node): every
# engine/**/*.cc but the test-only kill-point hook and the NATS replicator
# (engine/replication/nats/, which needs the NATS client library). Interim, until the addon
# links the top-level CMake build's static library.
set -euo pipefail
cd "$(dirname "$0")/../../.."
find engine -name '*.cc' ! -name 'kill_point_env.cc' ! -name '*_test.cc' ! -path 'engine/replication/nats/*' | sort | sed 's|^|../../|'
