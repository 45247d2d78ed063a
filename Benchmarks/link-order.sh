#!/usr/bin/env bash
# Regenerates Sources/CleanRoomCLI/link-order.txt: the functions `cleanroom` runs, which the
# release link lays out first (Package.swift, lld --symbol-ordering-file), so that the code a
# process touches fills fewer pages (BENCHMARKS.md "Fewer resident pages").
#
#   Benchmarks/link-order.sh
#
# It runs the release binary under valgrind's callgrind: the demo (all six rounds, in memory and
# again with a 4 KiB spill budget so the spilling paths run too), then help and version, and
# keeps every function of the binary that ran. Run it after changes that add or rename many
# functions; a stale list costs resident pages, never correctness (a missing name is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q >&2 && $sudo apt-get install -y -q valgrind >&2
fi
flags=(-c release --static-swift-stdlib)
swift build "${flags[@]}" --product cleanroom >&2
bin="$(swift build "${flags[@]}" --show-bin-path)/cleanroom"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
grind() {
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.%p" "$@" >"$work/grind.log" 2>&1 \
    || { echo "link-order.sh: failed under valgrind: $*" >&2; tail -n 20 "$work/grind.log" >&2; exit 1; }
}
grind "$bin" --help
grind "$bin" version
grind "$bin" demo --work-dir "$work/demo"
rm -rf "$work/demo"
CLEANROOM_SPILL_BYTES=4096 grind "$bin" demo --work-dir "$work/demo"
python3 Benchmarks/link_order.py "$bin" "$work"/callgrind.* > "$work/order.txt"
mv "$work/order.txt" Sources/CleanRoomCLI/link-order.txt
# SwiftPM does not track the order file as an input: removing the binary makes the next build relink.
rm -f "$bin"
echo "Sources/CleanRoomCLI/link-order.txt: $(wc -l < Sources/CleanRoomCLI/link-order.txt) functions" >&2
