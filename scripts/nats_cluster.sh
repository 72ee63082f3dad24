#!/usr/bin/env bash
# A 3-node nats-server cluster with JetStream on loopback, for replication
# tests and development (docs/replication.md).
#
#   scripts/nats_cluster.sh start DIR      start n1..n3, wait for the JetStream
#                                          metadata leader; DIR/env holds
#                                          WALSTATE_NATS_URL
#   scripts/nats_cluster.sh stop DIR       stop every node (TERM, then KILL)
#   scripts/nats_cluster.sh kill DIR N [SIG]   signal node N (default KILL)
#   scripts/nats_cluster.sh killall DIR    SIGKILL every node in one kill(1)
#   scripts/nats_cluster.sh restart DIR N  start node N again (same store)
#   scripts/nats_cluster.sh wait DIR       wait until a metadata leader exists
#   scripts/nats_cluster.sh ensure DIR     restart the nodes that are down, wait
#   scripts/nats_cluster.sh run -- CMD...  start a cluster in a temporary
#                                          directory, run CMD with
#                                          WALSTATE_NATS_URL and
#                                          WALSTATE_NATS_CLUSTER (the DIR) set,
#                                          stop the cluster whatever happens
#
# Every node listens on 127.0.0.1 only, on free ports chosen at start
# (client, cluster route, and HTTP monitoring, whose /jsz says whether the
# node knows a JetStream metadata leader: the condition `wait` polls), with
# its own store directory DIR/nN and log DIR/nN.log.
set -euo pipefail

NODES=3
# How long to wait for a metadata leader (polling with a backoff of 0.1 s
# doubling to 1 s): 60 s, times the 1-minute load average per core on a
# loaded machine (at most 8x), times WALSTATE_TEST_TIMEOUT_SCALE if set.
wait_seconds() {
  python3 - <<'PY'
import os
scale = min(8.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
scale *= float(os.environ.get("WALSTATE_TEST_TIMEOUT_SCALE") or 1) or 1
print(int(60 * scale))
PY
}

die() { echo "nats_cluster: $*" >&2; exit 1; }

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

start_node() {
  local dir="$1" n="$2"
  command -v nats-server >/dev/null || die "nats-server is not installed (run scripts/setup.sh)"
  # setsid: the node survives its starter's exit but not `stop`.
  setsid nats-server -c "$dir/n$n.conf" >>"$dir/n$n.log" 2>&1 < /dev/null &
  echo $! >"$dir/n$n.pid"
}

# Exit 0 if every node on the HTTP monitoring ports given names a JetStream
# metadata leader in its /jsz (meta_cluster.leader); prints who does not.
meta_leaders_known() {
  python3 - "$@" <<'PY'
import json, sys, urllib.request
missing = []
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/jsz" % port, timeout=2) as r:
            leader = (json.load(r).get("meta_cluster") or {}).get("leader")
    except Exception as e:
        leader = None
    if not leader:
        missing.append(port)
if missing:
    print("no metadata leader known at monitoring port(s) " + " ".join(missing))
    sys.exit(1)
PY
}

wait_leader() {
  local dir="$1" limit delay=0.1 why=""
  limit=$(wait_seconds)
  local until=$((SECONDS + limit))
  while true; do
    # Every live node must know a metadata leader (its /jsz says which).
    local ports=()
    for ((n = 1; n <= NODES; n++)); do
      [ -f "$dir/n$n.pid" ] || continue
      kill -0 "$(cat "$dir/n$n.pid")" 2>/dev/null || continue
      ports+=("$(cat "$dir/n$n.http")")
    done
    why=$(meta_leaders_known "${ports[@]}") && return 0
    [ "$SECONDS" -lt "$until" ] || break
    sleep "$delay"
    case "$delay" in 0.1) delay=0.2 ;; 0.2) delay=0.4 ;; 0.4) delay=0.8 ;; *) delay=1 ;; esac
  done
  for ((n = 1; n <= NODES; n++)); do
    echo "--- $dir/n$n.log (last lines)" >&2
    tail -n 5 "$dir/n$n.log" >&2 || true
  done
  die "no JetStream metadata leader known to every running node within ${limit} s: ${why} (logs above; on a slower machine set WALSTATE_TEST_TIMEOUT_SCALE)"
}

