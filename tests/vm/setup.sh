#!/usr/bin/env bash
# What the production-boot VM tests need beyond tests/setup-tools.sh, all
# from Debian's packages and PyPI: libvirt's daemon and QEMU driver (no
# libvirt-daemon-system: that package starts a system daemon and its
# default bridged network, and these tests must leave the host's network
# alone), Debian's Python libvirt binding, the tools Ironic builds boot ISOs
# with (mkisofs, isolinux, mtools, dosfstools), GRUB and OVMF for UEFI, and
# sushy-tools (the Redfish BMC emulator) in a venv of Debian's Python that
# sees that binding. A no-op when everything is present.
# Usage: tests/vm/setup.sh [SUSHY_VENV]   (default: <target>/sushy-venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-${CARGO_TARGET_DIR:-$root/target}/sushy-venv}"
sushy_version="2.2.0"

need=()
command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu)
command -v virsh >/dev/null || need+=(libvirt-clients)
[ -e /usr/lib/python3/dist-packages/libvirt.py ] || need+=(python3-libvirt)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v mkisofs >/dev/null || need+=(genisoimage)
[ -e /usr/lib/ISOLINUX/isolinux.bin ] || need+=(isolinux)
[ -e /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || need+=(syslinux-common)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
[ -d /usr/lib/grub/x86_64-efi ] || need+=(grub-efi-amd64-bin)
[ -d /usr/lib/grub/i386-pc ] || need+=(grub-pc-bin)
command -v grub-mkimage >/dev/null || need+=(grub-common)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${need[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "missing VM test tools (${need[*]}); install them with your package manager" >&2
        exit 1
    fi
fi

installed() {
    [ -x "$venv/bin/sushy-emulator" ] && "$venv/bin/python" -c "
import importlib.metadata as m, sys, libvirt
sys.exit(0 if m.version('sushy-tools') == '$sushy_version' else 1)" 2>/dev/null
}
installed && exit 0
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
installed && exit 0
rm -rf "$venv"
# Debian's Python: its dist-packages hold the libvirt binding.
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "sushy-tools==$sushy_version"
echo "installed sushy-tools $sushy_version in $venv" >&2
