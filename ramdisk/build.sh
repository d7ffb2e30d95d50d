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
# RAMDISK_ARCH (x86_64 or aarch64; default: this host's) is the ramdisk's
# architecture. Built on a host of another architecture, the ramdisk takes
# that architecture's Debian packages through an apt state of its own (the
# host's apt and dpkg configuration are left alone), resolves shared
# libraries with readelf instead of ldd, and runs the target's programs it
# needs at build time (busybox, the agent precompiling the generic manager)
# under QEMU's user-mode emulator, unpacked from Debian's qemu-user-static.
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
arch="${RAMDISK_ARCH:-$(uname -m)}"
case "$arch" in
    x86_64) deb_arch=amd64 loader=/lib64/ld-linux-x86-64.so.2 ;;
    aarch64) deb_arch=arm64 loader=/lib/ld-linux-aarch64.so.1 ;;
    *) echo "ramdisk: RAMDISK_ARCH=$arch is not supported (x86_64, aarch64)" >&2; exit 2 ;;
esac
multiarch="$arch-linux-gnu"
kernel_pkg="${RAMDISK_KERNEL_PACKAGE:-linux-image-$deb_arch}"
cross=0
[ "$deb_arch" = "$(dpkg --print-architecture)" ] || cross=1
# Packages of the native architecture share the cache of earlier releases;
# a foreign architecture's have their own (same file names, other contents).
if [ "$cross" = 1 ]; then cache="$cache/$deb_arch"; fi
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
# apt for the ramdisk's architecture: the host's sources and keys, but lists,
# status and downloads of its own, so neither `dpkg --add-architecture` nor
# the host's package lists change.
apt_opts=()
if [ "$cross" = 1 ]; then
    apt_root="$cache/apt"
    mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial"
    touch "$apt_root/status"
    apt_opts=(-o "APT::Architecture=$deb_arch" -o "APT::Architectures=$deb_arch"
        -o "Dir::State::Lists=$apt_root/lists" -o "Dir::State::status=$apt_root/status"
        -o "Dir::Cache=$apt_root" -o "Dir::Cache::archives=$apt_root/archives"
        -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
    # Refreshed daily: the archive drops superseded versions.
    if [ -z "$(find "$apt_root/lists" -maxdepth 1 -name '*Packages*' -mtime -1 -print -quit)" ]; then
        say "updating $deb_arch package lists in $apt_root"
        apt-get "${apt_opts[@]}" update -qq >&2 || { say "apt-get update for $deb_arch failed"; exit 1; }
    fi
fi
# The kernel meta-package names the versioned image package.
kernel_image=$(apt-cache "${apt_opts[@]}" depends "$kernel_pkg" | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kernel_image" ] || { say "cannot resolve $kernel_pkg (apt-cache)"; exit 1; }
# Program packages and every library package they need, recursively
# (zlib1g is the one library package whose name does not start with lib).
lib_packages=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${program_packages[@]}" \
    | grep -E '^(lib|zlib1g)' | sed 's/:[a-z0-9]*$//' | sort -u)
wanted=("$kernel_image" busybox-static "${program_packages[@]}" $lib_packages)
missing=()
for p in "${wanted[@]}"; do
    compgen -G "$cache/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "downloading ${#missing[@]} Debian packages into $cache/debs"
    (cd "$cache/debs" && apt-get "${apt_opts[@]}" download -q "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    for p in "${missing[@]}"; do
        compgen -G "$cache/debs/${p}_*.deb" >/dev/null || { say "failed to download $p"; exit 1; }
    done
fi

# Runs a program of the ramdisk's architecture here: directly, or under
# QEMU's user-mode emulator (static, unpacked from Debian's package of this
# host's architecture; nothing installed, no binfmt handler registered).
target_run() { "$@"; }
if [ "$cross" = 1 ]; then
    qemu_user="$root/target/ramdisk-cache/qemu-user/usr/bin/qemu-$arch-static"
    if [ ! -x "$qemu_user" ]; then
        mkdir -p "$root/target/ramdisk-cache/qemu-user"
        (cd "$root/target/ramdisk-cache" && apt-get download -q qemu-user-static 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
        deb=$(ls "$root"/target/ramdisk-cache/qemu-user-static_*.deb 2>/dev/null | head -1)
        [ -n "$deb" ] || { say "failed to download qemu-user-static"; exit 1; }
        # Only this architecture's emulator (the package holds every one: 370 MiB).
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root/target/ramdisk-cache/qemu-user" "./usr/bin/qemu-$arch-static"
    fi
    target_run() { "$qemu_user" "$@"; }
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
for applet in $(target_run "$rootfs/bin/busybox" --list); do
    case "$applet" in busybox) continue ;; esac
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done

# The kernel loads modules on demand (crypto, md levels, file systems)
# through /sbin/modprobe.
[ -e "$rootfs/sbin/modprobe" ] || ln -s /bin/busybox "$rootfs/sbin/modprobe"

# Copies an ELF file and, recursively, the shared libraries it needs,
# resolved among the unpacked packages first, then this Debian host's.
libpath="$debs/lib/$multiarch:$debs/usr/lib/$multiarch:$debs/usr/lib/$multiarch/ceph:$debs/lib:$debs/usr/lib"
# Another architecture's libraries: ldd cannot run its loader here, so the
# NEEDED entries (readelf) are looked up in the unpacked packages, recursively.
copy_needed() {
    local elf="$1" name dir lib rel
    for name in $(readelf -d "$elf" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        lib=""
        for dir in ${libpath//:/ }; do
            if [ -e "$dir/$name" ]; then lib="$dir/$name"; break; fi
        done
        [ -n "$lib" ] || { say "library $name (needed by ${elf#"$debs"}) not in the $deb_arch packages"; exit 1; }
        rel="${lib#"$debs"}"
        [ -e "$rootfs$rel" ] && continue
        mkdir -p "$(dirname "$rootfs$rel")"
        cp -L "$lib" "$rootfs$rel"
        copy_needed "$lib"
    done
}
copy_with_libs() {
    local src="$1" dest="$2"
    mkdir -p "$(dirname "$rootfs$dest")"
    cp -L "$src" "$rootfs$dest"
    if [ "$cross" = 1 ]; then
        copy_needed "$src"
        return 0
    fi
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
# The dynamic loader, from the packages (libc6), else this host's.
if [ ! -e "$rootfs$loader" ]; then
    mkdir -p "$(dirname "$rootfs$loader")"
    # Debian's loader path is an absolute symbolic link: follow it inside
    # the unpacked packages, not on this host.
    src="$debs$loader"
    while [ -L "$src" ]; do
        link=$(readlink "$src")
        case "$link" in /*) src="$debs$link" ;; *) src="$(dirname "$src")/$link" ;; esac
    done
    if [ -e "$src" ]; then cp "$src" "$rootfs$loader"
    elif [ "$cross" = 0 ]; then cp -L "$loader" "$rootfs$loader"
    else say "dynamic loader $loader not in the $deb_arch packages"; exit 1
    fi
fi
# Glibc programs look up users and hosts through NSS; keep it to files.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"

# --- The agent and the generic manager --------------------------------------
copy_with_libs "$agent" /usr/bin/ironic-agent
# A debug build carries hundreds of MiB of symbols; the ramdisk needs none.
strip_tool=strip
[ "$cross" = 0 ] || strip_tool="$multiarch-strip"
"$strip_tool" --strip-debug "$rootfs/usr/bin/ironic-agent"
cp "$generic" "$rootfs/usr/lib/ironic-wasm-agent/managers/generic.wasm"
# Precompiled with the very binary that will load it (the cache key
# includes the engine) for a CPU every server has (x86-64-v2), not for the
# build host's CPU, so the ramdisk never compiles the generic manager at
# boot, on an older CPU or under QEMU's emulation either. For another
# architecture the agent runs under QEMU's user-mode emulator (`portable` is
# then that architecture's base instruction set, e.g. ARMv8.0 for aarch64).
target_run "$agent" managers compile --cpu "${RAMDISK_MANAGERS_CPU:-portable}" \
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
target_run "$rootfs/bin/busybox" depmod -b "$debs" "$kver"
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
target_run "$rootfs/bin/busybox" depmod -b "$rootfs" "$kver"

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
