#!/usr/bin/env bash
# Installs the system programs the test suite drives for real (partitioning
# and signature tools used to prepare and check simulated disks; QEMU and
# the initramfs packers for the ramdisk's VM test; libvirt, sushy-tools, the
# ISO and boot-loader tools of the production-boot VM tests, through
# tests/vm/setup.sh). Runs as part of `make setup`; a no-op when everything
# is present.
set -euo pipefail
need=()
command -v sgdisk >/dev/null || need+=(gdisk)
command -v wipefs >/dev/null || need+=(util-linux)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v qemu-img >/dev/null || need+=(qemu-utils)
# The ramdisk test: QEMU, and what ramdisk/build.sh packs the initramfs with.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "missing test tools (${need[*]}); install them with your package manager" >&2
        exit 1
    fi
fi
bash "$(dirname "$0")/vm/setup.sh"
