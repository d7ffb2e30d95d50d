//! Writing one image onto a whole device or into one partition of it:
//! download (streamed or into a work file), verify, inspect, then copy or
//! convert. The first MiB reaches the target only after the digest verified
//! (`target::GuardedTarget`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::checksum::{self, Algorithm, Expected, Selection};
use crate::format::{self, Format};
use crate::http;
use crate::pipeline::{InspectFn, Pipeline};
use crate::qemu;
use crate::target::{Device, GuardedTarget, HOLD_BYTES};
use crate::temp::TempFile;
use crate::{ImageError, ImageInfo, WriteOptions, WriteReport};

/// Downloads `info` and writes it onto `device` (a block device or a
/// regular file standing in for one), verifying the digest; see the crate
/// docs for the path taken.
///
/// Partition images (`image_type == "partition"`) are refused here: they
/// must go into the root partition, see [`write_partition_image`].
pub async fn write_image(
    info: &ImageInfo,
    device: &Path,
    opts: &WriteOptions,
) -> Result<WriteReport, ImageError> {
    if info.is_partition_image() {
        return Err(ImageError::InvalidParams {
            message: "partition images must be written into the root partition \
                      (write_partition_image), not onto the whole disk"
                .into(),
        });
    }
    let dest = Dest {
        path: device.to_path_buf(),
        window: None,
    };
    write_any(info, &dest, opts).await
}

/// Writes a partition image into the byte range `[offset, offset + len)`
/// of `disk` (the root partition created by [`create_partition_table`]).
/// Same pipeline and guarantees as [`write_image`], relative to the
/// partition: its first MiB is held back until the digest verified, and an
/// image larger than the partition is refused before that MiB is written.
pub async fn write_partition_image(
    info: &ImageInfo,
    disk: &Path,
    offset: u64,
    len: u64,
    opts: &WriteOptions,
) -> Result<WriteReport, ImageError> {
    let dest = Dest {
        path: disk.to_path_buf(),
        window: Some((offset, len)),
    };
    write_any(info, &dest, opts).await
}

/// Where an image goes: a whole device, or one partition of it.
struct Dest {
    path: PathBuf,
    window: Option<(u64, u64)>,
}

impl Dest {
    fn open(&self, direct_io: bool) -> Result<Device, ImageError> {
        match self.window {
            None => Device::open(&self.path, direct_io),
            Some((offset, len)) => Device::open_window(&self.path, direct_io, offset, len),
        }
    }
}

async fn write_any(
    info: &ImageInfo,
    dest: &Dest,
    opts: &WriteOptions,
) -> Result<WriteReport, ImageError> {
    let device = dest.path.as_path();
    let started = Instant::now();
    info.check_id()?;
    if info.urls.is_empty() {
        return Err(ImageError::InvalidParams {
            message: "Image 'urls' must be a list with at least one element.".into(),
        });
    }
    let http = http::Http::new(info, opts, started)?;
    let (algorithm, expected) = resolve_expected(&http, info, opts.md5_allowed).await?;
    tracing::info!(image = %info.id, device = %device.display(), partition = ?dest.window, algorithm = algorithm.name(), streamed = info.streams(),
        "writing image");
    let report = if info.streams() {
        stream_raw(&http, info, dest, opts, algorithm, &expected, started).await?
    } else {
        download_then_write(&http, info, dest, opts, algorithm, &expected, started).await?
    };
    tracing::info!(image = %info.id, device = %device.display(), bytes = report.bytes, format = %report.format,
        elapsed_ms = report.elapsed.as_millis() as u64, zero_bytes = report.zero_bytes_skipped, "image written");
    Ok(report)
}

