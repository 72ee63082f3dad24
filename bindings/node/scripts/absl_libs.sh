#!/usr/bin/env bash
# The Abseil link flags the engine needs (the list third_party/BUILD.bazel
# gives Bazel), for binding.gyp.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
python3 - "$root/third_party/BUILD.bazel" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"ABSL_LIBS = \[(.*?)\]", text, re.S).group(1)
print(" ".join("-labsl_" + n for n in re.findall(r'"([a-z0-9_]+)"', block)))
PY
