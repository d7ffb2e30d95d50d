#!/bin/sh
# Storage timings under a real Ironic (numbers for docs/benchmarks.md): the
# storage VM tests print how long each phase took, from Ironic's request to
# the node's next stable state, VM boot included: RAID-1 create (manual
# cleaning) and deploy onto the md root, the same for RAID-1 + RAID-0 MAX,
# and partition-image deploys with GRUB (BIOS) and with the EFI tree (UEFI).
# The VMs run the test ramdisk (target/ramdisk-test), or RAMDISK_DIR's.
#   VM_ACCEL=kvm|tcg tests/bench/storage.sh
set -eu
cd "$(dirname "$0")/../.."
cargo test -p agent-tests --test storage_vm -- --nocapture --test-threads 1 2>&1 \
    | grep -E 'under a real Ironic|test result|panicked'