/// [`checksum::select`], then the checksum file if any: the algorithm and the expected
/// lower-case hex digest.
async fn resolve_expected(
    http: &http::Http,
    info: &ImageInfo,
    md5_allowed: bool,
) -> Result<(Algorithm, String), ImageError> {
    let Selection {
        algorithm,
        expected,
    } = checksum::select(
        &info.id,
        info.os_hash_algo.as_deref(),
        info.os_hash_value.as_deref(),
        info.checksum.as_deref(),
        md5_allowed,
    )?;
    let value = match expected {
        Expected::Value(v) => v,
        Expected::Url(url) => {
            let text = http.fetch_text(&url).await?;
            let name = info
                .urls
                .first()
                .map(|u| file_name_of(u))
                .unwrap_or_default();
            checksum::parse_checksum_file(&text, &name).map_err(|message| {
                ImageError::ChecksumFile {
                    url: url.clone(),
                    message,
                }
            })?
        }
    };
    let algorithm = match algorithm {
        Some(a) => a,
        None => Algorithm::from_digest_len(value.len(), md5_allowed).map_err(|message| {
            ImageError::NoChecksum {
                image_id: info.id.clone(),
                message,
            }
        })?,
    };
    // IPA compares case-sensitively against a lower-case digest; accepting
    // upper-case hex is strictly more robust and no less safe.
    Ok((algorithm, value.to_ascii_lowercase()))
}

/// Basename of a URL's path (query and fragment stripped).
fn file_name_of(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query.split_once("://").map_or(no_query, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, p)| p)
    });
    path.rsplit('/').next().unwrap_or("").to_string()
}

fn permitted(opts: &WriteOptions, f: Format) -> Result<(), ImageError> {
    let has = |n: &str| {
        opts.permitted_formats
            .iter()
            .any(|p| p.eq_ignore_ascii_case(n))
    };
    // GPT/ISO images are written byte for byte: "raw" permits them too.
    if has(f.name()) || (f.is_raw_like() && has("raw")) {
        Ok(())
    } else {
        Err(ImageError::FormatNotPermitted {
            format: f.name().to_string(),
            permitted: opts.permitted_formats.clone(),
        })
    }
}

/// `disk_format` (when set and not `unknown`) must agree with the bytes;
/// `raw`/`gpt` accept any raw-like content.
fn matches_declared(declared: Option<&str>, f: Format) -> Result<(), ImageError> {
    match declared {
        None | Some("") | Some("unknown") => Ok(()),
        Some("raw") | Some("gpt") if f.is_raw_like() => Ok(()),
        Some(d) if d == f.name() || d == f.qemu_driver() => Ok(()),
        Some(d) => Err(ImageError::FormatMismatch {
            declared: d.to_string(),
            detected: f.name().to_string(),
        }),
    }
}

