#!/usr/bin/env bash
# Installs the npm packages of bindings/node (node-addon-api, node-gyp,
# typescript, bun) by name from package-lock.json, and builds the addon
# (package.json's install script). Called by the repository's
# scripts/setup.sh once nodejs and npm are there. Quiet when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ -f build/Release/walstate.node ]; then
  exit 0
fi
echo "setup: npm ci in bindings/node (builds the addon)" >&2
# nodedir: node-gyp builds against the installed headers, never downloads.
npm_config_nodedir=/usr npm ci --no-audit --no-fund --loglevel=error >&2
