#!/usr/bin/env bash
# Builds every libFuzzer harness of Tests/Fuzz with -sanitize=fuzzer,address (release, in
# .build-fuzz so the normal build is untouched) and runs each for a bounded time, starting from its
# committed seed corpus. Fails on any crash, leak, timeout or broken invariant, and names the input
# that did it. Part of `make test`.
#
# Usage: Tests/scripts/fuzz.sh [seconds-per-harness] [harness...]
#   seconds: default $FUZZ_SECONDS or 20; harnesses: default all (FuzzCSV FuzzMessage ...).
# New inputs that reach new code are kept in .build-fuzz/corpus/<harness> (not committed) so a
# local machine keeps building on earlier runs; crash inputs go to .build-fuzz/artifacts/<harness>.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-${FUZZ_SECONDS:-20}}"
shift || true
all=(FuzzCSV FuzzMessage FuzzAgreement FuzzEmail FuzzPhone FuzzMAID FuzzCustom FuzzElement)
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all[@]}")
build=.build-fuzz

# Largest input worth trying per harness (a message seed is ~1.1 kB; a value is ≤ 1024 bytes plus
# the rules byte; eight elements are enough to exercise the batch decoder).
max_len() {
  case "$1" in
    FuzzMessage|FuzzAgreement|FuzzCSV) echo 8192 ;;
    FuzzElement) echo 288 ;;
    *) echo 1100 ;;
  esac
}

# `--sanitize=fuzzer` makes SwiftPM link with libFuzzer's `main` (instead of renaming the
# harness's entry point), but SwiftPM passes each `--sanitize` value as its own `-sanitize=` flag
# and the Swift frontend keeps only the last one: with `--sanitize=fuzzer --sanitize=address` the
# code gets no coverage instrumentation at all and libFuzzer fuzzes blind. Passing the combined
# `-sanitize=fuzzer,address` through -Xswiftc, after SwiftPM's flag, instruments for both.
flags=(-c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCLEANROOM_FUZZING)

start=$SECONDS
for h in "${harnesses[@]}"; do
  echo "== building $h (fuzzer, address sanitizer) =="
  swift build "${flags[@]}" \
    --build-path "$build" --product "$h"
  # A harness without coverage instrumentation would pass while testing nothing.
  objdump -h "$build/release/$h" | grep __sancov_cntrs >/dev/null || { echo "fuzz: $h has no coverage instrumentation" >&2; exit 1; }
done
echo "fuzz: built in $((SECONDS - start)) s"

bin="$(swift build "${flags[@]}" --build-path "$build" --show-bin-path)"
failed=()
for h in "${harnesses[@]}"; do
  corpus="$build/corpus/$h"
  artifacts="$build/artifacts/$h"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzzing $h for ${seconds} s =="
  # The first directory receives new inputs; the committed seeds are only read.
  if ! "$bin/$h" -max_total_time="$seconds" -max_len="$(max_len "$h")" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "Tests/Fuzz/$h/seeds" \
       >"$build/$h.log" 2>&1; then
    tail -n 60 "$build/$h.log"
    echo "fuzz: $h FAILED; input kept in $artifacts/ (replay: swift build && .build/debug/$h <file>)" >&2
    failed+=("$h")
  else
    grep -E "DONE|^stat::(number_of_executed_units|peak_rss_mb)" "$build/$h.log" || true
  fi
done
echo "fuzz: ${#harnesses[@]} harness(es), ${seconds} s each, $((SECONDS - start)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}" >&2
  exit 1
fi
