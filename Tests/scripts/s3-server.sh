#!/usr/bin/env bash
# Starts or stops a real S3-compatible server with IAM and STS on 127.0.0.1 for the tests, from a
# pinned PyPI release in a virtual environment this script creates (git-ignored):
#
#   moto       moto[server]==5.2.5 in .venv-s3/, authentication on (INITIAL_NO_AUTH_ACTION_COUNT:
#              the three set-up actions below, then every request is SigV4-verified and
#              IAM-authorised)
#   ministack  ministack==1.5.33 in .venv-ministack/, AUTH=true (root keys test/test)
#
#   s3-server.sh start [moto|ministack]   prints the endpoint URL (http://127.0.0.1:PORT) on stdout,
#                                         and writes an administrator's keys to $STATE/credentials,
#                                         an AWS shared-credentials file (profile `admin`)
#   s3-server.sh stop                     stops the server it started
#
# State: $CLEANROOM_S3_STATE (default .build/s3-server/): pid, log, credentials. `make test` uses
# its own state directories, so it never stops a server started by hand for development.
set -euo pipefail
cd "$(dirname "$0")/../.."
MOTO_VERSION="5.2.5"
MINISTACK_VERSION="1.5.33"
STATE="${CLEANROOM_S3_STATE:-$PWD/.build/s3-server}"
PIDFILE="$STATE/pid"
LOG="$STATE/log"

# venv <dir> <requirement> <module> <version>: creates or refreshes a pinned virtual environment.
venv() {
  if [ ! -x "$1/bin/python" ] || ! "$1/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('$3') != '$4')" 2>/dev/null; then
    echo "s3-server: installing $2 into $1" >&2
    python3 -m venv "$1" >&2
    "$1/bin/pip" install -q --disable-pip-version-check "$2" >&2
  fi
}

wait_for() {
  for _ in $(seq 1 150); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "s3-server: the server did not start; see $LOG" >&2
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  exit 1
}

case "${1:-}" in
start)
  kind="${2:-moto}"
  mkdir -p "$STATE"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  case "$kind" in
  moto)
    venv .venv-s3 "moto[server]==$MOTO_VERSION" moto "$MOTO_VERSION"
    INITIAL_NO_AUTH_ACTION_COUNT=3 MOTO_ALLOW_NONEXISTENT_REGION=true \
      nohup .venv-s3/bin/moto_server -H 127.0.0.1 -p "$port" >"$LOG" 2>&1 &
    echo $! > "$PIDFILE"
    wait_for "http://127.0.0.1:$port/moto-api/"
    # The three unauthenticated actions: an administrator user, its policy, its access key.
    .venv-s3/bin/python - "http://127.0.0.1:$port" > "$STATE/credentials" <<'PY'
import sys, json, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="admin")["AccessKey"]
print("[admin]\naws_access_key_id = %s\naws_secret_access_key = %s" % (k["AccessKeyId"], k["SecretAccessKey"]))
PY
    ;;
  ministack)
    venv .venv-ministack "ministack==$MINISTACK_VERSION" ministack "$MINISTACK_VERSION"
    # exec: the backgrounded subshell becomes the server, so $! is its pid; its working
    # directory (where ministack keeps state) is the state directory.
    root="$PWD"
    (cd "$STATE" && AUTH=true GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 S3_DATA_DIR="$STATE/s3-data" \
      exec "$root/.venv-ministack/bin/ministack" </dev/null >"$LOG" 2>&1) </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    wait_for "http://127.0.0.1:$port/_ministack/health"
    printf '[admin]\naws_access_key_id = test\naws_secret_access_key = test\n' > "$STATE/credentials"
    ;;
  *) echo "usage: $0 start [moto|ministack]" >&2; exit 64 ;;
  esac
  echo "http://127.0.0.1:$port"
  ;;
stop)
  if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi
  ;;
*) echo "usage: $0 start [moto|ministack] | stop" >&2; exit 64 ;;
esac
