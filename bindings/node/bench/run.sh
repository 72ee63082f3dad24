#!/usr/bin/env bash
# Runs the binding's benchmark under Node (walstate vs better-sqlite3) and
# under Bun (walstate vs bun:sqlite) in one go, and writes the table into
# bindings/node/README.md. Installs better-sqlite3 12.11.x here the first
# time (built from source against /usr/include/node: a few minutes).
#   bench/run.sh [bench.mjs flags, e.g. --rounds 5 --sessions 100000]
set -euo pipefail
cd "$(dirname "$0")"
bash ../scripts/setup.sh
bash ../scripts/build.sh >/dev/null
if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  npm_config_nodedir=/usr npm install --no-audit --no-fund --loglevel=error
fi
out=$(mktemp -d)
node bench.mjs "$@" >"$out/node.json"
../node_modules/.bin/bun bench.mjs "$@" >"$out/bun.json"
node report.mjs "$out/node.json" "$out/bun.json"
rm -rf "$out"
