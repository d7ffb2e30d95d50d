#!/bin/sh
# Rescue mode (IPA doc admin/rescue.rst): after the agent's finalize_rescue
# wrote the password hash, create the `rescue` user with it, give the
# console a login prompt, and (in the ramdisk) redo DHCP on every wired
# interface, since Ironic has moved the ports to the tenant network.
#
# Usage: rescue.sh ROOT [--network]
#   ROOT: the file system to act on (/ in the ramdisk; a directory in tests)
#   --network: also restart DHCP (only ever in the ramdisk)
set -eu
root=${1:?usage: rescue.sh ROOT [--network]}
hash_file="$root/etc/ipa-rescue-config/ipa-rescue-password"
[ -s "$hash_file" ] || { echo "rescue: no password in $hash_file" >&2; exit 1; }
hash=$(head -n1 "$hash_file")
case "$hash" in
*:* | *"
"*) echo "rescue: unusable password hash" >&2; exit 1 ;;
esac

mkdir -p "$root/etc" "$root/home/rescue"
touch "$root/etc/passwd" "$root/etc/shadow" "$root/etc/group"
grep -q '^root:' "$root/etc/passwd" || echo 'root:x:0:0:root:/root:/bin/sh' >>"$root/etc/passwd"
grep -q '^root:' "$root/etc/group" || echo 'root:x:0:' >>"$root/etc/group"
# Replace any earlier rescue entry (a second finalize_rescue).
for f in passwd shadow group; do
    grep -v '^rescue:' "$root/etc/$f" >"$root/etc/$f.new" || true
    mv "$root/etc/$f.new" "$root/etc/$f"
done
echo 'rescue:x:1000:1000:rescue:/home/rescue:/bin/sh' >>"$root/etc/passwd"
echo 'rescue:x:1000:' >>"$root/etc/group"
echo "rescue:$hash:19000:0:99999:7:::" >>"$root/etc/shadow"
chmod 600 "$root/etc/shadow"
chown 1000:1000 "$root/home/rescue" 2>/dev/null || true

if [ "${2:-}" = --network ]; then
    killall udhcpc 2>/dev/null || true
    for path in /sys/class/net/*; do
        iface=${path##*/}
        [ "$iface" = lo ] && continue
        [ -d "$path/wireless" ] && continue
        ip -4 addr flush dev "$iface"
        ip link set "$iface" up
        udhcpc -i "$iface" -b -t 10 -T 2 -S -s /usr/share/udhcpc/default.script >/dev/null 2>&1
    done
fi
echo "rescue: user rescue created"
