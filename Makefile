# The two commands of README.md. Each brings what it needs (Debian packages) when it is missing.
.PHONY: demo demo-s3 demo-smoke test bootstrap build release bench bench-smoke sanitize fuzz lint

# Seconds each libFuzzer harness runs in `make test` (Tests/scripts/fuzz.sh).
FUZZ_SECONDS ?= 20

bootstrap:
	@bash Tests/scripts/bootstrap.sh

build: bootstrap
	swift build

# Release binaries with the Swift runtime and Foundation linked in (`--static-swift-stdlib`): a
# party copies one `cleanroom` file (plus Debian's C libraries: libsodium, SQLite, libcrypto,
# zlib; libcurl, opened only by steps that use S3) to its machine, and each process starts ~4 ms sooner and ~5 MiB smaller (6 MiB
# idle) than against the shared Swift libraries (BENCHMARKS.md "Static Swift runtime"). Every release build
# here uses the same flags, so switching between them never rebuilds the modules.
RELEASE_FLAGS = -c release --static-swift-stdlib
release: bootstrap
	swift build $(RELEASE_FLAGS) --product cleanroom && swift build $(RELEASE_FLAGS) --product cleanroom-bench

# The house style's formatting (.swift-format; README "Formatting"): any finding fails, as on CI.
lint:
	swift format lint --strict --recursive Sources Tests Benchmarks Package.swift

# Runs the whole test suite, after the lint (seconds, so a formatting slip fails first). The CLI
# binary is built first: some tests drive it as a process.
# A local S3 server (moto, pinned, in .venv-s3/) runs for the duration and is stopped on exit;
# the S3 integration tests fail under `make test` if it is missing (plain `swift test` skips them).
# Then the suite again under the address (with leak) and thread sanitizers, then every libFuzzer
# harness for FUZZ_SECONDS each, each in its own build directory; then the benchmark smoke (a tiny
# debug run, no timing checks) keeps cleanroom-bench building and running; last the demo smoke
# builds what `make demo` builds (release, Swift runtime linked in) and runs the demo, so the
# README's other command is checked on every clean machine too.
test: bootstrap lint
	swift build
	bash Tests/scripts/test-with-s3.sh
	bash Tests/scripts/sanitizers.sh
	bash Tests/scripts/fuzz.sh $(FUZZ_SECONDS)
	$(MAKE) bench-smoke
	$(MAKE) demo-smoke

# The test suite under ASan+LSan and TSan only.
sanitize: bootstrap
	bash Tests/scripts/sanitizers.sh

# The fuzzers only: `make fuzz FUZZ_SECONDS=300` for a longer campaign.
fuzz: bootstrap
	bash Tests/scripts/fuzz.sh $(FUZZ_SECONDS)

bench-smoke:
	.build/debug/cleanroom-bench --sizes 1k --runs 1 --warmup 0 --work-dir .build/bench-smoke > .build/bench-smoke.log 2>&1 \
	  || { cat .build/bench-smoke.log; exit 1; }
	@tail -n 12 .build/bench-smoke.log
	.build/debug/cleanroom-bench --filter coordinator-scale --sizes 10k --work-dir .build/bench-smoke-scale > .build/bench-smoke-scale.log 2>&1 \
	  || { cat .build/bench-smoke-scale.log; exit 1; }
	@tail -n 3 .build/bench-smoke-scale.log; rm -rf .build/bench-smoke-scale

# `make demo`'s build and run, into a directory removed afterwards; the demo fails unless the
# delivered audience equals the known overlap.
demo-smoke:
	swift build $(RELEASE_FLAGS) --product cleanroom
	rm -rf .build/demo-smoke
	"$$(swift build $(RELEASE_FLAGS) --show-bin-path)/cleanroom" demo --work-dir .build/demo-smoke > .build/demo-smoke.log 2>&1 \
	  || { cat .build/demo-smoke.log; exit 1; }
	@tail -n 2 .build/demo-smoke.log; rm -rf .build/demo-smoke

# The release benchmark (BENCHMARKS.md). BENCH_ARGS overrides the sizes and runs.
BENCH_ARGS ?= --sizes 10k,100k --runs 5 --warmup 1
bench: release
	.build/release/cleanroom-bench $(BENCH_ARGS)

# Runs the main job end to end on embedded defaults.
demo: bootstrap
	swift build $(RELEASE_FLAGS) --product cleanroom
	"$$(swift build $(RELEASE_FLAGS) --show-bin-path)/cleanroom" demo

# The same demo delivering to S3 through the provider's role, assumed with the External ID,
# against a local S3 server (moto, pinned, in .venv-s3/) that the script starts and stops.
demo-s3: bootstrap
	bash Tests/scripts/demo-s3.sh
