//! The crate's error boundary: one enum, structured fields, each variant
//! mapped onto the IPA error class Ironic expects (`ipa_type`).

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::write_image`] and friends can fail with.
///
/// Variants carry the data a caller (or an operator reading the command
/// result) needs; [`ImageError::ipa_type`] names the IPA exception class the
/// command engine should report.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `image_info` failed the synchronous `prepare_image` validator (IPA `_validate_image_info`).
    #[error("Invalid command parameters: {message}")]
    InvalidParams { message: String },

    /// No usable checksum / algorithm could be selected (IPA `ImageDownload.__init__`).
    #[error("Unable to verify image {image_id}: {message}")]
    NoChecksum { image_id: String, message: String },

    /// The checksum file could not be fetched or had no entry for the image.
    #[error("Checksum file {url}: {message}")]
    ChecksumFile { url: String, message: String },

    /// The received bytes do not match the expected digest. Nothing bootable
    /// was left on the target (the first MiB is still zero).
    #[error("Image checksum mismatch for {url}: expected {algorithm} {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        algorithm: String,
        expected: String,
        actual: String,
    },

    /// Every URL failed with retryable errors (connection, 5xx, truncation).
    #[error("Error downloading image {image_id}: {}", failures.join("; "))]
    Download {
        image_id: String,
        failures: Vec<String>,
    },

    /// The server answered 4xx (or another non-retryable status): no retry, no further URL.
    #[error("Error downloading image from {url}: HTTP status {status} is fatal")]
    DownloadFatal { url: String, status: u16 },

    /// `image_download_max_duration` exceeded.
    #[error("Image download timed out after {elapsed:?} (limit {limit:?})")]
    DownloadTimeout { elapsed: Duration, limit: Duration },

    /// `ENOSPC` while writing the temporary image file or the target.
    #[error("No space left writing {path}")]
    OutOfSpace { path: PathBuf },

    /// The bytes are not an acceptable image (safety check failed, unknown or ambiguous format).
    #[error("Invalid image: {reason}")]
    InvalidImage { reason: String },

    /// The detected format is not in `permitted_image_formats`.
    #[error("Image format {format} is not permitted (permitted: {})", permitted.join(","))]
    FormatNotPermitted {
        format: String,
        permitted: Vec<String>,
    },

    /// `disk_format` says one thing, the bytes say another.
    #[error("Image format mismatch: disk_format is {declared}, detected {detected}")]
    FormatMismatch { declared: String, detected: String },

    /// The image does not fit on the target block device.
    #[error("Image of {image_bytes} bytes does not fit on {device} ({device_bytes} bytes)")]
    TooLarge {
        device: PathBuf,
        image_bytes: u64,
        device_bytes: u64,
    },

    /// An I/O step on the target device failed.
    #[error("Error writing image to {device}: {op}: {source}")]
    Write {
        device: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },

    /// `qemu-img` failed (info or convert).
    #[error("qemu-img {op} failed for {device} (exit code {exit_code:?}): {stderr}")]
    Convert {
        device: PathBuf,
        op: &'static str,
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
    },

    /// The config drive could not be fetched or decoded (IPA `get_configdrive`).
    #[error("Config drive: {message}")]
    ConfigDrive { message: String },

    /// Installing or registering a boot loader failed (IPA raises
    /// `CommandExecutionError` from `image.install_bootloader`).
    #[error("Installing the boot loader on {device} failed: {message}")]
    Bootloader { device: String, message: String },

    /// A partition or device the command names is not there (IPA
    /// `DeviceNotFound`).
    #[error("{message}")]
    DeviceNotFound { message: String },

    /// Partitioning the install disk failed (IPA `work_on_disk`,
    /// `create_config_drive_partition`, `fix_gpt_partition`).
    #[error("Partitioning {device}: {message}")]
    Partition { device: PathBuf, message: String },

    /// The disk shows no partition table after the image was written
    /// (IPA's wording, from `standby.py` `_write_image`).
    #[error("No partitions found on the device {device} after writing the image {image_id}.")]
    NoPartitions { device: String, image_id: String },

    /// A helper program (mkfs, mkswap) failed or could not be run.
    #[error("{program} failed for {device}: {message}")]
    Program {
        program: String,
        device: String,
        message: String,
    },

    /// A bug or an unexpected condition inside the pipeline.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ImageError {
    /// The IPA exception class for `command_error.type` (IPA `errors.py` `RESTError.type`).
    pub fn ipa_type(&self) -> &'static str {
        match self {
            ImageError::InvalidParams { .. } => "InvalidCommandParamsError",
            ImageError::NoChecksum { .. } => "RESTError",
            ImageError::ChecksumFile { .. } | ImageError::Download { .. } => "ImageDownloadError",
            ImageError::ChecksumMismatch { .. } => "ImageChecksumError",
            ImageError::DownloadFatal { .. } => "ImageDownloadFatalError",
            ImageError::DownloadTimeout { .. } => "ImageDownloadTimeoutError",
            ImageError::OutOfSpace { .. } => "ImageDownloadOutofSpaceError",
            ImageError::InvalidImage { .. }
            | ImageError::FormatNotPermitted { .. }
            | ImageError::FormatMismatch { .. } => "InvalidImage",
            ImageError::TooLarge { .. } | ImageError::Write { .. } | ImageError::Convert { .. } => {
                "ImageWriteError"
            }
            ImageError::Bootloader { .. } => "CommandExecutionError",
            ImageError::DeviceNotFound { .. } => "DeviceNotFound",
            ImageError::ConfigDrive { .. }
            | ImageError::NoPartitions { .. }
            | ImageError::Partition { .. }
            | ImageError::Program { .. }
            | ImageError::Internal(_) => "DeploymentError",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        ImageError::InvalidImage {
            reason: reason.into(),
        }
    }

    /// Wraps a target I/O error, turning `ENOSPC` into [`ImageError::OutOfSpace`].
    pub(crate) fn write(
        device: &std::path::Path,
        op: &'static str,
        source: std::io::Error,
    ) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            ImageError::OutOfSpace {
                path: device.to_path_buf(),
            }
        } else {
            ImageError::Write {
                device: device.to_path_buf(),
                op,
                source,
            }
        }
    }
}
