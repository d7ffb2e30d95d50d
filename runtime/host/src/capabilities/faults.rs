//! Fault injection for simulated machines: a faults file (the simulated
//! machine's `faults.toml`, handed to the host as
//! [`crate::HostConfig::faults_file`] only for a simulated machine) makes
//! chosen disks fail, so the failure paths of managers can be tested without
//! root, tmpfs or failing hardware.
//!
//! ```toml
//! [[write-error]]
//! device = "/dev/sdb"
//! after-bytes = 1048576   # writes reaching past this offset fail with EIO
//! ```

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Faults {
    #[serde(default)]
    write_error: Vec<WriteErrorRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct WriteErrorRule {
    device: String,
    after_bytes: u64,
}

/// Writes (and write-zeroes) reaching past `after_bytes` fail with an I/O
/// error; the part before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFault {
    pub after_bytes: u64,
}

/// Named in error messages so a test log says where a failure came from.
const SOURCE: &str = "the simulated machine's faults file";

impl WriteFault {
    /// How many bytes of a write of `len` at `offset` go through before the
    /// fault, or `None` when the write does not reach it.
    pub fn allowed(self, offset: u64, len: u64) -> Option<u64> {
        (offset.saturating_add(len) > self.after_bytes)
            .then(|| self.after_bytes.saturating_sub(offset).min(len))
    }

    pub fn error(self) -> std::io::Error {
        std::io::Error::other(format!(
            "Input/output error (simulated: write-error after {} bytes in {SOURCE})",
            self.after_bytes
        ))
    }
}

/// The write fault for `device` in `text` (the faults file), if any.
pub fn write_fault(text: &str, device: &str) -> Result<Option<WriteFault>, String> {
    let faults: Faults = toml::from_str(text).map_err(|e| format!("{SOURCE}: {e}"))?;
    Ok(faults
        .write_error
        .iter()
        .filter(|r| r.device == device)
        .map(|r| WriteFault {
            after_bytes: r.after_bytes,
        })
        .min_by_key(|f| f.after_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_device_and_cut_writes_at_the_offset() {
        let text = "[[write-error]]\ndevice = \"/dev/sdb\"\nafter-bytes = 4096\n";
        assert_eq!(write_fault(text, "/dev/sda"), Ok(None));
        let f = write_fault(text, "/dev/sdb")
            .expect("parses")
            .expect("sdb faulty");
        assert_eq!(f.allowed(0, 4096), None, "up to the offset is fine");
        assert_eq!(f.allowed(0, 8192), Some(4096));
        assert_eq!(f.allowed(8192, 512), Some(0));
        assert!(write_fault("[[write-eror]]\n", "/dev/sda")
            .expect_err("typo")
            .contains(SOURCE));
    }
}
