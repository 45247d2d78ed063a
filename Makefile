# The two commands of README.md. Each brings what it needs (Debian packages) when it is missing.
.PHONY: demo test bootstrap build sanitize fuzz

# Seconds each libFuzzer harness runs in `make test` (Tests/scripts/fuzz.sh).
FUZZ_SECONDS ?= 20

bootstrap:
	@bash Tests/scripts/bootstrap.sh

build: bootstrap
	swift build

# Runs the whole test suite. The CLI binary is built first: some tests drive it as a process.
# Then the suite again under the address (with leak) and thread sanitizers, then every libFuzzer
# harness for FUZZ_SECONDS each; each in its own build directory.
test: bootstrap
	swift build
	swift test
	bash Tests/scripts/sanitizers.sh
	bash Tests/scripts/fuzz.sh $(FUZZ_SECONDS)

# The test suite under ASan+LSan and TSan only.
sanitize: bootstrap
	bash Tests/scripts/sanitizers.sh

# The fuzzers only: `make fuzz FUZZ_SECONDS=300` for a longer campaign.
fuzz: bootstrap
	bash Tests/scripts/fuzz.sh $(FUZZ_SECONDS)

# Runs the main job end to end on embedded defaults.
demo: bootstrap
	swift run -c release cleanroom demo
