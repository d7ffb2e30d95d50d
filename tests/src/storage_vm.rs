//! What the storage VM tests share (`tests/tests/storage_vm.rs`): the
//! ramdisk under test booted by QEMU on disks that are files of the test,
//! optionally under UEFI firmware (OVMF, with a variable store of the
//! test's own), and the images `tests/storage/make-images.sh` builds.
//!
//! Why a VM: these tests run the real mdadm, grub-install, mkfs.vfat and
//! mount on real block devices. This host's kernel (and CI's) need not
//! have md, device-mapper or vfat, and no test may ever hand such tools a
//! device of the host: inside a VM the only disks are the test's files
//! (docs/testing-storage.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::vm::accelerator as accelerator_for;
pub use crate::vm::{
    build_lock, ramdisk, sparse_disk, Arch, ForwardProxy, Vm, VmSpec, OVMF_CODE, OVMF_VARS,
};

/// The VM's NIC; Ironic finds the node by it at lookup.
pub const VM_MAC: &str = "52:54:00:53:54:01";
pub use crate::vm::GIB;

/// KVM when it boots the ramdisk's kernel, else TCG
/// ([`crate::vm::accelerator`] for an x86-64 guest).
pub fn accelerator(ramdisk: &Path, scratch: &Path) -> &'static str {
    accelerator_for(Arch::X86_64, ramdisk, scratch)
}

/// The test images (`root.ext4`, `whole.raw`, `root-uuid`), built once.
pub fn images() -> PathBuf {
    let _lock = build_lock("storage-images.lock");
    let out = crate::target_dir().join("storage-images");
    let script = crate::workspace_root().join("tests/storage/make-images.sh");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = mtime(&out.join("whole.raw")).is_none_or(|b| mtime(&script).is_some_and(|s| s > b));
    if stale {
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("running make-images.sh");
        assert!(st.success(), "tests/storage/make-images.sh failed");
    }
    out
}
