#!/bin/sh
# Erase measurements (numbers for docs): full erase (erase_devices with IPA's
# defaults, and with the zero pass only) of 4 disks at
# disk_erasure_concurrency 1 and 4, file-backed and (root only) loop devices,
# side by side with `dd if=/dev/zero bs=4M oflag=direct conv=fsync` and
# `blkdiscard -z` on one disk and on all four at once, in the same run; and a
# metadata erase of 8 disks. Everything lives in temp dirs; the only block
# devices used are loop devices the test creates over its own files. Dev
# profile on purpose: dependencies (wasmtime) are optimised there already,
# and the disk work is done by the host's threads and the kernel.
#   ERASE_BENCH_GIB=2 tests/bench/erase.sh
set -eu
cd "$(dirname "$0")/../.."
cargo build --target wasm32-wasip2 --profile guest -p generic-manager
cargo test -p agent-tests --test erase bench_erase -- --ignored --nocapture 2>&1 | grep -E '^BENCH|test result|panicked'
