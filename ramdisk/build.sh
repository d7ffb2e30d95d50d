#!/usr/bin/env bash
# Builds the agent's ramdisk: Debian's kernel (unpacked, not installed) and an
# initramfs holding the static agent, the precompiled generic manager, the
# programs the generic manager is granted (from Debian's packages, with their
# libraries), the kernel modules for common storage and network devices, and
# ramdisk/init.
#
# Usage: ramdisk/build.sh AGENT_BINARY GENERIC_MANAGER_WASM OUT_DIR
#   OUT_DIR/vmlinuz, OUT_DIR/initramfs.img (zstd cpio), OUT_DIR/sizes.txt
# Debian packages are cached in $RAMDISK_CACHE (default target/ramdisk-cache).
#
# The agent binary may be static (musl, `make ramdisk`) or dynamic (the test
# build); a dynamic one gets its libraries copied like any other program.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
agent="$(realpath "$1")"
generic="$(realpath "$2")"
out="$(mkdir -p "$3" && cd "$3" && pwd)"
cache="${RAMDISK_CACHE:-$root/target/ramdisk-cache}"
kernel_pkg="${RAMDISK_KERNEL_PACKAGE:-linux-image-amd64}"
mkdir -p "$cache/debs"

# Programs the generic manager may run (its manifest), plus qemu-img for the
# native image pipeline's format conversion.
programs=(ipmitool sgdisk nvme hdparm efibootmgr smartctl wipefs blkdiscard qemu-img)
program_packages=(ipmitool gdisk nvme-cli hdparm efibootmgr smartmontools util-linux qemu-utils)
# Storage (software RAID, multipath, the file systems the deploy formats):
# docs/storage.md.
programs+=(mdadm multipath multipathd kpartx mkfs mkswap mkfs.vfat mkfs.fat mkfs.ext4 mke2fs)
program_packages+=(mdadm multipath-tools kpartx dosfstools e2fsprogs)
# Burn-in tools, only with RAMDISK_BURNIN=1: Debian's fio links the Ceph and
# GlusterFS client libraries (librbd, libgfapi, ICU: over 70 MiB) and
# stress-ng Mesa and intel-ipsec-mb (over 30 MiB); without them the burn-in
# steps fail at once naming the missing program (docs/storage.md).
if [ "${RAMDISK_BURNIN:-0}" = 1 ]; then
    programs+=(stress-ng fio)
    program_packages+=(stress-ng fio)
fi

say() { echo "ramdisk: $*" >&2; }

