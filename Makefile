# The two commands of README.md. Each brings what it needs (Debian packages) when it is missing.
.PHONY: demo test bootstrap build

bootstrap:
	@bash Tests/scripts/bootstrap.sh

build: bootstrap
	swift build

# Runs the whole test suite. The CLI binary is built first: some tests drive it as a process.
test: bootstrap
	swift build
	swift test

# Runs the main job end to end on embedded defaults.
demo: bootstrap
	swift run -c release cleanroom demo
