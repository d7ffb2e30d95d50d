#!/usr/bin/env bash
# What `make ramdisk` needs beyond the test tools, for the ramdisk's
# architecture (the first argument: x86_64, the default, or aarch64):
# a C compiler for the static agent's C parts (ring, wasmtime's fiber
# assembly) and a linker: musl-gcc natively; for aarch64 Debian's GNU cross
# toolchain (its glibc headers serve ring's freestanding C, Rust links its
# own musl) and qemu-system-aarch64 for `make vm-test-aarch64`.
set -euo pipefail
arch="${1:-x86_64}"
bash "$(dirname "$0")/../tests/setup-tools.sh"
case "$arch" in
    x86_64) tools=(musl-gcc) packages=(musl-tools) ;;
    aarch64)
        tools=(aarch64-linux-gnu-gcc /usr/aarch64-linux-gnu/include/stdint.h qemu-system-aarch64)
        packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm)
        ;;
    *) echo "ramdisk/setup.sh: architecture $arch is not supported (x86_64, aarch64)" >&2; exit 2 ;;
esac
need=()
for i in "${!tools[@]}"; do
    case "${tools[$i]}" in
        /*) [ -e "${tools[$i]}" ] || need+=("${packages[$i]}") ;;
        *) command -v "${tools[$i]}" >/dev/null || need+=("${packages[$i]}") ;;
    esac
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    echo "missing for the $arch ramdisk: ${need[*]}; install them with your package manager" >&2
    exit 1
fi
