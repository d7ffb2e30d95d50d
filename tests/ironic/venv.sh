#!/usr/bin/env bash
# Creates (once) the Python venv holding a real Ironic for the test suite.
# Cached: skipped when VENV exists and already has ironic==39.0.0.
# Usage: tests/ironic/venv.sh [VENV]   (default: <target>/ironic-venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-${CARGO_TARGET_DIR:-$root/target}/ironic-venv}"
version="39.0.0"
py="${PYTHON:-python3}"

if [ -x "$venv/bin/ironic" ] && "$venv/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(0 if m.version('ironic') == '$version' else 1)" 2>/dev/null; then
    echo "ironic $version already installed in $venv"
    exit 0
fi

# A lock so that parallel test binaries do not install twice.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/ironic" ] && "$venv/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(0 if m.version('ironic') == '$version' else 1)" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "ironic==$version"
echo "installed ironic $version in $venv"
