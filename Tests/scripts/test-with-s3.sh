#!/usr/bin/env bash
# `make test`: starts the local S3 server (moto, see s3-server.sh), runs the whole suite with
# CLEANROOM_S3_REQUIRED=1 (so the S3 integration tests fail, not skip, if the server is missing),
# and stops the server on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CLEANROOM_S3_STATE="$PWD/.build/s3-server-make-test"
trap 'bash Tests/scripts/s3-server.sh stop' EXIT
endpoint=$(bash Tests/scripts/s3-server.sh start)
echo "test: local S3 server at $endpoint" >&2
CLEANROOM_S3_ENDPOINT="$endpoint" CLEANROOM_S3_CREDENTIALS="$CLEANROOM_S3_STATE/credentials" CLEANROOM_S3_REQUIRED=1 \
  swift test "$@"
