#!/usr/bin/env bash
# Starts a virtual BMC for the VM tests: a libvirt daemon of its own and
# sushy-tools' Redfish emulator on 127.0.0.1:PORT driving it.
#
# libvirtd runs in session mode (`qemu:///session`) as the unprivileged user
# nobody, with every directory (sockets, configuration, domains, the `default`
# storage pool sushy-tools uploads virtual media into, logs) under
# WORKDIR/bmc: it shares nothing with a system libvirt, creates no bridge and
# no firewall rule, and QEMU runs unprivileged with user-mode networking.
# Files the VM uses must be readable (disks: writable) by nobody.
#
# Usage: start-bmc.sh WORKDIR PORT
# Prints the environment prefix for talking to this libvirt (one line,
# `setpriv ... env ...`, for virsh); stop everything with stop-bmc.sh WORKDIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mkdir -p "$1" && cd "$1" && pwd)"
port="$2"
venv="${SUSHY_VENV:-${CARGO_TARGET_DIR:-$root/target}/sushy-venv}"
bash "$here/setup.sh" "$venv" >&2

bmc="$work/bmc"
mkdir -p "$bmc"/{run,config,cache,home,pool}
chmod 0700 "$bmc/run"
chown -R 65534:65534 "$bmc"
# nobody must reach WORKDIR/bmc through WORKDIR.
chmod a+x "$work"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$bmc/home"
    XDG_RUNTIME_DIR="$bmc/run" XDG_CONFIG_HOME="$bmc/config" XDG_CACHE_HOME="$bmc/cache")
virsh=("${as_nobody[@]}" virsh -q -c qemu:///session)

cd "$bmc"
"${as_nobody[@]}" setsid libvirtd >"$bmc/libvirtd.log" 2>&1 </dev/null &
for _ in $(seq 1 100); do
    "${virsh[@]}" version >/dev/null 2>&1 && break
    sleep 0.1
done
"${virsh[@]}" version >/dev/null || { echo "libvirtd did not start; see $bmc/libvirtd.log" >&2; exit 1; }
"${virsh[@]}" pool-define-as default dir --target "$bmc/pool" >/dev/null
"${virsh[@]}" pool-start default >/dev/null

cat > "$bmc/sushy.conf" <<CONF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $port
SUSHY_EMULATOR_LIBVIRT_URI = 'qemu:///session'
SUSHY_EMULATOR_STORAGE_POOL = 'default'
SUSHY_EMULATOR_BOOT_LOADER_MAP = {
    'UEFI': {'x86_64': '/usr/share/OVMF/OVMF_CODE_4M.fd'},
    'Legacy': {'x86_64': None},
}
CONF
chmod 0644 "$bmc/sushy.conf"
"${as_nobody[@]}" setsid "$venv/bin/sushy-emulator" --config "$bmc/sushy.conf" \
    >"$bmc/sushy.log" 2>&1 </dev/null &
echo $! > "$bmc/sushy.pid"
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port/redfish/v1/Systems" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/redfish/v1/Systems" >/dev/null || {
    echo "sushy-emulator did not answer on 127.0.0.1:$port; see $bmc/sushy.log" >&2
    exit 1
}
printf '%q ' "${as_nobody[@]}"
echo
