# The two commands of README.md. Each brings what it needs (Debian packages) when it is missing.
.PHONY: demo demo-s3 test bootstrap build

bootstrap:
	@bash Tests/scripts/bootstrap.sh

build: bootstrap
	swift build

# Runs the whole test suite. The CLI binary is built first: some tests drive it as a process.
# A local S3 server (moto, pinned, in .venv-s3/) runs for the duration and is stopped on exit;
# the S3 integration tests fail under `make test` if it is missing (plain `swift test` skips them).
test: bootstrap
	swift build
	bash Tests/scripts/test-with-s3.sh

# Runs the main job end to end on embedded defaults.
demo: bootstrap
	swift run -c release cleanroom demo

# The same demo delivering to S3 through the provider's role, assumed with the External ID,
# against a local S3 server (moto, pinned, in .venv-s3/) that the script starts and stops.
demo-s3: bootstrap
	bash Tests/scripts/demo-s3.sh
