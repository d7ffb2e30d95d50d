#!/usr/bin/env bash
# Agent process figures: start-up (process start → API answering), idle RSS
# with the generic manager loaded (precompiled), RSS after an inventory, and
# the time of one inventory command through the API. Release build, default
# simulated machine, loopback only.
#   bash tests/bench/agent.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
AGENT=${AGENT:-target/release/ironic-agent}
GUEST=target/wasm32-wasip2/guest/generic_manager.wasm
[ -x "$AGENT" ] || cargo build --release -q -p ironic-agent
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PID=
"$AGENT" sim create "$WORK/sim" >/dev/null
mkdir -p "$WORK/managers" && cp "$GUEST" "$WORK/managers/generic.wasm"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_agent() {
    "$AGENT" --standalone --hardware-root "$WORK/sim" --managers-dir "$WORK/managers" \
        --listen_host 127.0.0.1 --listen_port "$PORT" --agent_token bench 2>/dev/null &
    PID=$!
}
wait_api() {
    until curl -sf "http://127.0.0.1:$PORT/v1/status" >/dev/null; do sleep 0.001; done
}
# First start compiles the manager into the machine's cache; measure the second.
run_agent; wait_api; kill "$PID"; wait "$PID" 2>/dev/null || true
best=
for _ in 1 2 3 4 5; do
    t0=$(date +%s%N); run_agent; wait_api; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000 ))
    [ -z "$best" ] || [ "$ms" -lt "$best" ] && best=$ms
    idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
    kill "$PID"; wait "$PID" 2>/dev/null || true
done
run_agent; wait_api
sleep 0.2
idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
t0=$(date +%s%N)
curl -sf -XPOST "http://127.0.0.1:$PORT/v1/commands/?wait=true&agent_token=bench" \
    -d '{"name": "poll.get_hardware_info", "params": {}}' >/dev/null
t1=$(date +%s%N)
inv_kb=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
printf '| measure | value |\n|---|---|\n'
printf '| start-up, process start to API answering (best of 5, precompiled manager) | %d.%03d ms |\n' $((best / 1000)) $((best % 1000))
printf '| idle RSS, generic manager loaded | %d KiB (%.1f MiB) |\n' "$idle_kb" "$(awk "BEGIN {print $idle_kb/1024}")"
printf '| peak RSS after one inventory | %d KiB (%.1f MiB) |\n' "$inv_kb" "$(awk "BEGIN {print $inv_kb/1024}")"
printf '| poll.get_hardware_info over HTTP | %d µs |\n' $(( (t1 - t0) / 1000 ))
