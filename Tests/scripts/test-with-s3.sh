#!/usr/bin/env bash
# `make test`: the whole suite against a local moto server, then the S3 suites again against a
# local ministack server (each S3-compatible server enforces different things; see README
# "Testing against S3"). CLEANROOM_S3_REQUIRED=1 makes the S3 tests fail, not skip, if a server
# is missing. Both servers are stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
moto_state="$PWD/.build/s3-server-make-test-moto"
ministack_state="$PWD/.build/s3-server-make-test-ministack"
trap 'CLEANROOM_S3_STATE="$moto_state" bash Tests/scripts/s3-server.sh stop; CLEANROOM_S3_STATE="$ministack_state" bash Tests/scripts/s3-server.sh stop' EXIT

endpoint=$(CLEANROOM_S3_STATE="$moto_state" bash Tests/scripts/s3-server.sh start moto)
echo "test: moto at $endpoint: the whole suite" >&2
CLEANROOM_S3_ENDPOINT="$endpoint" CLEANROOM_S3_CREDENTIALS="$moto_state/credentials" CLEANROOM_S3_SERVER=moto CLEANROOM_S3_REQUIRED=1 \
  swift test "$@"
CLEANROOM_S3_STATE="$moto_state" bash Tests/scripts/s3-server.sh stop

endpoint=$(CLEANROOM_S3_STATE="$ministack_state" bash Tests/scripts/s3-server.sh start ministack)
echo "test: ministack at $endpoint: the S3 suites" >&2
CLEANROOM_S3_ENDPOINT="$endpoint" CLEANROOM_S3_CREDENTIALS="$ministack_state/credentials" CLEANROOM_S3_SERVER=ministack CLEANROOM_S3_REQUIRED=1 \
  swift test --skip-build --filter 'S3|STS|DestinationProbe|Multipart|WebIdentity|AWSSetup' "$@"
