#!/usr/bin/env bash
# Every benchmark, in release builds; `make bench` runs this. Each part prints
# its own table; docs/benchmarks.md records the results with the command.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== manager host: load, instantiate + call, inventory (cargo bench -p ironic-host --bench load)"
cargo bench -q -p ironic-host --bench load
echo "== agent process: start-up, RSS (tests/bench/agent.sh)"
bash tests/bench/agent.sh
echo "== managers arriving in a running agent: copy to serving, RSS (tests/bench/managers.sh)"
bash tests/bench/managers.sh
echo "== API latency and throughput (cargo run --release -p agent-api --example load)"
cargo run -q --release -p agent-api --example load
echo "== erase (tests/bench/erase.sh)"
bash tests/bench/erase.sh
echo "== hostile floods (tests/bench/floods.sh)"
bash tests/bench/floods.sh
echo "== image pipeline (tests/bench/image.sh)"
bash tests/bench/image.sh
echo "== storage under a real Ironic, in VMs (tests/bench/storage.sh)"
bash tests/bench/storage.sh
