#!/bin/bash
# Kill points reach only test and tool binaries: walstress links the
# environment-driven hook (//engine/fs:kill_point_env); walctl and the demo, as
# production binaries, must contain neither it nor the variable's name.
# Also: every KillPoint("...") the engine calls is a name walstress lists.
# Usage: kill_point_binaries_test.sh WALSTRESS WALCTL DEMO ENGINE_SOURCES...
set -u
walstress=$1 walctl=$2 demo=$3
shift 3
failed=0
if ! grep -q WALSTATE_KILL_POINT "$walstress"; then
  echo "FAIL: $walstress lacks the kill point hook (WALSTATE_KILL_POINT)"
  failed=1
fi
for bin in "$walctl" "$demo"; do
  if grep -q WALSTATE_KILL_POINT "$bin"; then
    echo "FAIL: production binary $bin contains the kill point hook"
    failed=1
  fi
done
listed=$("$walstress" kill-points | sort)
called=$(grep -ho 'KillPoint("[^"]*")' "$@" | sed 's/KillPoint("\(.*\)")/\1/' | sort -u)
if [ -z "$called" ]; then
  echo "FAIL: found no KillPoint(\"...\") call in the engine sources"
  failed=1
fi
if [ "$listed" != "$called" ]; then
  echo "FAIL: walstress kill-points and the engine's KillPoint calls differ:"
  diff <(echo "$listed") <(echo "$called")
  failed=1
fi
[ $failed -eq 0 ] && echo "PASS: $(echo "$called" | wc -l) kill points, none in walctl or demo"
exit $failed
