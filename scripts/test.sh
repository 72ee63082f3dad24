#!/usr/bin/env bash
# Runs every test walstate has, the way CI does:
#   1. the whole suite (unit, engine, crash sample, walctl, kill test, bench smoke);
#   2. the suite again under ASan+UBSan (tests tagged "no_asan" excepted);
#   3. the concurrency tests (tag "concurrency") under TSan;
#   3b. the state, snapshot, log, engine and crash-sample tests built with
#      --config=portable_protobuf (engine/state/proto_wire.h's public-API
#      path, the one a protobuf other than 3.21 selects);
#   4. a short, bounded libFuzzer run of every fuzz target;
#   5. the installed package (scripts/test_package.sh: CMake build, install,
#      Debian packages installed with apt-get,
#      examples/embed against the install; also with --quick);
#   6. the Node.js binding's tests, under Node and under Bun
#      (bindings/node/scripts/test.sh; also with --quick).
#   7. the replication tests (tag "replication") against a 3-node NATS
#      cluster on loopback that the test starts and stops itself, with
#      reduced counts (scripts/replication_full.sh runs the full ones).
# Ends with one line "N passed, M failed" counting test cases (GoogleTest
# cases from each target's test.xml; a target without cases counts as one).
# Usage: scripts/test.sh [--quick]   (--quick: step 1 only)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1

# Explicit packages rather than //...: Bazel's output links (bazel-<dir>)
# would otherwise be walked as packages.
TARGETS=(//engine/... //proto/... //tests/... //tools/... //bench/...)

total_passed=0
total_failed=0
failed_steps=()

# Runs one `bazel test` invocation and adds its test cases to the totals.
run_step() {
  local name="$1"; shift
  echo "=== ${name}: bazel test $*"
  local log
  log=$(mktemp)
  bazel test --keep_going --nocache_test_results "$@" >"$log" 2>&1
  local rc=$?
  grep -E "^(//|INFO: Build|FAIL|ERROR|Executed)" "$log" || true
  local counts
  local flags=()
  for a in "$@"; do [[ "$a" == --* ]] && flags+=("$a"); done
  local testlogs
  testlogs=$(bazel info "${flags[@]}" bazel-testlogs 2>/dev/null | tail -n1)
  counts=$(python3 scripts/count_tests.py "$log" "$testlogs")
  local p f
  p=${counts% *}
  f=${counts#* }
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    # The build itself failed, or a target crashed before writing results.
    f=1
  fi
  echo "=== ${name}: ${p} passed, ${f} failed"
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  [ "$f" -ne 0 ] && failed_steps+=("$name")
  rm -f "$log"
}

run_step "suite" --test_tag_filters=-replication "${TARGETS[@]}"
if [ "$quick" -eq 0 ]; then
  run_step "asan+ubsan" --config=asan --test_tag_filters=-no_asan,-benchmark,-replication "${TARGETS[@]}"
  run_step "tsan" --config=tsan --test_tag_filters=concurrency "${TARGETS[@]}"
  # A different --copt rebuilds what these targets link, so the list stays
  # short: the layers proto_wire serves, and a sample of crash runs.
  run_step "portable-protobuf" --config=portable_protobuf \
    --test_tag_filters=-replication,-benchmark \
    //tests/state/... //tests/snapshot/... //tests/log/... //tests/engine/... \
    //tests/crash:crash_driver_test //tests/crash:regression_test
  if [ -x scripts/fuzz.sh ]; then
    echo "=== fuzz: bounded run"
    # A fixed seed keeps the CI run reproducible; vary it for exploration.
    if bash scripts/fuzz.sh --seconds "${WALSTATE_FUZZ_SECONDS:-20}" -- \
      -seed="${WALSTATE_FUZZ_SEED:-1}"; then
      total_passed=$((total_passed + 1))
    else
      total_failed=$((total_failed + 1))
      failed_steps+=("fuzz")
    fi
  fi
fi

# The installed package: the CMake build installed into a temporary prefix,
# examples/embed built against it alone (CMake and pkg-config) and run, the
# installed walctl verify on what it wrote, each installed header alone.
pkg_log=$(mktemp)
bash scripts/test_package.sh 2>&1 | tee "$pkg_log"
pkg_counts=$(grep -E '^package: [0-9]+ passed, [0-9]+ failed$' "$pkg_log" | tail -1)
rm -f "$pkg_log"
[ -z "$pkg_counts" ] && pkg_counts="package: 0 passed, 1 failed"
pkg_p=${pkg_counts#package: }
pkg_p=${pkg_p%% passed*}
pkg_f=${pkg_counts#*, }
pkg_f=${pkg_f%% failed*}
total_passed=$((total_passed + pkg_p))
total_failed=$((total_failed + pkg_f))
[ "$pkg_f" -ne 0 ] && failed_steps+=("package")

# The Node.js/Bun binding: builds the addon, runs node --test and bun test.
node_log=$(mktemp)
bash bindings/node/scripts/test.sh 2>&1 | tee "$node_log"
node_counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$node_log" | tail -1)
rm -f "$node_log"
if [ -z "$node_counts" ]; then
  node_counts="0 passed, 1 failed"
fi
node_p=${node_counts%% passed*}
node_f=${node_counts#*, }
node_f=${node_f%% failed*}
echo "=== node: ${node_p} passed, ${node_f} failed"
total_passed=$((total_passed + node_p))
total_failed=$((total_failed + node_f))
[ "$node_f" -ne 0 ] && failed_steps+=("node")
if [ "$quick" -eq 0 ]; then
  run_step "replication" --test_tag_filters=replication //tests/replication/...
fi

[ ${#failed_steps[@]} -gt 0 ] && echo "failed steps: ${failed_steps[*]}"
echo "${total_passed} passed, ${total_failed} failed"
[ "$total_failed" -eq 0 ]
