#!/usr/bin/env bash
# What hostile floods cost the agent (docs/security.md): the release agent on
# a simulated machine with the hostile test manager, each flood run as a
# clean step or a listing through the API; the agent's peak RSS and the
# flood's wall time. Needs `make build` and the release binary
# (`cargo build --release -p ironic-agent`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${IRONIC_AGENT_BIN:-target/release/ironic-agent}
guest=target/wasm32-wasip2/guest
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$bin" sim create "$work/m" >/dev/null
mkdir -p "$work/managers"
cp "$guest/generic_manager.wasm" "$work/managers/generic.wasm"
cp "$guest/test_manager_hostile.wasm" "$work/managers/flood.wasm"
# The hostile component declares what it is granted (a sidecar manifest).
cat > "$work/managers/flood.manifest.toml" <<'MANIFEST'
log = true
progress = true
[disks]
read = ["/dev/*"]
write = ["/dev/*"]
MANIFEST
cat runtime/host/src/default-grants.toml > "$work/grants.toml"
cat >> "$work/grants.toml" <<'GRANTS'
[managers.flood]
log = true
progress = true
[managers.flood.disks]
read = ["/dev/*"]
write = ["/dev/*"]
GRANTS
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --standalone --hardware-root "$work/m" --managers-dir "$work/managers" \
    --grants "$work/grants.toml" --listen-host 127.0.0.1 --listen-port "$port" \
    --agent-token t 2>"$work/agent.log" &
pid=$!
url="http://127.0.0.1:$port/v1/commands/?wait=true&agent_token=t"
until curl -sf "http://127.0.0.1:$port/v1/status" >/dev/null; do sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2/1024 " MiB"}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2/1024 " MiB"}' "/proc/$pid/status"; }
step() { # name, args; the reply goes to $work/last.json
    curl -s -o "$work/last.json" -XPOST "$url" -d "{\"name\": \"clean.execute_clean_step\", \"params\": {\"step\": {\"step\": \"$1\", \"interface\": \"deploy\", \"priority\": 0, \"args\": $2}, \"node\": {}, \"ports\": []}}"
}
listing() { # hostile_listing
    curl -s -o /dev/null -XPOST "$url" -d "{\"name\": \"clean.get_clean_steps\", \"params\": {\"node\": {\"hostile_listing\": \"$1\"}, \"ports\": []}}"
}
printf '%-44s %10s %14s %14s\n' flood seconds "RSS after" "peak RSS"
printf '%-44s %10s %14s %14s\n' "(idle, generic + hostile loaded)" - "$(rss)" "$(hwm)"
run() { # label, command...
    local label=$1; shift
    local t0=$(date +%s.%N)
    "$@"
    local t1=$(date +%s.%N)
    printf '%-44s %10.2f %14s %14s\n' "$label" "$(echo "$t1 - $t0" | bc)" "$(rss)" "$(hwm)"
    if [ -n "${VERBOSE:-}" ] && [ -f "$work/last.json" ]; then head -c 300 "$work/last.json"; echo; rm -f "$work/last.json"; fi
}
run "progress: 64 devices x 8 MiB messages x 4" step hostile_progress_flood '{}'
run "log: 1,000,000 lines" step hostile_log_flood '{"lines": 1000000}'
run "disk handles: 20,000 opens" step hostile_open_disks '{"disk": "/dev/sda"}'
run "erase-many: 10,000 jobs, concurrency 10,000" step hostile_erase_flood '{"disk": "/dev/sdb"}'
run "step results: 3 x 100 MiB" bash -c "for i in 1 2 3; do curl -s -o /dev/null -XPOST '$url' -d '{\"name\": \"clean.execute_clean_step\", \"params\": {\"step\": {\"step\": \"hostile_huge_result\", \"interface\": \"deploy\", \"priority\": 0, \"args\": {\"mib\": 100}}, \"node\": {}, \"ports\": []}}'; done"
run "listing: 200,000 steps" listing many
run "GET /v1/commands/" curl -s -o /dev/null "http://127.0.0.1:$port/v1/commands/?agent_token=t"
echo "agent log: $(wc -l <"$work/agent.log") lines, $(du -k "$work/agent.log" | cut -f1) KiB"
