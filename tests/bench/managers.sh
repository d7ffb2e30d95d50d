#!/usr/bin/env bash
# Hardware managers arriving in a running agent: the time from copying a
# component into the managers directory until the agent's API answers with
# it (its name in `hardware_manager_version` of clean.get_clean_steps),
# cold (empty compile cache: served from baseline code compiled on arrival)
# and cached (artifact already in the cache directory), and cold until the
# optimised code replaced the baseline code (the agent's log line), for a
# Rust, a Python and a JavaScript manager; and the agent's RSS added by
# each loaded manager.
#
#   bash tests/bench/managers.sh        (AGENT=... to use another binary)
#
# Release agent, default simulated machine (a Dell server, which the
# example managers claim), standalone, loopback only. The components:
# tests/managers/vendor-profile (Rust), managers/examples/python and
# managers/examples/js (built by tests/examples-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
AGENT=${AGENT:-target/release/ironic-agent}
GUEST=target/wasm32-wasip2/guest
[ -x "$AGENT" ] || cargo build --release -q -p ironic-agent
[ -f "$GUEST/test_manager_vendor_profile.wasm" ] || make -s managers
bash tests/examples-setup.sh
WORK=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
"$AGENT" sim create "$WORK/sim" >/dev/null
cat runtime/host/src/default-grants.toml managers/examples/grants.toml > "$WORK/grants.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
API="http://127.0.0.1:$PORT/v1/commands/?wait=true&agent_token=bench"

# label  component  manager name (hardware_manager_version)
MANAGERS=(
    "Rust (vendor-profile)|$GUEST/test_manager_vendor_profile.wasm|vendor_profile_hardware_manager"
    "Python (example)|target/examples/example-vendor-python.wasm|example_vendor_python"
    "JavaScript (example)|target/examples/example-vendor-js.wasm|example_vendor_js"
)

start_agent() {
    rm -rf "$WORK/managers" && mkdir -p "$WORK/managers"
    cp "$GUEST/generic_manager.wasm" "$WORK/managers/generic.wasm"
    "$AGENT" --standalone --hardware-root "$WORK/sim" --managers-dir "$WORK/managers" \
        --grants "$WORK/grants.toml" --cache-dir "$WORK/cache" \
        --listen_host 127.0.0.1 --listen_port "$PORT" --agent_token bench 2>"$WORK/agent.log" &
    PID=$!
    until curl -sf "http://127.0.0.1:$PORT/v1/status" >/dev/null; do sleep 0.01; done
}
stop_agent() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
serving() {
    curl -sf -XPOST "$API" -d '{"name": "clean.get_clean_steps", "params": {"node": {}, "ports": []}}' \
        | grep -q "\"$1\""
}
# copy_to_serving FILE STEM NAME: ms from the copy (an atomic rename into the
# directory, as an installer does) until the API answers with NAME.
copy_to_serving() {
    cp "$1" "$WORK/.$2.tmp"
    local t0 t1
    t0=$(date +%s%N)
    mv "$WORK/.$2.tmp" "$WORK/managers/$2.wasm"
    # Polled every 50 ms: each poll is a listing call on every manager, and
    # polling faster takes the CPU the compile needs (two cores here).
    until serving "$3"; do sleep 0.05; done
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
    T0=$t0
}
# ms from the copy (T0) until the log says the optimised code replaced the
# baseline code of manager STEM.
until_optimised() {
    until grep -a "optimised code replaces the baseline code" "$WORK/agent.log" | grep -q "manager=$1"; do
        sleep 0.01
    done
    echo $(( ($(date +%s%N) - T0) / 1000000 ))
}

printf '| manager | component | copy → serving, cold (baseline code) | copy → optimised code in place, cold | copy → serving, cached | RSS added, cached load | RSS added, after compiling |\n|---|---|---|---|---|---|---|\n'
for entry in "${MANAGERS[@]}"; do
    IFS='|' read -r label file name <<<"$entry"
    stem=$(basename "$file" .wasm)
    rm -rf "$WORK/cache"
    start_agent
    serving generic_hardware_manager
    # The generic manager too arrived without an artifact: let its
    # optimised compile finish before timing the next arrival.
    T0=$(date +%s%N) until_optimised generic >/dev/null
    base=$(rss_kb)
    copy_to_serving "$file" "$stem" "$name" >"$WORK/cold"
    cold=$(cat "$WORK/cold")
    optimised=$(until_optimised "$stem")
    serving "$name"
    sleep 0.5
    compiled=$(( $(rss_kb) - base ))
    stop_agent
    # The cache now holds the artifact: a fresh agent, the same copy.
    start_agent
    serving generic_hardware_manager
    base=$(rss_kb)
    copy_to_serving "$file" "$stem" "$name" >"$WORK/cached"
    cached=$(cat "$WORK/cached")
    serving "$name"
    sleep 0.5
    loaded=$(( $(rss_kb) - base ))
    stop_agent
    size=$(stat -c %s "$file")
    mib() { awk "BEGIN {printf \"%.1f\", $1/1024}"; }
    printf '| %s | %.1f MiB | %d ms | %d ms | %d ms | %s MiB | %s MiB |\n' "$label" \
        "$(awk "BEGIN {print $size/1048576}")" "$cold" "$optimised" "$cached" "$(mib "$loaded")" "$(mib "$compiled")"
done
