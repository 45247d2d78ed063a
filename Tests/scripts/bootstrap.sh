#!/usr/bin/env bash
# Installs what CleanRoom needs on a fresh Debian 12 machine that has only the Swift toolchain.
# libssl-dev: libcrypto, for SHA-256 with the CPU's SHA extensions (Protocol/SPEC.md §3).
# libcurl4-openssl-dev: libcurl's headers for Sources/CCurl (S3 over HTTPS); the library itself
#   (libcurl.so.4, package libcurl4) is opened with dlopen only by steps that use S3.
# python3 + python3-venv: the local S3 server of the tests (moto from PyPI, Tests/scripts/s3-server.sh),
#   and the loopback TLS server of the HTTP client's TLS tests.
# openssl: the command that makes those TLS tests' throwaway certificate.
# ca-certificates: the system's CAs, which S3 over HTTPS verifies against (libcurl's default bundle).
# Idempotent: installs only what is missing. Used by `make demo`, `make test` and .ci/run.
set -euo pipefail

packages=(pkg-config libsodium-dev libssl-dev libsqlite3-dev zlib1g-dev libcurl4-openssl-dev python3 python3-venv openssl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
