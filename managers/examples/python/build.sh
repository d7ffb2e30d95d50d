#!/usr/bin/env bash
# Build the Python example manager: python/build.sh OUT.wasm
# Needs componentize-py on PATH (tests/examples-setup.sh installs a pinned
# one in target/py-venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT.wasm}
wit="$here/../../../wit/ironic-hardware-0.1.0"
tmp="$out.tmp"
componentize-py -d "$wit" -w hardware-manager componentize -p "$here" app -o "$tmp"
python3 "$here/../embed_manifest.py" "$tmp" "$here/manifest.toml"
mv "$tmp" "$out"
