#!/usr/bin/env bash
# Kill tests for walstate with walstress: run the workload, SIGKILL it, check
# the directory against the ack log, continue on the same directory, again.
#
# usage: kill_loop.sh WALSTRESS [random|points|both]
#
#   random  KILL_ITERATIONS times: `walstress run` on one growing directory,
#           SIGKILL after a random 0.3-3 s (one in five: 20-300 ms, during
#           the restart), `walstress check`.
#   points  for every name `walstress kill-points` prints and every n in
#           KILL_POINT_OCCURRENCES: WALSTATE_KILL_POINT=<name>:<n> walstress
#           run (the engine kills itself there), then check. A point the run
#           does not reach within KILL_POINT_RUN_S is reported "not reached"
#           and the clean run is checked anyway.
#
# Environment (defaults in brackets):
#   KILL_ITERATIONS [3]          random-mode iterations (CI keeps it small)
#   KILL_POINT_OCCURRENCES [1]   e.g. "1 2 5" to also kill at later passes
#   KILL_POINT_RUN_S [3]         longest run per kill point
#   KILL_SEED [$RANDOM]          base seed; iteration i uses seed+i
#   KILL_SESSIONS [200] KILL_THREADS [8] KILL_FLUSH_MS [50]
#   KILL_WORKDIR [$TEST_TMPDIR or a new temp dir]
#   KILL_EXTRA_FLAGS []          more `walstress run` flags for random mode,
#                                e.g. "--max-segment-bytes 65536
#                                --compact-interval-ms 200 --op-interval-ms 50"
#
# Prints one line per iteration and a summary; on the first lost update it
# keeps the crash image (before check reopened it), prints how to reproduce,
# and exits 1.
set -u

WALSTRESS=${1:?usage: kill_loop.sh WALSTRESS [random|points|both]}
MODE=${2:-both}
case "$MODE" in random|points|both) ;; *)
  echo "kill_loop.sh: mode must be random, points or both, got '$MODE'" >&2
  exit 64 ;;
esac
ITER=${KILL_ITERATIONS:-3}
OCC=${KILL_POINT_OCCURRENCES:-1}
RUN_S=${KILL_POINT_RUN_S:-3}
SEED=${KILL_SEED:-$RANDOM}
SESSIONS=${KILL_SESSIONS:-200}
THREADS=${KILL_THREADS:-8}
FLUSH_MS=${KILL_FLUSH_MS:-50}
WORK=${KILL_WORKDIR:-${TEST_TMPDIR:-$(mktemp -d /tmp/walstress-kill-XXXXXX)}}
mkdir -p "$WORK"
RANDOM=$SEED  # the kill delays follow the seed too

total_iter=0
total_acked=0
total_lost=0
failed=0

# check DIR ACK LABEL: runs walstress check; sets LAST_ACKED / LAST_LOST;
# returns its exit code.
check() {
  local dir=$1 ack=$2 label=$3 out rc line
  out=$(env -u WALSTATE_KILL_POINT "$WALSTRESS" check --dir "$dir" \
        --ack-log "$ack" 2>&1)
  rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^acked: ' | tail -1)
  LAST_ACKED=$(printf '%s' "$line" | sed -E 's/^acked: ([0-9]+).*/\1/')
  LAST_LOST=$(printf '%s' "$line" | sed -E 's/.*lost: ([0-9a-z]+).*/\1/')
  [[ "$LAST_ACKED" =~ ^[0-9]+$ ]] || LAST_ACKED=0
  [[ "$LAST_LOST" =~ ^[0-9]+$ ]] || LAST_LOST=1
  if [ $rc -ne 0 ]; then
    printf '%s\n' "$out" | grep -v '^recovery: ' | head -40 | sed "s/^/  $label: /"
  fi
  return $rc
}

# fail LABEL IMAGE REPRO: reports a failure and where its image is kept.
fail() {
  echo "FAIL $1: crash image kept in $2"
  echo "  reproduce: $3"
  failed=1
}

run_random() {
  local base=$WORK/random dir ack i seed delay pid rc
  rm -rf "$base"
  mkdir -p "$base"
  dir=$base/data
  ack=$base/ack.log
  for ((i = 1; i <= ITER; i++)); do
    seed=$((SEED + i))
    # Mostly mid-run; one kill in five lands early, in or right after the
    # resumed run's Open (tail repair, tick aborts, the start-up check).
    if ((RANDOM % 5 == 0)); then
      delay=$((20 + RANDOM % 280))
    else
      delay=$((300 + RANDOM % 2700))
    fi
    "$WALSTRESS" run --dir "$dir" --ack-log "$ack" --seed "$seed" \
      --sessions "$SESSIONS" --threads "$THREADS" \
      --flush-interval-ms "$FLUSH_MS" --duration-s 120 ${KILL_EXTRA_FLAGS:-} \
      >"$base/run.$i.log" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    total_iter=$((total_iter + 1))
    rm -rf "$base/image"
    [ -d "$dir" ] && cp -a "$dir" "$base/image"
    cp "$ack" "$base/image.ack.log"
    if [ $rc -ne 137 ]; then
      echo "random $i: run ended with $rc before the kill:"
      tail -20 "$base/run.$i.log" | sed 's/^/  /'
      fail "random $i" "$base/image" "$WALSTRESS check --dir <copy of $base/image> --ack-log <copy of $base/image.ack.log>"
      return
    fi
    if check "$dir" "$ack" "random $i"; then
      echo "random $i: killed after ${delay} ms (seed $seed): acked $LAST_ACKED, lost 0"
    else
      echo "random $i: killed after ${delay} ms (seed $seed): acked $LAST_ACKED, lost $LAST_LOST"
      fail "random $i" "$base/image" "$WALSTRESS check --dir <copy of $base/image> --ack-log <copy of $base/image.ack.log>"
      total_lost=$((total_lost + LAST_LOST))
      total_acked=$((total_acked + LAST_ACKED))
      return
    fi
  done
  total_acked=$((total_acked + LAST_ACKED))
  echo "random: iterations $ITER, acked $LAST_ACKED, lost 0"
}

