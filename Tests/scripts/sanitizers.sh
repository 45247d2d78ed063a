#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer,
# each in its own build directory so the normal build is untouched. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
supp="$(pwd)/Tests/scripts/lsan.supp"
asan_supp="$(pwd)/Tests/scripts/asan.supp"

start=$SECONDS
echo "== swift test under AddressSanitizer =="
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:suppressions=${asan_supp}" LSAN_OPTIONS="suppressions=${supp}:print_suppressions=0" \
  swift test --sanitize=address --build-path .build-asan

echo "sanitizers: address + leak done in $((SECONDS - start)) s"
start=$SECONDS
echo "== swift test under ThreadSanitizer =="
# CLEANROOM_SANITIZER lets a test step aside where the sanitizer's runtime, not our code, cannot
# run (FaultTests.exchangeWriteBeyondTheFileSizeLimit: TSan dies under RLIMIT_FSIZE).
CLEANROOM_SANITIZER=thread TSAN_OPTIONS="halt_on_error=1" swift test --sanitize=thread --build-path .build-tsan
echo "sanitizers: thread done in $((SECONDS - start)) s"
