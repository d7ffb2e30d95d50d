#!/bin/sh
# Builds @NAME@.wasm with the Python SDK (manifest embedded). Creates .venv
# with the SDK on first use; PYTHON=... uses another interpreter that has it.
set -eu
cd "$(dirname "$0")"
if [ -z "${PYTHON:-}" ]; then
    PYTHON=.venv/bin/python
    if [ ! -x "$PYTHON" ]; then
        python3 -m venv .venv
        .venv/bin/pip install --quiet "@REPO@/sdk/python"
    fi
fi
"$PYTHON" -m ironic_hardware.build app.py -o @NAME@.wasm
