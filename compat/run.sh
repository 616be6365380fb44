#!/usr/bin/env bash
# Runs the wsgate compatibility suite against the release binary (or $WSGATE_BIN).
#   compat/run.sh                 # whole suite
#   compat/run.sh -k sigv4 -n 0   # extra args go to pytest
# Exits non-zero when any test fails.
# The cluster-mode tests start redis-server / redis-cli themselves (scripts/test.sh installs them);
# without them they are skipped, or fail when CI=true.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