cmd_start() {
  local dir="$1"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  read -r -a ports <<<"$(free_ports $((3 * NODES)))"
  local routes=""
  for ((n = 1; n <= NODES; n++)); do
    routes+="nats-route://127.0.0.1:${ports[$((NODES + n - 1))]}, "
  done
  routes=${routes%, }
  local urls=""
  for ((n = 1; n <= NODES; n++)); do
    mkdir -p "$dir/n$n"
    cat >"$dir/n$n.conf" <<CONF
server_name: n$n
listen: 127.0.0.1:${ports[$((n - 1))]}
http: 127.0.0.1:${ports[$((2 * NODES + n - 1))]}
jetstream { store_dir: "$dir/n$n" }
cluster {
  name: c1
  listen: 127.0.0.1:${ports[$((NODES + n - 1))]}
  routes: [$routes]
}
CONF
    urls+="nats://127.0.0.1:${ports[$((n - 1))]},"
    echo "${ports[$((2 * NODES + n - 1))]}" >"$dir/n$n.http"
    : >"$dir/n$n.log"
  done
  echo "WALSTATE_NATS_URL=${urls%,}" >"$dir/env"
  for ((n = 1; n <= NODES; n++)); do start_node "$dir" "$n"; done
  wait_leader "$dir"
  echo "nats_cluster: 3 nodes up in $dir (${urls%,})" >&2
}

cmd_stop() {
  local dir="$1"
  for ((n = 1; n <= NODES; n++)); do
    local f="$dir/n$n.pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((n = 1; n <= NODES; n++)); do
    local f="$dir/n$n.pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

cmd_kill() {
  local dir="$1" n="$2" sig="${3:-KILL}"
  local pid
  pid=$(cat "$dir/n$n.pid") || die "node $n is not running"
  kill -"$sig" "$pid"
  # Reaped by init (setsid); wait until it is gone, bounded.
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/n$n.pid"; return 0; }
    sleep 0.05
  done
  die "node $n (pid $pid) did not exit after SIG$sig"
}

cmd_killall() {
  local dir="$1" pids=()
  for ((n = 1; n <= NODES; n++)); do
    [ -f "$dir/n$n.pid" ] && pids+=("$(cat "$dir/n$n.pid")")
  done
  kill -KILL "${pids[@]}"
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  done
  for ((n = 1; n <= NODES; n++)); do rm -f "$dir/n$n.pid"; done
}

cmd_restart() {
  local dir="$1" n="$2"
  start_node "$dir" "$n"
}

cmd_ensure() {
  local dir="$1" any=0
  for ((n = 1; n <= NODES; n++)); do
    if [ -f "$dir/n$n.pid" ] && kill -0 "$(cat "$dir/n$n.pid")" 2>/dev/null; then
      continue
    fi
    cmd_restart "$dir" "$n"
    any=1
  done
  [ "$any" -eq 0 ] || wait_leader "$dir"
}

case "${1:-}" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  kill) cmd_kill "$2" "$3" "${4:-KILL}" ;;
  killall) cmd_killall "$2" ;;
  restart) cmd_restart "$2" "$3" ;;
  wait) wait_leader "$2" ;;
  ensure) cmd_ensure "$2" ;;
  run)
    shift
    [ "${1:-}" = "--" ] && shift
    dir=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/nats-cluster.XXXXXX")
    trap 'cmd_stop "$dir"; rm -rf "$dir"' EXIT
    trap 'exit 130' INT TERM
    cmd_start "$dir"
    # shellcheck disable=SC1091
    source "$dir/env"
    export WALSTATE_NATS_URL WALSTATE_NATS_CLUSTER="$dir"
    export WALSTATE_NATS_SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
    "$@"
    ;;
  *) sed -n '2,20p' "$0" >&2; exit 64 ;;
esac