fn verify(
    url: &str,
    algorithm: Algorithm,
    expected: &str,
    actual: Option<String>,
) -> Result<String, ImageError> {
    let actual = actual.ok_or_else(|| ImageError::Internal(anyhow::anyhow!("digest missing")))?;
    if actual != expected {
        return Err(ImageError::ChecksumMismatch {
            url: url.to_string(),
            algorithm: algorithm.name().to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

/// IPA `StandbyExtension._stream_raw_image_onto_device`: the body goes
/// straight onto the device. The bytes are still sniffed (first buffer,
/// before any write): a qcow2 labelled `raw` would otherwise be written
/// verbatim into an unbootable disk.
async fn stream_raw(
    http: &http::Http,
    info: &ImageInfo,
    dest: &Dest,
    opts: &WriteOptions,
    algorithm: Algorithm,
    expected: &str,
    started: Instant,
) -> Result<WriteReport, ImageError> {
    let dev = dest.open(opts.direct_io)?;
    let limit = block_capacity(&dev)?;
    let target = GuardedTarget::new(dev, true)?;
    let detected = Arc::new(std::sync::Mutex::new(Format::Raw));
    let seen = detected.clone();
    let opts_c = opts.clone();
    let inspect: InspectFn = Box::new(move |head: &[u8]| {
        let f = format::sniff(head, None)?;
        matches_declared(Some("raw"), f)?;
        permitted(&opts_c, f)?;
        format::safety_check(f, head)?;
        if let Ok(mut g) = seen.lock() {
            *g = f;
        }
        Ok(())
    });
    let mut pipe = Pipeline::start(
        target,
        Some(algorithm),
        Some(inspect),
        opts.progress.clone(),
    );
    pipe.limit = limit;
    let transfer = match http.download(&info.id, &info.urls, &mut pipe).await {
        Ok(t) => t,
        Err(e) => {
            pipe.abort().await;
            return Err(e);
        }
    };
    let restarts = pipe.restarts;
    let (target, digest, len, stats) = pipe.finish().await?;
    let digest = verify(&transfer.url, algorithm, expected, digest)?;
    let dev = target.commit(len)?;
    let format = detected
        .lock()
        .map(|g| g.name().to_string())
        .unwrap_or_else(|_| "raw".into());
    Ok(WriteReport {
        bytes: len,
        format,
        algorithm: algorithm.name().into(),
        digest,
        url: transfer.url,
        streamed: true,
        data_bytes: stats.data_bytes,
        zero_bytes_skipped: dev.zeroed,
        resumes: transfer.resumes,
        restarts,
        elapsed: started.elapsed(),
    })
}

/// `(path, size)` of a block-device target, to refuse images that do not fit.
fn block_capacity(dev: &Device) -> Result<Option<(PathBuf, u64)>, ImageError> {
    if !dev.is_block() && !dev.is_window() {
        return Ok(None);
    }
    let size = dev
        .size()
        .map_err(|e| ImageError::write(dev.path(), "size", e))?;
    Ok(Some((dev.path().to_path_buf(), size)))
}

/// IPA `_download_image` + `_write_image`: download into `<work_dir>/<id>`
/// while hashing, verify, inspect, then copy (raw-like) or convert (qemu-img).
async fn download_then_write(
    http: &http::Http,
    info: &ImageInfo,
    dest: &Dest,
    opts: &WriteOptions,
    algorithm: Algorithm,
    expected: &str,
    started: Instant,
) -> Result<WriteReport, ImageError> {
    let work = TempFile(opts.work_dir.join(&info.id));
    // The work file is read back right away: keep it in the page cache.
    let file = GuardedTarget::new(Device::create(&work.0, false)?, false)?;
    let mut pipe = Pipeline::start(file, Some(algorithm), None, opts.progress.clone());
    let transfer = match http.download(&info.id, &info.urls, &mut pipe).await {
        Ok(t) => t,
        Err(e) => {
            pipe.abort().await;
            return Err(e);
        }
    };
    let restarts = pipe.restarts;
    let (file, digest, len, _) = pipe.finish().await?;
    let digest = verify(&transfer.url, algorithm, expected, digest)?;
    drop(file.commit(len)?);

    let (head, tail) = read_head_tail(&work.0, len)
        .map_err(|e| ImageError::write(&work.0, "read work file", e))?;
    let fmt = format::sniff(&head, tail.as_deref())?;
    format::safety_check(fmt, &head)?;
    permitted(opts, fmt)?;
    matches_declared(info.disk_format.as_deref(), fmt)?;
    tracing::info!(image = %info.id, format = fmt.name(), "image inspected");

    let device = dest.path.as_path();
    let (data_bytes, zeroed) = if fmt.is_raw_like() {
        copy_raw(&work.0, dest, opts).await?
    } else if dest.window.is_some() {
        // A partition has no device node on a simulated disk and qemu-img
        // cannot write at an offset: convert into a sparse raw work file
        // (only data blocks take RAM), then copy it like a raw image.
        let tool = qemu::QemuImg::new(opts);
        let qi = qemu::info(&tool, &work.0, fmt).await?;
        if let Some((_, len)) = dest.window.filter(|(_, len)| qi.virtual_size > *len) {
            return Err(ImageError::TooLarge {
                device: device.to_path_buf(),
                image_bytes: qi.virtual_size,
                device_bytes: len,
            });
        }
        let raw = TempFile(opts.work_dir.join(format!("{}.raw", info.id)));
        // `convert -n` writes into an existing target of the right size.
        std::fs::File::create(&raw.0)
            .and_then(|f| f.set_len(qi.virtual_size))
            .map_err(|e| ImageError::write(&raw.0, "create conversion file", e))?;
        qemu::convert(&tool, &work.0, fmt, &raw.0, false, false).await?;
        copy_raw(&raw.0, dest, opts).await?
    } else {
        let tool = qemu::QemuImg::new(opts);
        let qi = qemu::info(&tool, &work.0, fmt).await?;
        // Zero the boot area first and again on failure: a partial conversion
        // must not leave a bootable disk (the first-MiB rule for this path).
        let dev = Device::open(device, opts.direct_io)?;
        if let Some((path, size)) =
            block_capacity(&dev)?.filter(|(_, size)| qi.virtual_size > *size)
        {
            return Err(ImageError::TooLarge {
                device: path,
                image_bytes: qi.virtual_size,
                device_bytes: size,
            });
        }
        let (is_block, direct) = (dev.is_block(), dev.supports_direct());
        let guard = GuardedTarget::new(dev, true)?;
        drop(guard); // releases O_EXCL for qemu-img
        if let Err(e) = qemu::convert(&tool, &work.0, fmt, device, is_block, direct).await {
            if let Ok(mut dev) = Device::open(device, false) {
                let _ = dev
                    .zero_range(0, HOLD_BYTES as u64)
                    .and_then(|()| dev.sync());
            }
            return Err(e);
        }
        let dev = Device::open(device, false)?;
        dev.sync()
            .map_err(|e| ImageError::write(device, "fdatasync", e))?;
        tracing::info!(format = %qi.format, virtual_size = qi.virtual_size, "qemu-img convert done");
        (qi.virtual_size, 0)
    };
    Ok(WriteReport {
        bytes: len,
        format: fmt.name().to_string(),
        algorithm: algorithm.name().into(),
        digest,
        url: transfer.url,
        streamed: false,
        data_bytes,
        zero_bytes_skipped: zeroed,
        resumes: transfer.resumes,
        restarts,
        elapsed: started.elapsed(),
    })
}

/// Copies a verified raw work file onto the destination (first MiB last).
async fn copy_raw(src: &Path, dest: &Dest, opts: &WriteOptions) -> Result<(u64, u64), ImageError> {
    let dev = dest.open(opts.direct_io)?;
    let limit = block_capacity(&dev)?;
    let len = std::fs::metadata(src)
        .map_err(|e| ImageError::write(src, "stat work file", e))?
        .len();
    if let Some((device, size)) = limit.as_ref().filter(|(_, size)| len > *size) {
        return Err(ImageError::TooLarge {
            device: device.clone(),
            image_bytes: len,
            device_bytes: *size,
        });
    }
    let mut pipe = Pipeline::start(GuardedTarget::new(dev, true)?, None, None, None);
    pipe.limit = limit;
    let file = tokio::fs::File::open(src)
        .await
        .map_err(|e| ImageError::write(src, "open work file", e))?;
    if let Err(e) = pipe.push_reader(file).await {
        pipe.abort().await;
        return Err(e);
    }
    let (target, _, n, stats) = pipe.finish().await?;
    let dev = target.commit(n)?;
    Ok((stats.data_bytes, dev.zeroed))
}

fn read_head_tail(path: &Path, len: u64) -> std::io::Result<(Vec<u8>, Option<Vec<u8>>)> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut head = vec![0u8; format::SNIFF_LEN.min(usize::try_from(len).unwrap_or(usize::MAX))];
    f.read_exact_at(&mut head, 0)?;
    let tail = if len >= 1024 {
        let mut t = vec![0u8; 512];
        f.read_exact_at(&mut t, len - 512)?;
        Some(t)
    } else {
        None
    };
    Ok((head, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names() {
        assert_eq!(file_name_of("http://h:8080/a/b/disk.img?x=1"), "disk.img");
        assert_eq!(file_name_of("https://h/disk.qcow2"), "disk.qcow2");
        assert_eq!(file_name_of("https://h"), "");
    }

    #[test]
    fn declared_vs_detected() {
        assert!(matches_declared(Some("raw"), Format::Gpt).is_ok());
        assert!(matches_declared(None, Format::Qcow2).is_ok());
        assert!(matches_declared(Some("qcow2"), Format::Qcow2).is_ok());
        assert!(matches!(
            matches_declared(Some("raw"), Format::Qcow2),
            Err(ImageError::FormatMismatch { .. })
        ));
        assert!(matches!(
            matches_declared(Some("qcow2"), Format::Raw),
            Err(ImageError::FormatMismatch { .. })
        ));
    }
}
