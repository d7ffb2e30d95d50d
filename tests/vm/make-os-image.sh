#!/usr/bin/env bash
# Builds the small operating system the VM tests deploy and then boot: a raw
# whole-disk image (GPT) that boots under BIOS and under UEFI, runs
# Debian's kernel with a busybox init that prints MARKER on the serial
# console and powers the machine off.
#
#   p1  1 MiB   BIOS boot partition: GRUB's i386-pc core (grub-install)
#   p2  rest    EFI system partition (FAT): EFI/BOOT/BOOTX64.EFI (GRUB for
#               x86-64 UEFI at the removable-media path), boot/vmlinuz,
#               boot/initrd.img, boot/grub/grub.cfg (shared by both GRUBs)
#
# No loop device and no mount: the FAT file system is made in a file with
# mkfs.vfat and filled with mtools, then copied into the image; GRUB's BIOS
# boot code is placed as grub-bios-setup would place it (see place_bios_grub).
# Usage: make-os-image.sh KERNEL OUT MARKER [DEB_CACHE]
#   KERNEL: a bzImage (the ramdisk's vmlinuz: Debian's linux-image-amd64)
#   DEB_CACHE: where busybox-static's .deb is (downloaded there when missing;
#   default target/ramdisk-cache/debs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
kernel="$(realpath "$1")"
out="$2"
marker="$3"
cache="${4:-${CARGO_TARGET_DIR:-$root/target}/ramdisk-cache/debs}"
size_mib=64

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- the OS: busybox init in an initramfs ------------------------------------
mkdir -p "$cache"
deb=$(compgen -G "$cache/busybox-static_*.deb" | head -1 || true)
if [ -z "$deb" ]; then
    (cd "$cache" && apt-get download -q busybox-static >/dev/null 2>&1)
    deb=$(compgen -G "$cache/busybox-static_*.deb" | head -1)
fi
dpkg-deb -x "$deb" "$tmp/busybox"
os="$tmp/os"
mkdir -p "$os"/{bin,dev,proc,sys}
cp "$tmp/busybox/bin/busybox" "$os/bin/busybox"
ln -s busybox "$os/bin/sh"
# The kernel opens /dev/console for init before any file system is mounted.
mknod -m 600 "$os/dev/console" c 5 1
cat > "$os/init" <<INIT
#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "$marker"
echo "deployed OS: kernel \$(/bin/busybox uname -r), powering off"
/bin/busybox sync
/bin/busybox poweroff -f
INIT
chmod 0755 "$os/init"
(cd "$os" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -9 > "$tmp/initrd.img"

# --- the disk ------------------------------------------------------------------
rm -f "$out"
truncate -s "${size_mib}M" "$out"
bios_start=2048 # 1 MiB, sectors
esp_start=4096
sgdisk -n 1:$bios_start:$((esp_start - 1)) -t 1:EF02 -c 1:bios-boot \
    -n 2:$esp_start:0 -t 2:EF00 -c 2:esp "$out" >/dev/null
esp_end=$(sgdisk -i 2 "$out" | awk '/^Last sector:/ {print $3}')
esp_kib=$(( (esp_end - esp_start + 1) / 2 ))

cat > "$tmp/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "deployed OS" {
    linux /boot/vmlinuz console=ttyS0 panic=-1
    initrd /boot/initrd.img
}
CFG
# Both GRUBs find the ESP by this file and read the configuration there.
cat > "$tmp/early.cfg" <<'CFG'
search --no-floppy --file --set=root /boot/grub/grub.cfg
set prefix=($root)/boot/grub
configfile ($root)/boot/grub/grub.cfg
CFG
modules="part_gpt fat search search_fs_file configfile normal linux echo test serial terminal"
grub-mkimage -O x86_64-efi -o "$tmp/BOOTX64.EFI" -c "$tmp/early.cfg" -p /boot/grub \
    $modules efi_gop all_video gzio
grub-mkimage -O i386-pc -o "$tmp/core.img" -c "$tmp/early.cfg" -p /boot/grub biosdisk $modules

esp="$tmp/esp.img"
mkfs.vfat -C -n OSIMAGE "$esp" "$esp_kib" >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/boot ::/boot/grub
mcopy -i "$esp" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/boot/vmlinuz
mcopy -i "$esp" "$tmp/initrd.img" ::/boot/initrd.img
mcopy -i "$esp" "$tmp/grub.cfg" ::/boot/grub/grub.cfg
dd if="$esp" of="$out" bs=512 seek=$esp_start conv=notrunc status=none

# GRUB for BIOS, as grub-bios-setup places it on a GPT disk (GRUB's
# boot/i386/pc/boot.S and diskboot.S): core.img in the BIOS boot partition;
# boot.img's code in the MBR (its first 440 bytes: the disk signature and the
# protective partition table stay), told the LBA of core.img's first sector
# (kernel_sector, at 0x5c); that sector (diskboot) lists where the rest of
# core.img is (its block list, the 12 bytes before the sector's end: start
# LBA, then the sector count grub-mkimage wrote).
place_bios_grub() {
    python3 - "$out" /usr/lib/grub/i386-pc/boot.img "$tmp/core.img" "$bios_start" <<'PY'
import struct, sys
disk, boot_img, core_img, core_lba = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
boot = bytearray(open(boot_img, "rb").read())
core = bytearray(open(core_img, "rb").read())
if len(core) > 2048 * 512:
    sys.exit(f"core.img is {len(core)} bytes, over the 1 MiB BIOS boot partition")
struct.pack_into("<Q", boot, 0x5C, core_lba)
struct.pack_into("<Q", core, 512 - 12, core_lba + 1)
with open(disk, "r+b") as f:
    f.seek(0)
    f.write(boot[:440])
    f.seek(core_lba * 512)
    f.write(core)
PY
}
place_bios_grub
