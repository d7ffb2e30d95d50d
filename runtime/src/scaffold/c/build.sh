#!/bin/sh
# Builds @NAME@.wasm from manager.c (docs/managers/c.md):
#   1. wit-bindgen's C generator writes the contract's bindings into gen/;
#   2. clang compiles for wasm32-wasi against Debian's wasi-libc, as a
#      reactor (a library: no main, exports called any number of times);
#   3. wasm-tools turns the module into a component, adapting WASI preview1
#      to preview2 with the reactor adapter ($ADAPTER);
#   4. the manifest is appended as the custom section ironic:manifest.
# Needs: clang, lld, wasi-libc, libclang-rt-dev-wasm32 (Debian), wit-bindgen
# and wasm-tools on PATH, ADAPTER=path/to/wasi_snapshot_preview1.reactor.wasm.
set -eu
cd "$(dirname "$0")"
: "${ADAPTER:?set ADAPTER to wasi_snapshot_preview1.reactor.wasm (see docs/managers/c.md)}"
CONTRACT="@REPO@/wit/ironic-hardware-0.3.0"
rm -rf gen && mkdir gen
wit-bindgen c "$CONTRACT" --world hardware-manager --out-dir gen >/dev/null
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Werror \
    -Wno-unused-parameter -Igen -o gen/@NAME@.core.wasm \
    manager.c gen/hardware_manager.c gen/hardware_manager_component_type.o
wasm-tools component new gen/@NAME@.core.wasm \
    --adapt "wasi_snapshot_preview1=$ADAPTER" -o gen/@NAME@.component.wasm

# A custom section: id 0, size, name, data (sizes as unsigned LEB128).
leb128() {
    n=$1
    while :; do
        b=$((n & 127)); n=$((n >> 7))
        [ "$n" -gt 0 ] && b=$((b | 128))
        printf "\\$(printf %03o "$b")"
        [ "$n" -gt 0 ] || break
    done
}
section=ironic:manifest
size=$(wc -c < manifest.toml)
{
    cat gen/@NAME@.component.wasm
    printf '\000'
    leb128 $((1 + ${#section} + size))
    leb128 ${#section}
    printf %s "$section"
    cat manifest.toml
} > @NAME@.wasm.tmp
mv @NAME@.wasm.tmp @NAME@.wasm
echo "built $PWD/@NAME@.wasm"
