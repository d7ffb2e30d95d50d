#!/usr/bin/env bash
# Builds the images the storage VM tests deploy, from Debian's packages
# (downloaded with apt-get once into $CACHE, unpacked, never installed):
#
#   root.ext4   an ext4 root file system (label root, UUID $ROOT_UUID) that
#               boots like a distribution's: busybox for /bin/sh and the
#               tools grub-mkconfig needs, the real GRUB for BIOS
#               (grub-install, grub-probe, grub-mkconfig, i386-pc modules,
#               with their libraries; mdadm), and the real signed EFI tree under
#               /boot/efi/EFI (shim-signed, shim-helpers-amd64-signed,
#               grub-efi-amd64-signed) with the BOOTX64.CSV grub-install
#               writes on Debian.
#   whole.raw   a whole-disk image: an msdos table whose partition 1 (at
#               1 MiB, bootable) holds root.ext4.
#
# Nothing here mounts, formats or partitions anything but its own files.
# Usage: tests/storage/make-images.sh OUT_DIR   (CACHE, ROOT_UUID override)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
cache="${CACHE:-${CARGO_TARGET_DIR:-$root/target}/storage-images-cache}"
root_uuid="${ROOT_UUID:-2d7f1c4a-6a3e-4c51-9b0e-5f3a8c2e1d90}"
mkdir -p "$cache/debs"
say() { echo "make-images: $*" >&2; }

tools=(grub-common grub2-common grub-pc-bin mdadm)
efi=(shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed)
libs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${tools[@]}" | grep -E '^lib' | sort -u)
wanted=(busybox-static "${tools[@]}" "${efi[@]}" $libs)
missing=()
for p in "${wanted[@]}"; do
    compgen -G "$cache/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "downloading ${#missing[@]} Debian packages into $cache/debs"
    (cd "$cache/debs" && apt-get download -q "${missing[@]}" 2>&1 | grep -v 'unsandboxed' >&2 || true)
    for p in "${missing[@]}"; do
        compgen -G "$cache/debs/${p}_*.deb" >/dev/null || { say "failed to download $p"; exit 1; }
    done
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debs="$work/debs"
fs="$work/rootfs"
mkdir -p "$debs" "$fs"
for p in "${wanted[@]}"; do
    for deb in "$cache/debs/${p}"_*.deb; do dpkg-deb -x "$deb" "$debs"; done
done

mkdir -p "$fs"/{bin,sbin,usr/bin,usr/sbin,lib64,etc/default,dev,proc,sys,run,tmp,boot/grub,root}
cp "$debs/bin/busybox" "$fs/bin/busybox"
for applet in $("$fs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$fs/bin/$applet"
done

# An ELF file and, recursively, the shared libraries ldd resolves for it
# among the unpacked packages.
libpath="$debs/lib/x86_64-linux-gnu:$debs/usr/lib/x86_64-linux-gnu"
copy_with_libs() {
    local src="$1" dest="$2"
    mkdir -p "$(dirname "$fs$dest")"
    cp -L "$src" "$fs$dest"
    LD_LIBRARY_PATH="$libpath" ldd "$src" 2>/dev/null | awk '/=>/ {print $3} /^\s*\/lib64\// {print $1}' |
        while read -r lib; do
            [ -n "$lib" ] && [ -e "$lib" ] || continue
            local rel="${lib#"$debs"}"
            [ -e "$fs$rel" ] && continue
            mkdir -p "$(dirname "$fs$rel")"
            cp -L "$lib" "$fs$rel"
        done
}
# mdadm: GRUB names a software RAID root by the array's UUID, which it
# asks mdadm for (images deployed onto software RAID need it, as Ironic's
# documentation says).
for prog in usr/sbin/grub-install usr/sbin/grub-probe usr/bin/grub-mkrelpath \
            usr/bin/grub-editenv usr/bin/grub-script-check usr/bin/grub-file sbin/mdadm; do
    copy_with_libs "$debs/$prog" "/$prog"
done
[ -e "$fs/lib64/ld-linux-x86-64.so.2" ] || cp -L "$debs/lib64/ld-linux-x86-64.so.2" "$fs/lib64/"
cp "$debs/usr/sbin/grub-mkconfig" "$fs/usr/sbin/"
mkdir -p "$fs/usr/lib/grub" "$fs/usr/share"
cp -a "$debs/usr/lib/grub/i386-pc" "$fs/usr/lib/grub/"
cp -a "$debs/usr/share/grub" "$fs/usr/share/"
cp -a "$debs/etc/grub.d" "$fs/etc/"
cat > "$fs/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=ironic-storage-test
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0"
GRUB_TERMINAL=serial
EOF
printf 'UUID=%s\t/\text4\tdefaults\t0\t1\n' "$root_uuid" > "$fs/etc/fstab"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$fs/etc/passwd"
printf 'root:x:0:\n' > "$fs/etc/group"
echo storage-test > "$fs/etc/hostname"

# The signed EFI tree as Debian's grub-install leaves it on the ESP,
# shipped in the image where the ESP is mounted (/boot/efi).
esp="$fs/boot/efi/EFI"
mkdir -p "$esp/debian" "$esp/BOOT"
cp "$debs/usr/lib/shim/shimx64.efi.signed" "$esp/debian/shimx64.efi"
cp "$debs/usr/lib/shim/mmx64.efi.signed" "$esp/debian/mmx64.efi"
cp "$debs/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" "$esp/debian/grubx64.efi"
cp "$debs/usr/lib/shim/shimx64.efi.signed" "$esp/BOOT/BOOTX64.EFI"
cp "$debs/usr/lib/shim/fbx64.efi.signed" "$esp/BOOT/fbx64.efi"
printf 'shimx64.efi,debian,,This is the boot entry for debian\n' | iconv -t UTF-16 > "$esp/debian/BOOTX64.CSV"
cat > "$esp/debian/grub.cfg" <<EOF
search.fs_uuid $root_uuid root
set prefix=(\$root)'/boot/grub'
configfile \$prefix/grub.cfg
EOF

rm -f "$out/root.ext4"
mkfs.ext4 -q -F -L root -U "$root_uuid" -d "$fs" "$out/root.ext4" 96M >/dev/null

# whole.raw: MBR (signature, one bootable Linux partition at 1 MiB) + root.
python3 - "$out/root.ext4" "$out/whole.raw" <<'PY'
import os, struct, sys
root, whole = sys.argv[1], sys.argv[2]
size = os.path.getsize(root)
mib = 1 << 20
with open(whole, "wb") as w:
    mbr = bytearray(512)
    mbr[440:444] = struct.pack("<I", 0x49524F4E)
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, 0x83, 0xFE, 0xFF, 0xFF]) + struct.pack("<II", 2048, size // 512)
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    w.write(mbr)
    w.seek(mib)
    with open(root, "rb") as r:
        while chunk := r.read(4 * mib):
            w.write(chunk)
    w.truncate(mib + size + mib)
PY
echo "$root_uuid" > "$out/root-uuid"
say "root.ext4 ($(stat -c %s "$out/root.ext4") bytes), whole.raw ($(stat -c %s "$out/whole.raw") bytes) in $out"
