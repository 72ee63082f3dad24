#!/usr/bin/env bash
# Runs the binding's tests under Node (node --test) and under Bun (bun test,
# the same files), after building the addon. Ends with "N passed, M failed"
# (test cases of both runs), which the repository's scripts/test.sh adds to
# its own. CI counts are small (WALSTATE_NODE_CRASH_CYCLES=3,
# WALSTATE_NODE_LEAK_UPDATES=200000); scripts/crash_cycles.sh and
# scripts/leak_check.sh run the full ones.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
if ! bash scripts/setup.sh || ! bash scripts/build.sh >/tmp/walstate-node-build.$$ 2>&1; then
  tail -40 /tmp/walstate-node-build.$$ 2>/dev/null
  rm -f /tmp/walstate-node-build.$$
  echo "node: the addon did not build"
  echo "0 passed, 1 failed"
  exit 1
fi
rm -f /tmp/walstate-node-build.$$

log=$(mktemp)
# Adds the counts a runner's log gives (sed patterns for passed and failed;
# a non-zero exit with no failure counted counts as one) to the totals.
count() {
  local rc=$1 pass_re=$2 fail_re=$3 p f
  p=$(sed -n "s/${pass_re}/\1/p" "$log" | tail -1)
  f=$(sed -n "s/${fail_re}/\1/p" "$log" | tail -1)
  [ -z "$p" ] && p=0
  [ -z "$f" ] && f=0
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$log"; fi
  passed=$((passed + p))
  failed=$((failed + f))
}

echo "=== node: node --test"
node --test --test-reporter=tap test/*.test.mjs >"$log" 2>&1
rc=$?
grep -E "^(not ok|# (tests|pass|fail|crash|leak))|^# \\\\# " "$log"
grep -A30 "^not ok" "$log" | head -80
count "$rc" '^# pass \([0-9]*\)$' '^# fail \([0-9]*\)$'

echo "=== node: bun test (Bun $(node_modules/.bin/bun --version))"
node_modules/.bin/bun test test/ >"$log" 2>&1
rc=$?
grep -E "^\(fail\)|^ *[0-9]+ (pass|fail|skip)$" "$log"
count "$rc" '^ *\([0-9]*\) pass$' '^ *\([0-9]*\) fail$'
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
