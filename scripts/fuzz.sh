#!/usr/bin/env bash
# Builds walstate's libFuzzer targets (tests/fuzz, clang with ASan+UBSan) and
# runs each for a bounded time on a copy of its seed corpus, then prints, per
# target, the executions, the coverage libFuzzer reports (cov/ft of its final
# stats line) and the crashes found. Exits 1 if any target crashed (or timed
# out, ran out of memory or leaked): the input that did it is kept under /tmp
# and its path printed, with the command that reproduces it.
#
# Usage: scripts/fuzz.sh [--seconds S] [--target NAME]... [--keep]
#                        [-- LIBFUZZER_FLAG...]
#   --seconds S   run each target for S seconds (default 20: the CI run);
#                 docs/fuzzing.md has the long run (600 s per target)
#   --target NAME only this target (reader, snapshot, manifest, dir_image);
#                 repeatable; default all
#   --keep        keep the work directory (grown corpora, logs) even when
#                 nothing crashed
#   after --      extra flags for every libFuzzer run (e.g. -jobs=2)
#
# The build uses its own Bazel output base, so that clang's toolchain does not
# replace gcc's in the tree's usual one: $WALSTATE_FUZZ_OUTPUT_BASE, default
# ~/.cache/walstate-fuzz/<hash of this checkout's path>.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=20
keep=0
targets=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --target) targets+=("$2"); shift 2 ;;
    --target=*) targets+=("${1#*=}"); shift ;;
    --keep) keep=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: --seconds needs a positive number" >&2
  exit 64
fi
all_targets=(reader snapshot manifest dir_image)
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [ ! -d "tests/fuzz/corpus/$t" ]; then
    echo "fuzz.sh: unknown target $t (have: ${all_targets[*]})" >&2
    exit 64
  fi
done

output_base="${WALSTATE_FUZZ_OUTPUT_BASE:-$HOME/.cache/walstate-fuzz/$(printf %s "$root" | md5sum | cut -c1-12)}"
# A short idle timeout: this server is only needed while the script runs.
bazel_cmd=(bazel --output_base="$output_base" --max_idle_secs=600)
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:${t}_fuzzer"); done

echo "=== fuzz: building ${labels[*]} (--config=fuzz, output base $output_base)"
build_log=$(mktemp)
if ! "${bazel_cmd[@]}" build --config=fuzz "${labels[@]}" >"$build_log" 2>&1; then
  grep -v "^\(Loading\|Analyzing\|INFO\)" "$build_log" | tail -40
  rm -f "$build_log"
  echo "fuzz: build failed"
  exit 1
fi
rm -f "$build_log"
bin_dir=$("${bazel_cmd[@]}" info --config=fuzz bazel-bin 2>/dev/null | tail -n1)

work=$(mktemp -d /tmp/walstate-fuzz.XXXXXX)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

crashed=0
summary=()
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  log="$work/$t.log"
  echo "=== fuzz: $t for ${seconds}s"
  # Per-target extras: a dictionary, and default flags (one per line).
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  if [ -f "tests/fuzz/$t.flags" ]; then
    while IFS= read -r flag; do
      [ -n "$flag" ] && [ "${flag#\#}" = "$flag" ] && dict+=("$flag")
    done <"tests/fuzz/$t.flags"
  fi
  "$bin_dir/tests/fuzz/${t}_fuzzer" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${dict[@]}" "${extra[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  # The final stats line ("#N DONE cov: X ft: Y ..."), else the last status
  # line before a crash.
  last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)
  [ -n "$done_line" ] && last="$done_line"
  execs=$(grep -oE '^stat::number_of_executed_units:[[:space:]]*[0-9]+' "$log" | grep -oE '[0-9]+$')
  [ -z "$execs" ] && execs=$(printf '%s' "$last" | sed -nE 's/^#([0-9]+).*/\1/p')
  cov=$(printf '%s' "$last" | sed -nE 's/.* cov: ([0-9]+).*/\1/p')
  ft=$(printf '%s' "$last" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
  corp=$(printf '%s' "$last" | sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p')
  found=()
  while IFS= read -r f; do [ -n "$f" ] && found+=("$f"); done \
    < <(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  n=${#found[@]}
  if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
    # libFuzzer failed without saving an input (e.g. a crash at start-up).
    n=1
  fi
  summary+=("$(printf '%-10s execs %-9s cov %-6s ft %-7s corpus %-5s crashes %s' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$n")")
  echo "${summary[-1]}"
  if [ "$n" -ne 0 ]; then
    crashed=$((crashed + 1))
    echo "--- $t: libFuzzer exited $rc; log $log"
    grep -nE '==[0-9]+==ERROR|runtime error|invariant failed|Test unit written|SUMMARY|deadly signal|out-of-memory|timeout' "$log" | head -20
    sed -n '/==ERROR\|invariant failed\|runtime error/,/SUMMARY/p' "$log" | head -60
    for f in "${found[@]}"; do
      echo "crashing input: $f"
      echo "reproduce: $bin_dir/tests/fuzz/${t}_fuzzer $f"
      echo "       or: bazel test //tests/fuzz:${t}_corpus_test after copying it into tests/fuzz/corpus/$t/"
    done
  fi
done

echo "=== fuzz: ${seconds}s per target"
for line in "${summary[@]}"; do echo "$line"; done
if [ "$crashed" -ne 0 ]; then
  # Keep logs and crashing inputs; the grown corpora are not needed.
  [ "$keep" -eq 0 ] && rm -rf "$work/corpus"
  echo "fuzz: $crashed of ${#targets[@]} targets crashed; inputs and logs in $work"
  exit 1
fi
if [ "$keep" -eq 1 ]; then
  echo "fuzz: no crashes; work directory kept: $work"
else
  rm -rf "$work"
  echo "fuzz: no crashes"
fi
exit 0
