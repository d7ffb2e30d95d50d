#!/bin/sh
# Builds @NAME@.wasm with the JavaScript SDK (manifest embedded); runs
# npm install on first use.
set -eu
cd "$(dirname "$0")"
[ -d node_modules/ironic-hardware ] || npm install --no-audit --no-fund --loglevel=error
node node_modules/ironic-hardware/bin/build.mjs app.js -o @NAME@.wasm
