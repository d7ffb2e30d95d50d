//! The one way a device path reported by the managers (`/dev/sda`) becomes
//! a path the agent itself writes to.

use std::path::{Component, Path, PathBuf};

use crate::errors::{AgentError, ErrorClass};

/// Maps a device path reported by the managers (`/dev/sda`) into the
/// hardware root (`<root>/dev/sda`).
///
/// On a real machine the root is `/` and the path is unchanged. Under any
/// other root (a simulated machine, a fixture) the result is guaranteed to
/// resolve inside that root: `..`, relative paths and symlinks leading out of
/// it are refused, so a simulated machine can never make the agent write a
/// host block device. The returned path is canonical.
pub fn device_in_root(root: &Path, device: &str) -> Result<PathBuf, AgentError> {
    let not_found = |why: String| AgentError::new(ErrorClass::DeviceNotFound, why);
    let path = Path::new(device);
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean || !device.starts_with("/dev/") {
        return Err(not_found(format!(
            "install device {device:?} is not an absolute /dev path"
        )));
    }
    let canon_root = root.canonicalize().map_err(|e| {
        not_found(format!(
            "hardware root {} for install device {device}: {e}",
            root.display()
        ))
    })?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let mapped = canon_root.join(relative);
    let resolved = mapped.canonicalize().map_err(|e| {
        not_found(format!(
            "install device {device} ({}): {e}",
            mapped.display()
        ))
    })?;
    if canon_root != Path::new("/") && !resolved.starts_with(&canon_root) {
        // A symlink out of a simulated root: refusing it is what keeps a
        // test from ever writing the host's disks.
        return Err(not_found(format!(
            "install device {device} resolves to {} outside the hardware root {}",
            resolved.display(),
            canon_root.display()
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_root_never_yields_a_host_dev_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/sda"), b"").unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("dev/sdb")).unwrap();
        std::os::unix::fs::symlink("sda", root.join("dev/disk0")).unwrap();

        let canon = root.canonicalize().unwrap();
        let sda = device_in_root(root, "/dev/sda").unwrap();
        assert_eq!(sda, canon.join("dev/sda"));
        // A link inside the root is fine and resolved.
        assert_eq!(
            device_in_root(root, "/dev/disk0").unwrap(),
            canon.join("dev/sda")
        );
        for bad in [
            "/dev/sdb",           // symlink to a host device
            "/dev/../etc/passwd", // climbs out
            "dev/sda",            // relative
            "/etc/passwd",        // not a device path
            "/dev/nvme9n9",       // absent
            "",
        ] {
            let r = device_in_root(root, bad);
            assert!(r.is_err(), "{bad:?} → {r:?}");
            assert_eq!(r.unwrap_err().error_type, "DeviceNotFound");
        }
        // Whatever is returned lies inside the simulated root.
        for ok in ["/dev/sda", "/dev/disk0"] {
            let p = device_in_root(root, ok).unwrap();
            assert!(p.starts_with(&canon) && !p.starts_with("/dev"), "{p:?}");
        }
    }

    #[test]
    fn real_root_keeps_the_device_path() {
        // Only resolves the path; nothing is opened.
        assert_eq!(
            device_in_root(Path::new("/"), "/dev/null").unwrap(),
            PathBuf::from("/dev/null")
        );
    }
}
