#!/usr/bin/env bash
# Runs the binding's benchmark under Node (walstate vs better-sqlite3) and
# under Bun (walstate vs bun:sqlite) in one go, rounds alternating between
# the runtimes (one `bench.mjs --rounds 1` process each), and writes the
# table of medians into bindings/node/README.md. Installs better-sqlite3
# 12.11.x here the first time (built from source against /usr/include/node,
# no prebuilt download: a few minutes).
#   bench/run.sh [--rounds N (default 5)] [bench.mjs flags, e.g. --sessions 100000]
set -euo pipefail
cd "$(dirname "$0")"
rounds=5
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--rounds" ]; then rounds=$2; shift 2; else args+=("$1"); shift; fi
done
bash ../scripts/setup.sh
bash ../scripts/build.sh >/dev/null
if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  npm_config_build_from_source=true npm_config_nodedir=/usr \
    npm install --no-audit --no-fund --loglevel=error
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/walstate-nbench-results.XXXXXX")
echo "raw results (one JSON per process): $out" >&2
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds: node, bun (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  node bench.mjs --rounds 1 "${args[@]}" >"$out/node-$r.json"
  ../node_modules/.bin/bun bench.mjs --rounds 1 "${args[@]}" >"$out/bun-$r.json"
done
node report.mjs --command "bench/run.sh --rounds $rounds${args[*]:+ ${args[*]}}" "$out"/node-*.json "$out"/bun-*.json
