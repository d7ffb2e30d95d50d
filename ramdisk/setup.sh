#!/usr/bin/env bash
# What `make ramdisk` needs beyond the test tools: musl-gcc for the C parts
# of the static agent's dependencies (ring, wasmtime's fiber assembly).
set -euo pipefail
bash "$(dirname "$0")/../tests/setup-tools.sh"
if ! command -v musl-gcc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: musl-tools"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
    else
        echo "musl-gcc is missing; install musl-tools with your package manager" >&2
        exit 1
    fi
fi
