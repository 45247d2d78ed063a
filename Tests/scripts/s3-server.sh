#!/usr/bin/env bash
# Starts or stops a real S3-compatible server with IAM and STS on 127.0.0.1 for the tests:
# moto's standalone server from a pinned PyPI release, in a virtual environment this script
# creates (.venv-s3/, git-ignored). Authentication is on (INITIAL_NO_AUTH_ACTION_COUNT: the three set-up actions below, then on), so moto
# verifies SigV4 signatures and session tokens and enforces the role's IAM policy.
#
#   s3-server.sh start   prints the endpoint URL (http://127.0.0.1:PORT) on stdout, and writes an
#                        administrator's keys (created in the first unauthenticated actions) to
#                        $STATE/credentials, an AWS shared-credentials file
#                        (profile `admin`); everything after that is authenticated
#   s3-server.sh stop    stops the server it started
#
# State: $CLEANROOM_S3_STATE (default .build/s3-server/): pid, log, credentials. `make test` uses
# its own state directory, so it never stops a server started by hand for development.
set -euo pipefail
cd "$(dirname "$0")/../.."
MOTO_VERSION="5.2.5"
VENV=".venv-s3"
STATE="${CLEANROOM_S3_STATE:-.build/s3-server}"
PIDFILE="$STATE/pid"
LOG="$STATE/log"

case "${1:-}" in
start)
  mkdir -p "$STATE"
  if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "s3-server: installing moto[server]==$MOTO_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  INITIAL_NO_AUTH_ACTION_COUNT=3 MOTO_ALLOW_NONEXISTENT_REGION=true \
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      # The three unauthenticated actions: an administrator user, its policy, its access key.
      "$VENV/bin/python" - "http://127.0.0.1:$port" > "$STATE/credentials" <<'PY'
import sys, json, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="admin")["AccessKey"]
print("[admin]\naws_access_key_id = %s\naws_secret_access_key = %s" % (k["AccessKeyId"], k["SecretAccessKey"]))
PY
      echo "http://127.0.0.1:$port"; exit 0
    fi
    sleep 0.2
  done
  echo "s3-server: moto did not start; see $LOG" >&2
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  exit 1
  ;;
stop)
  if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi
  ;;
*) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
