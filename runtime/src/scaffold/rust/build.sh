#!/bin/sh
# Builds @NAME@.wasm; export_manager! embeds manifest.toml.
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/@CRATE@.wasm" @NAME@.wasm
echo "built $PWD/@NAME@.wasm"
