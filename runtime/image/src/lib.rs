//! The agent's native image pipeline (IPA `standby.prepare_image`, the write
//! half): download, verify, write — the agent's hottest path.
//!
//! ```text
//!  HTTP body ──► [producer] ──buffers──► [hasher thread] ──► [writer thread] ──► device
//!   (Range resume)   (format sniff        (sha256/512,         (O_DIRECT, zero runs
//!                     on first buffer)      md5 if allowed)      as write-zeroes, first
//!                                                               MiB held: GuardedTarget)
//! ```
//!
//! * Raw images with `stream_raw_images` stream straight onto the device.
//! * Everything else is downloaded (same pipeline, into a work file), verified,
//!   inspected (format sniffed from bytes + safety checks), then copied (raw)
//!   or converted by `qemu-img` with bounded memory.
//! * The first MiB reaches the device only after the digest verified
//!   (`target::GuardedTarget`).
//!
//! [`deploy_image`] is the whole deploy onto the install disk, for both image
//! kinds: a whole-disk image is written onto the disk, its GPT backup moved
//! to the end ([`fix_gpt_backup`]), the table re-read and checked, and the
//! config drive added ([`write_whole_disk_configdrive`]); a partition image
//! gets IPA's layout ([`PartitionPlan`]) written natively ([`disk`]), its
//! ESP/swap/ephemeral formatted with the machine's programs ([`programs`]),
//! the config drive, and the image streamed into the root partition
//! ([`write_partition_image`]). Both return what `get_partition_uuids`
//! answers.

pub mod bootloader;
mod checksum;
mod configdrive;
mod deploy;
pub mod disk;
pub mod efi;
mod efi_raid;
mod error;
pub mod esp;
mod format;
mod holder_io;
mod http;
mod info;
pub mod partition;
mod pipeline;
pub mod programs;
mod qemu;
mod target;
mod temp;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use checksum::{parse_checksum_file, Algorithm};
pub use configdrive::write_configdrive;
pub use deploy::{
    check_partition_table, deploy_image, mbr_disk_identifier, write_whole_disk_configdrive,
    DeployReport, DeployRequest,
};
pub use disk::{
    create_partition_table, fix_gpt_backup, reread_partition_table, CreatedPartition, Layout,
};
pub use error::ImageError;
pub use format::{safety_check, sniff, Format, SNIFF_LEN};
pub use http::default_tls_config;
pub use info::{validate, ImageInfo};
pub use partition::{partition_path, LayoutRequest, PartitionPlan, PlannedPartition};
pub use pipeline::ByteProgressFn;
pub use target::HOLD_BYTES;
pub use write::{write_image, write_partition_image};

/// Agent-side settings for one write (IPA `config.py` options + lookup config).
#[derive(Clone)]
pub struct WriteOptions {
    /// `md5_enabled` / Ironic's `agent_md5_checksum_enable`.
    pub md5_allowed: bool,
    /// `permitted_image_formats` (default `raw,gpt,qcow2`).
    pub permitted_formats: Vec<String>,
    /// `image_download_connection_timeout`: connect and per-read timeout.
    pub connect_timeout: Duration,
    /// `image_download_connection_retries` (attempts = retries + 1).
    pub retries: u32,
    /// `image_download_connection_retry_interval`.
    pub retry_interval: Duration,
    /// `image_download_max_duration` (None or zero = unlimited).
    pub max_duration: Option<Duration>,
    /// Client TLS (CA file, client cert, insecure) as built by the agent's
    /// TLS module; `None` = system CAs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Where non-streamed images are downloaded (`<work_dir>/<id>`);
    /// default: the system temp dir, like IPA.
    pub work_dir: PathBuf,
    /// Use O_DIRECT on the target when it supports it.
    pub direct_io: bool,
    /// qemu-img binary.
    pub qemu_img: PathBuf,
    /// `[disk_utils]image_convert_memory_limit` in MiB (address space).
    pub convert_memory_limit_mib: u64,
    /// `[disk_utils]image_convert_attempts`.
    pub convert_attempts: u32,
    /// Called with (bytes received, total) after every buffer.
    pub progress: Option<ByteProgressFn>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            md5_allowed: true,
            permitted_formats: vec!["raw".into(), "gpt".into(), "qcow2".into()],
            connect_timeout: Duration::from_secs(60),
            retries: 9,
            retry_interval: Duration::from_secs(10),
            max_duration: None,
            tls: None,
            work_dir: std::env::temp_dir(),
            direct_io: true,
            qemu_img: PathBuf::from("qemu-img"),
            convert_memory_limit_mib: 2048,
            convert_attempts: 3,
            progress: None,
        }
    }
}

impl std::fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("md5_allowed", &self.md5_allowed)
            .field("permitted_formats", &self.permitted_formats)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("retry_interval", &self.retry_interval)
            .field("max_duration", &self.max_duration)
            .field("work_dir", &self.work_dir)
            .field("direct_io", &self.direct_io)
            .finish_non_exhaustive()
    }
}

/// What [`write_image`] did.
#[derive(Debug, Clone)]
pub struct WriteReport {
    /// Bytes downloaded (the image file's length).
    pub bytes: u64,
    /// Detected format (`raw`, `gpt`, `qcow2`, ...).
    pub format: String,
    /// Digest algorithm and lower-case hex digest that verified.
    pub algorithm: String,
    pub digest: String,
    /// URL the image came from.
    pub url: String,
    /// True when streamed straight to the device.
    pub streamed: bool,
    /// Bytes written to the target as data.
    pub data_bytes: u64,
    /// Bytes issued as write-zeroes (punch hole / BLKZEROOUT) instead of data.
    pub zero_bytes_skipped: u64,
    /// Range resumes after dropped connections, and restarts from byte 0.
    pub resumes: u32,
    pub restarts: u32,
    pub elapsed: Duration,
}
