#!/usr/bin/env bash
# Starts a real Ironic (API + conductor in one process) on 127.0.0.1 for the
# test suite: writes ironic.conf (fake-hardware, noauth, sqlite) into WORKDIR,
# creates the sqlite schema, starts `ironic` in the background, waits until
# the API answers and prints its PID on stdout (logs: WORKDIR/ironic.log).
# Usage: start-ironic.sh WORKDIR [PORT] [REQUIRE_TLS(True|False)] [HEARTBEAT_TIMEOUT]
# IRONIC_EXTRA_CONF, when set, is appended to ironic.conf (oslo.config merges
# repeated sections; later values win).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mkdir -p "$1" && cd "$1" && pwd)"
port="${2:-6385}"
require_tls="${3:-False}"
hb_timeout="${4:-10}"
venv="${IRONIC_VENV:-${CARGO_TARGET_DIR:-$root/target}/ironic-venv}"
"$here/venv.sh" "$venv" >&2

mkdir -p "$work/locks" "$work/certs"
cat > "$work/ironic.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = ironic-test
my_ip = 127.0.0.1
enabled_hardware_types = fake-hardware
enabled_boot_interfaces = fake
enabled_power_interfaces = fake
enabled_management_interfaces = noop,fake
enabled_deploy_interfaces = direct,fake
enabled_inspect_interfaces = agent,no-inspect
enabled_network_interfaces = noop
enabled_raid_interfaces = no-raid
enabled_bios_interfaces = no-bios
enabled_console_interfaces = no-console
enabled_firmware_interfaces = no-firmware
enabled_rescue_interfaces = no-rescue
enabled_vendor_interfaces = no-vendor
default_network_interface = noop
use_stderr = false
log_file = $work/ironic.log
debug = true

[api]
host_ip = 127.0.0.1
port = $port
ramdisk_heartbeat_timeout = $hb_timeout

[database]
connection = sqlite:///$work/ironic.sqlite

[dhcp]
dhcp_provider = none

[service_catalog]
endpoint_override = http://127.0.0.1:$port

[deploy]
default_boot_mode = bios
fast_track = False
# Full erase = one zero pass (no random pass): on the simulated machine's
# sparse disks that is the write-zeroes path, so cleaning takes seconds.
shred_random_overwrite_iterations = 0
shred_final_overwrite_with_zeros = True

[agent]
require_tls = $require_tls
deploy_logs_collect = never
command_timeout = 60
certificates_path = $work/certs

[conductor]
automated_clean = True
clean_callback_timeout = 300
deploy_callback_timeout = 300
inspect_wait_timeout = 300
check_provision_state_interval = 10
heartbeat_interval = 2

[inspector]
require_managed_boot = False

[oslo_concurrency]
lock_path = $work/locks
CONF
if [ -n "${IRONIC_EXTRA_CONF:-}" ]; then
    printf '%s\n' "$IRONIC_EXTRA_CONF" >> "$work/ironic.conf"
fi

# A restart (same work dir) keeps its database.
if [ ! -e "$work/ironic.sqlite" ]; then
    "$venv/bin/ironic-dbsync" --config-file "$work/ironic.conf" create_schema >"$work/dbsync.log" 2>&1
fi
setsid "$venv/bin/ironic" --config-file "$work/ironic.conf" >"$work/ironic.out" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$work/ironic.pid"
for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; then
        echo "$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "ironic exited; see $work/ironic.out and $work/ironic.log" >&2
        tail -20 "$work/ironic.out" >&2 || true
        exit 1
    fi
    sleep 0.2
done
echo "ironic did not answer on 127.0.0.1:$port within 60 s" >&2
kill "$pid" 2>/dev/null || true
exit 1
