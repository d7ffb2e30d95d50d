#!/usr/bin/env bash
# Builds the EFI system partition image that Ironic puts into the UEFI boot
# ISOs it makes (a node's `bootloader`, Ironic's images.create_esp_image_for_uefi):
# GRUB for x86-64 UEFI as EFI/BOOT/BOOTX64.EFI (the removable-media path the
# firmware boots), with an embedded first configuration that finds the
# configuration Ironic writes onto the ISO (`[DEFAULT]grub_config_path`,
# EFI/BOOT/grub.cfg) and reads it. Debian's grub-efi-amd64-bin, dosfstools
# and mtools.
# Usage: tests/vm/make-esp.sh OUT
set -euo pipefail
out="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/early.cfg" <<'CFG'
search --no-floppy --file --set=root /EFI/BOOT/grub.cfg
set prefix=($root)/EFI/BOOT
configfile ($root)/EFI/BOOT/grub.cfg
CFG
grub-mkimage -O x86_64-efi -o "$tmp/BOOTX64.EFI" -c "$tmp/early.cfg" -p /EFI/BOOT \
    part_gpt part_msdos fat iso9660 search search_fs_file configfile normal \
    linux echo test serial terminal efi_gop all_video gzio
rm -f "$out"
mkfs.vfat -C "$out" 4096 >/dev/null
mmd -i "$out" ::/EFI ::/EFI/BOOT
mcopy -i "$out" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
