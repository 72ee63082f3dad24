#!/usr/bin/env bash
# Builds the addon offline against the Node headers the installed nodejs
# package ships (/usr/include/node): no step downloads headers or binaries.
# Run by `npm install` / `npm run build` in bindings/node.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(cd ../.. && pwd)"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "walstate: cannot build the addon: '$1' is missing ($2)." >&2
    echo "walstate: run scripts/setup.sh from the repository root." >&2
    exit 1
  fi
}
need protoc "Debian package protobuf-compiler"
need g++ "Debian package g++"
need python3 "Debian package python3"
for h in /usr/include/node/node_api.h \
         /usr/include/google/protobuf/compiler/importer.h \
         /usr/include/absl/status/status.h /usr/include/xxhash.h; do
  if [ ! -f "$h" ]; then
    echo "walstate: cannot build the addon: $h is missing." >&2
    echo "walstate: run scripts/setup.sh from the repository root (it installs nodejs, libprotoc-dev, libabsl-dev, libxxhash-dev)." >&2
    exit 1
  fi
done
if [ ! -d node_modules/node-addon-api ] || [ ! -d node_modules/node-gyp ]; then
  echo "walstate: node-addon-api and node-gyp are missing: run 'npm install --ignore-scripts' in bindings/node first." >&2
  exit 1
fi

# Generated into a scratch directory and copied only where it changed, so
# that an unchanged schema does not rebuild everything that includes it.
gen=gen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The public options.proto is "walstate/options.proto" (include/ in the repo).
protoc --proto_path="$root/include" --proto_path=/usr/include --cpp_out="$tmp" \
  "$root/include/walstate/options.proto"
protoc --proto_path="$root" --proto_path=/usr/include --cpp_out="$tmp" \
  "$root/proto/walstate/record.proto"
(cd "$tmp" && find . -type f) | while read -r f; do
  mkdir -p "$gen/$(dirname "$f")"
  cmp -s "$tmp/$f" "$gen/$f" || cp "$tmp/$f" "$gen/$f"
done
# The package ships options.proto so editors and protoc resolve the import.
mkdir -p proto/walstate
cp "$root/include/walstate/options.proto" proto/walstate/options.proto

# --nodedir: the headers from the nodejs package; without it node-gyp would
# try to download them.
# Configured every time (the engine's source list may change; a second),
# then built incrementally.
gyp=node_modules/.bin/node-gyp
"$gyp" configure --nodedir=/usr >/dev/null
"$gyp" build --nodedir=/usr -j 2