# --- Debian packages ------------------------------------------------------
# The kernel meta-package names the versioned image package.
kernel_image=$(apt-cache depends "$kernel_pkg" | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kernel_image" ] || { say "cannot resolve $kernel_pkg (apt-cache)"; exit 1; }
# Program packages and every library package they need, recursively.
lib_packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${program_packages[@]}" \
    | grep -E '^lib' | sort -u)
wanted=("$kernel_image" busybox-static "${program_packages[@]}" $lib_packages)
missing=()
for p in "${wanted[@]}"; do
    compgen -G "$cache/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "downloading ${#missing[@]} Debian packages into $cache/debs"
    (cd "$cache/debs" && apt-get download -q "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    for p in "${missing[@]}"; do
        compgen -G "$cache/debs/${p}_*.deb" >/dev/null || { say "failed to download $p"; exit 1; }
    done
fi

# --- Unpack ----------------------------------------------------------------
work="$out/work"
rm -rf "$work"
mkdir -p "$work/debs" "$work/rootfs"
for p in "${wanted[@]}"; do
    for deb in "$cache/debs/${p}"_*.deb; do
        dpkg-deb -x "$deb" "$work/debs"
    done
done
debs="$work/debs"
rootfs="$work/rootfs"
kver=$(basename "$(ls -d "$debs"/lib/modules/*/ | head -1)")
cp "$debs/boot/vmlinuz-$kver" "$out/vmlinuz"

mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,run,tmp,var/log,root} \
    "$rootfs"/usr/lib/ironic-wasm-agent/{managers,cache} "$rootfs/usr/share/udhcpc"

# busybox: the shell, init's tools, udhcpc, modprobe.
cp "$debs/bin/busybox" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    case "$applet" in busybox) continue ;; esac
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done

# The kernel loads modules on demand (crypto, md levels, file systems)
# through /sbin/modprobe.
[ -e "$rootfs/sbin/modprobe" ] || ln -s /bin/busybox "$rootfs/sbin/modprobe"

# Copies an ELF file and, recursively, the shared libraries it needs,
# resolved among the unpacked packages first, then this Debian host's.
libpath="$debs/lib/x86_64-linux-gnu:$debs/usr/lib/x86_64-linux-gnu:$debs/usr/lib/x86_64-linux-gnu/ceph:$debs/lib:$debs/usr/lib"
copy_with_libs() {
    local src="$1" dest="$2"
    mkdir -p "$(dirname "$rootfs$dest")"
    cp -L "$src" "$rootfs$dest"
    if ! LD_LIBRARY_PATH="$libpath" ldd "$src" >/dev/null 2>&1; then
        return 0 # static
    fi
    LD_LIBRARY_PATH="$libpath" ldd "$src" | awk '/=>/ {print $3} /^\s*\/lib64\/ld-linux/ {print $1}' |
        while read -r lib; do
            [ -n "$lib" ] && [ -e "$lib" ] || continue
            # The library's path inside the ramdisk: where it sits in Debian.
            local rel="${lib#"$debs"}"
            [ -e "$rootfs$rel" ] && continue
            mkdir -p "$(dirname "$rootfs$rel")"
            cp -L "$lib" "$rootfs$rel"
        done
}

for prog in "${programs[@]}"; do
    found=""
    for dir in usr/sbin sbin usr/bin bin; do
        if [ -x "$debs/$dir/$prog" ]; then found="$dir/$prog"; break; fi
    done
    [ -n "$found" ] || { say "program $prog not found in its package"; exit 1; }
    # Real programs replace busybox applets of the same name.
    rm -f "$rootfs/$found"
    copy_with_libs "$debs/$found" "/$found"
done
[ -e "$rootfs/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
# Glibc programs look up users and hosts through NSS; keep it to files.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"

# --- The agent and the generic manager --------------------------------------
copy_with_libs "$agent" /usr/bin/ironic-agent
# A debug build carries hundreds of MiB of symbols; the ramdisk needs none.
strip --strip-debug "$rootfs/usr/bin/ironic-agent"
cp "$generic" "$rootfs/usr/lib/ironic-wasm-agent/managers/generic.wasm"
# Precompiled with the very binary that will load it (the cache key
# includes the engine) for a CPU every server has (x86-64-v2), not for the
# build host's CPU, so the ramdisk never compiles the generic manager at
# boot, on an older CPU or under QEMU's emulation either.
"$agent" managers compile --cpu "${RAMDISK_MANAGERS_CPU:-portable}" \
    --managers-dir "$rootfs/usr/lib/ironic-wasm-agent/managers" \
    --cache-dir "$rootfs/usr/lib/ironic-wasm-agent/cache" >&2

# --- Kernel modules ----------------------------------------------------------
# Storage and network drivers of common servers and of virtual machines, and
# what the agent's steps touch (efivarfs, vfat for the ESP, loop, dm for
# RAID members' detection). Their dependencies come along via modules.dep.
modules=(
    virtio_pci virtio_blk virtio_scsi virtio_net virtio_rng
    ahci ata_piix sd_mod sr_mod nvme mpt3sas megaraid_sas hpsa smartpqi aacraid
    e1000 e1000e igb igc ixgbe i40e ice bnxt_en tg3 r8169 mlx4_en mlx5_core qede
    efivarfs vfat nls_cp437 nls_iso8859_1 nls_utf8 loop dm_mod raid1 ipmi_si ipmi_devintf
    # Storage: md levels, multipath, the root file systems deployed images use
    # (and crc32c, which ext4's metadata checksums load on demand).
    md_mod raid0 raid10 raid456 dm_multipath dm_round_robin dm_service_time ext4 xfs
    crc32c_generic crc32c_intel
)
"$rootfs/bin/busybox" depmod -b "$debs" "$kver"
moddir="lib/modules/$kver"
declare -A chosen=()
resolve() {
    local name="$1" line path dep
    line=$(grep -E "(^|/)${name//_/[_-]}\.ko(\.[a-z]+)?:" "$debs/$moddir/modules.dep" | head -1) || true
    [ -n "$line" ] || { say "module $name not in $kver (skipped)"; return 0; }
    path="${line%%:*}"
    [ -n "${chosen[$path]:-}" ] && return 0
    chosen[$path]=1
    for dep in ${line#*:}; do
        dep=$(basename "$dep"); dep="${dep%%.ko*}"
        resolve "$dep"
    done
}
for m in "${modules[@]}"; do resolve "$m"; done
for path in "${!chosen[@]}"; do
    mkdir -p "$(dirname "$rootfs/$moddir/$path")"
    cp "$debs/$moddir/$path" "$rootfs/$moddir/$path"
done
cp "$debs/$moddir"/modules.{order,builtin} "$rootfs/$moddir/" 2>/dev/null || true
"$rootfs/bin/busybox" depmod -b "$rootfs" "$kver"

# --- init ----------------------------------------------------------------------
cp "$here/init" "$rootfs/init"
cp "$here/udhcpc.script" "$rootfs/usr/share/udhcpc/default.script"
cp "$here/rescue.sh" "$rootfs/usr/bin/ipa-rescue"
chmod 0755 "$rootfs/init" "$rootfs/usr/share/udhcpc/default.script" "$rootfs/usr/bin/ipa-rescue"

# --- Archive -------------------------------------------------------------------
(cd "$rootfs" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$work/initramfs.cpio"
level="${RAMDISK_ZSTD_LEVEL:-19}"
zstd -q "-$level" -T0 -f "$work/initramfs.cpio" -o "$out/initramfs.img"
unpacked=$(du -sb "$rootfs" | cut -f1)
compressed=$(stat -c %s "$out/initramfs.img")
{
    echo "kernel: $kver ($(stat -c %s "$out/vmlinuz") bytes)"
    echo "initramfs: $compressed bytes compressed (zstd -$level), $unpacked bytes unpacked"
    echo "agent: $(stat -c %s "$rootfs/usr/bin/ironic-agent") bytes"
    echo "modules: ${#chosen[@]} files, $(du -sb "$rootfs/lib/modules" | cut -f1) bytes"
} | tee "$out/sizes.txt" >&2
rm -rf "$work"
