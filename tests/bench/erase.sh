#!/bin/sh
# Erase measurements (numbers for docs): full erase of a file-backed disk and
# of a loop device (root only) against dd and blkdiscard -z, and a metadata
# erase of 8 disks. Everything lives in temp dirs; the only block device used
# is a loop device the test creates over its own file. Dev profile on purpose:
# dependencies (wasmtime) are optimised there already, and the disk work is
# done by the kernel.
#   ERASE_BENCH_GIB=2 tests/bench/erase.sh
set -eu
cd "$(dirname "$0")/../.."
cargo build --target wasm32-wasip2 --profile guest -p generic-manager
cargo test -p agent-tests --test erase bench_erase -- --ignored --nocapture 2>&1 | grep -E '^BENCH|test result'
