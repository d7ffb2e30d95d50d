//! Virtual media (IPA `utils._get_vmedia_params`, `copy_config_from_vmedia`;
//! Ironic `image_utils`): a small FAT device labelled `ir-vfd-dev` carries
//! `parameters.txt` (kernel-style `key=value` words); one labelled
//! `config-2` or `vmedia_boot_iso` carries `etc/ironic-python-agent*/` and
//! `openstack/latest/network_data.json`.
//!
//! The file system is read with the `fatfs` crate straight from the device,
//! opened read-only: nothing is mounted, and a simulated machine's disk
//! files are read the same way. ISO 9660 media are not read.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// IPA only considers devices smaller than this as virtual media.
const MAX_DEVICE_BYTES: u64 = 4 << 30;
/// Any one file read from the media.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Files copied from `etc/ironic-python-agent*`.
const MAX_CONFIG_FILES: usize = 64;

/// What one virtual-media device holds.
#[derive(Debug, Clone, Default)]
pub struct VirtualMedia {
    /// `/dev/<name>` as the machine names it.
    pub device: String,
    /// The FAT volume label, lowercase.
    pub label: String,
    /// `parameters.txt` (ir-vfd-dev only).
    pub parameters: BTreeMap<String, String>,
    /// `openstack/latest/network_data.json`, parsed.
    pub network_data: Option<serde_json::Value>,
    /// `(etc/ironic-python-agent[.d]/<name>, content)`.
    pub config_files: Vec<(String, Vec<u8>)>,
}

/// Every virtual-media device of the machine under `root` (`/` or a
/// simulated machine): whole block devices under 4 GiB holding a FAT file
/// system labelled `ir-vfd-dev`, `config-2` or `vmedia_boot_iso`.
pub fn find(root: &Path) -> Vec<VirtualMedia> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/block")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|name| {
            let sys = root.join("sys/class/block").join(name);
            let sectors = std::fs::read_to_string(sys.join("size"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            !sys.join("partition").exists() && sectors.saturating_mul(512) < MAX_DEVICE_BYTES
        })
        .filter_map(|name| read_device(&root.join("dev").join(&name), &format!("/dev/{name}")))
        .collect()
}

/// The `ir-vfd-dev` parameters with where they came from, when booted
/// with `boot_method=vmedia` (IPA reads them only then).
pub fn parameters(media: &[VirtualMedia]) -> Option<(PathBuf, BTreeMap<String, String>)> {
    media.iter().find(|m| m.label == "ir-vfd-dev").map(|m| {
        (
            PathBuf::from(format!("{}:parameters.txt", m.device)),
            m.parameters.clone(),
        )
    })
}

/// `network_data.json` of the first device that has one.
pub fn network_data(media: &[VirtualMedia]) -> Option<serde_json::Value> {
    media.iter().find_map(|m| m.network_data.clone())
}

/// IPA `_copy_config_from`: `etc/ironic-python-agent[.d]/*` of a
/// `config-2`/`vmedia_boot_iso` device into `etc_root/etc/...`. Only for
/// the real machine (`etc_root` = `/`) booted from virtual media.
pub fn copy_config(media: &[VirtualMedia], etc_root: &Path) -> std::io::Result<usize> {
    let mut copied = 0;
    for m in media.iter().filter(|m| m.label != "ir-vfd-dev") {
        for (rel, data) in &m.config_files {
            let dest = etc_root.join(rel);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&dest, data)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// A block device opened read-only; fatfs wants `Write` too, which fails.
struct ReadOnly(std::fs::File);

impl Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
impl Seek for ReadOnly {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}
impl Write for ReadOnly {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "virtual media is read-only",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_device(path: &Path, device: &str) -> Option<VirtualMedia> {
    let file = std::fs::File::open(path).ok()?;
    let fs = fatfs::FileSystem::new(ReadOnly(file), fatfs::FsOptions::new()).ok()?;
    let label = fs.volume_label().trim().to_ascii_lowercase();
    if !matches!(
        label.as_str(),
        "ir-vfd-dev" | "config-2" | "vmedia_boot_iso"
    ) {
        return None;
    }
    tracing::info!(%device, %label, "virtual media found");
    let root = fs.root_dir();
    let read = |rel: &str| -> Option<Vec<u8>> {
        let mut f = root.open_file(rel).ok()?;
        let mut data = Vec::new();
        (&mut f).take(MAX_FILE_BYTES).read_to_end(&mut data).ok()?;
        Some(data)
    };
    let mut media = VirtualMedia {
        device: device.to_string(),
        label: label.clone(),
        ..Default::default()
    };
    if label == "ir-vfd-dev" {
        if let Some(text) = read("parameters.txt") {
            media.parameters = String::from_utf8_lossy(&text)
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
    } else {
        for dir in ["etc/ironic-python-agent", "etc/ironic-python-agent.d"] {
            let Ok(d) = root.open_dir(dir) else { continue };
            for entry in d.iter().filter_map(Result::ok).filter(|e| e.is_file()) {
                if media.config_files.len() >= MAX_CONFIG_FILES {
                    break;
                }
                let rel = format!("{dir}/{}", entry.file_name());
                if let Some(data) = read(&rel) {
                    media.config_files.push((rel, data));
                }
            }
        }
    }
    if let Some(json) = read("openstack/latest/network_data.json") {
        match serde_json::from_slice(&json) {
            Ok(v) => media.network_data = Some(v),
            Err(e) => tracing::warn!(%device, error = %e, "network_data.json is not JSON; ignored"),
        }
    }
    Some(media)
}
