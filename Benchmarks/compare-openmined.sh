#!/usr/bin/env bash
# Side-by-side with OpenMined's openmined-psi (PyPI, ECDH-PSI on P-256), the peer a user would
# otherwise pick: same set sizes, same emails, one run, both results and the ratios.
#
#   Benchmarks/compare-openmined.sh [sizes] [runs]      e.g.  Benchmarks/compare-openmined.sh 100k,1m 1
#
# Creates a virtual environment (OPENMINED_VENV, default .build/openmined-venv) with the pinned
# openmined-psi, builds cleanroom in release mode, then runs Benchmarks/compare_openmined.py.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-100k}"
runs="${2:-1}"
venv="${OPENMINED_VENV:-.build/openmined-venv}"
version="2.0.6"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import private_set_intersection.python as p; assert p.__version__ == '$version'" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "openmined-psi==$version"
fi
make -s release >&2
"$venv/bin/python" Benchmarks/compare_openmined.py --sizes "$sizes" --runs "$runs" --bench .build/release/cleanroom-bench
