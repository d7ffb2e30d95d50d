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
# The network tests: an LLDP announcer in a namespace; FAT virtual media.
command -v lldpd >/dev/null || need+=(lldpd)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mcopy >/dev/null || need+=(mtools)
# The storage VM tests: UEFI firmware for the guest (tests/tests/storage_vm.rs).
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "missing test tools (${need[*]}); install them with your package manager" >&2
        exit 1
    fi
fi

# The clock test's NTP server: chronyd unpacked from Debian's package, not
# installed (installing would start a system service that disciplines this
# machine's clock). It runs in a test namespace with -x (never sets a clock).
tools="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/test-tools"
if [ ! -x "$tools/chrony/usr/sbin/chronyd" ]; then
    mkdir -p "$tools/debs"
    (cd "$tools/debs" && apt-get download -q chrony >/dev/null 2>&1) || { echo "cannot download chrony" >&2; exit 1; }
    rm -rf "$tools/chrony"
    dpkg-deb -x "$tools"/debs/chrony_*.deb "$tools/chrony"
fi
bash "$(dirname "$0")/vm/setup.sh"
