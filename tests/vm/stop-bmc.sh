#!/usr/bin/env bash
# Stops what start-bmc.sh WORKDIR started: the domains' QEMU processes
# (destroyed through libvirt), sushy-emulator, libvirtd and the virtlogd it
# spawned, each by the PID it recorded. Safe to run twice.
# Usage: stop-bmc.sh WORKDIR
set -uo pipefail
bmc="$(cd "$1" && pwd)/bmc"
[ -d "$bmc" ] || exit 0
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$bmc/home"
    XDG_RUNTIME_DIR="$bmc/run" XDG_CONFIG_HOME="$bmc/config" XDG_CACHE_HOME="$bmc/cache")
if [ -S "$bmc/run/libvirt/libvirt-sock" ]; then
    for dom in $("${as_nobody[@]}" virsh -q -c qemu:///session list --name 2>/dev/null); do
        "${as_nobody[@]}" virsh -q -c qemu:///session destroy "$dom" >/dev/null 2>&1
    done
fi
pids=()
for f in "$bmc/sushy.pid" "$bmc/run/libvirt/libvirtd.pid" "$bmc/run/libvirt/virtlogd.pid" \
         "$bmc"/run/libvirt/qemu/run/*.pid; do
    [ -f "$f" ] && pid=$(cat "$f" 2>/dev/null) && [ -n "$pid" ] && pids+=("$pid")
done
[ ${#pids[@]} -gt 0 ] || exit 0
kill -TERM "${pids[@]}" 2>/dev/null
for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && exit 0
    sleep 0.1
done
kill -KILL "${pids[@]}" 2>/dev/null
exit 0