# A torn last record (random bytes after the last one), as a crash in the
# middle of a write leaves it: recovery must cut it off (open.after_truncate).
tear_tail() {
  local dir=$1 last
  last=$(ls "$dir"/*.wal 2>/dev/null | sort | tail -1)
  [ -n "$last" ] && head -c 61 /dev/urandom >>"$last"
}

# The flags of every kill-point run: small segments, frequent compactions and
# small tick write/sync sizes, so that each point is passed within seconds.
point_flags() {
  echo --sessions "$SESSIONS" --threads "$THREADS" \
    --flush-interval-ms "$FLUSH_MS" --compact-interval-ms 400 \
    --max-segment-bytes 262144 --tick-write-bytes 16384 \
    --tick-sync-bytes 65536
}

run_points() {
  local base=$WORK/points name n dir ack rc outcome killed=0 unreached=0
  local names pid
  rm -rf "$base"
  mkdir -p "$base"
  names=$("$WALSTRESS" kill-points) || { echo "walstress kill-points failed"; failed=1; return; }
  for name in $names; do
    dir=$base/$name/data
    ack=$base/$name/ack.log
    mkdir -p "$base/$name"
    for n in $OCC; do
      if [ "$name" = open.after_truncate ]; then
        # Open only truncates a torn tail: make history, then tear it.
        if [ ! -d "$dir" ]; then
          "$WALSTRESS" run --dir "$dir" --ack-log "$ack" --seed "$SEED" \
            --duration-s 1 $(point_flags) >"$base/$name/warmup.log" 2>&1
        fi
        tear_tail "$dir"
      fi
      # In the background, so that the shell does not report the kill.
      WALSTATE_KILL_POINT="$name:$n" "$WALSTRESS" run --dir "$dir" \
        --ack-log "$ack" --seed "$((SEED + n))" --duration-s "$RUN_S" \
        $(point_flags) >"$base/$name/run.$n.log" 2>&1 &
      pid=$!
      wait "$pid" 2>/dev/null
      rc=$?
      total_iter=$((total_iter + 1))
      case $rc in
        137) outcome=killed; killed=$((killed + 1)) ;;
        0) outcome="not reached"; unreached=$((unreached + 1)) ;;
        *) echo "point $name:$n: run failed with $rc:"
           tail -20 "$base/$name/run.$n.log" | sed 's/^/  /'
           fail "point $name:$n" "$dir" "WALSTATE_KILL_POINT=$name:$n $WALSTRESS run --dir D --ack-log F --seed $((SEED + n)) --duration-s $RUN_S $(point_flags)"
           continue ;;
      esac
      rm -rf "$base/$name/image"
      [ -d "$dir" ] && cp -a "$dir" "$base/$name/image"
      cp "$ack" "$base/$name/image.ack.log"
      if check "$dir" "$ack" "point $name:$n"; then
        echo "point $name:$n: $outcome, acked $LAST_ACKED, lost 0"
      else
        echo "point $name:$n: $outcome, acked $LAST_ACKED, lost $LAST_LOST"
        total_lost=$((total_lost + LAST_LOST))
        fail "point $name:$n" "$base/$name/image" "WALSTATE_KILL_POINT=$name:$n $WALSTRESS run --dir D --ack-log F --seed $((SEED + n)) --duration-s $RUN_S $(point_flags); then check a copy of the image with its ack log"
      fi
    done
    total_acked=$((total_acked + LAST_ACKED))
  done
  echo "points: $(echo $names | wc -w) names x occurrences ($OCC): killed $killed, not reached $unreached"
  # A walstress built without //engine/fs:kill_point_env reaches every point
  # without dying: that is a broken build, not a pass.
  if [ "$killed" -eq 0 ]; then
    echo "points: no run was killed: is walstress linked with //engine/fs:kill_point_env?"
    failed=1
  fi
}

echo "kill_loop: mode $MODE, seed $SEED, work dir $WORK"
case "$MODE" in
  random) run_random ;;
  points) run_points ;;
  both) run_random; [ $failed -eq 0 ] && run_points ;;
esac
echo "kill_loop summary: iterations $total_iter, acked $total_acked, lost $total_lost"
if [ $failed -ne 0 ]; then
  echo "kill_loop: FAILED"
  exit 1
fi
echo "kill_loop: PASSED"
