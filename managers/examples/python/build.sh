#!/usr/bin/env bash
# Build the Python example manager: python/build.sh OUT.wasm
# Needs the SDK (sdk/python) and componentize-py in the Python on PATH
# (tests/examples-setup.sh installs both into target/py-venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT.wasm}
python3 -m ironic_hardware.build "$here/app.py" -o "$out" --manifest "$here/manifest.toml" --quiet
